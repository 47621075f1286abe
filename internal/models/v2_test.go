package models

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeV2Response(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		output string
		want   []Value
		shape  []int64
		dtype  string
	}{
		{"fp32 probabilities, batch of 2",
			`{"model_name":"m","outputs":[{"name":"probs","shape":[2,3],"datatype":"FP32","data":[0.1,0.2,0.7,0.6,0.3,0.1]}]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.1, 0.2, 0.7}}, {Kind: KindNumbers, Nums: []float64{0.6, 0.3, 0.1}}},
			[]int64{2, 3}, DatatypeFP32},
		{"nested data, keys in any order",
			`{"outputs":[{"data":[[0.5,0.5],[1,0]],"datatype":"FP64","shape":[2,2],"name":"p"}]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.5, 0.5}}, {Kind: KindNumbers, Nums: []float64{1, 0}}},
			[]int64{2, 2}, DatatypeFP64},
		{"int64 labels, shape [b]",
			`{"outputs":[{"name":"label","shape":[3],"datatype":"INT64","data":[0,2,1]}]}`, "",
			[]Value{{Kind: KindInt}, {Kind: KindInt, Int: 2}, {Kind: KindInt, Int: 1}},
			[]int64{3}, DatatypeInt64},
		{"int labels, shape [b,1]",
			`{"outputs":[{"name":"label","shape":[2,1],"datatype":"INT32","data":[[4],[5]]}]}`, "",
			[]Value{{Kind: KindInt, Int: 4}, {Kind: KindInt, Int: 5}},
			[]int64{2, 1}, DatatypeInt32},
		{"int vectors",
			`{"outputs":[{"name":"x","shape":[1,2],"datatype":"UINT8","data":[1,2]}]}`, "",
			[]Value{{Kind: KindNumbers, IntData: true, Nums: []float64{1, 2}}},
			[]int64{1, 2}, DatatypeUint8},
		{"bool",
			`{"outputs":[{"name":"x","shape":[2],"datatype":"BOOL","data":[true,false]}]}`, "",
			[]Value{{Kind: KindInt, Int: 1}, {Kind: KindInt}},
			[]int64{2}, DatatypeBool},
		{"scalar shape []",
			`{"outputs":[{"name":"y","shape":[],"datatype":"FP32","data":[3.5]}]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{3.5}}},
			[]int64{}, DatatypeFP32},
		{"selects the named output",
			`{"outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]},{"name":"probs","shape":[1,2],"datatype":"FP32","data":[0.25,0.75]}]}`, "probs",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.25, 0.75}}},
			[]int64{1, 2}, DatatypeFP32},
		{"bytes labels",
			`{"outputs":[{"name":"y","shape":[2],"datatype":"BYTES","data":["cat","d\u00f6g"]}]}`, "",
			[]Value{{Kind: KindString, Str: []byte("cat")}, {Kind: KindString, Str: []byte("dög")}},
			[]int64{2}, DatatypeBytes},
		{"bytes vectors",
			`{"outputs":[{"name":"y","shape":[1,2],"datatype":"BYTES","data":["a","b\n"]}]}`, "",
			[]Value{{Kind: KindStrings, Strs: [][]byte{[]byte("a"), []byte("b\n")}}},
			[]int64{1, 2}, DatatypeBytes},
		{"triton classification top-k",
			`{"outputs":[{"name":"probs","shape":[2,2],"datatype":"BYTES","data":["0.8:3:cat","0.1:1:dog","0.6:1","0.4:0"]}]}`, "",
			[]Value{{Kind: KindClass, Int: 3, Str: []byte("cat"), Nums: []float64{0.8}}, {Kind: KindClass, Int: 1, Nums: []float64{0.6}}},
			[]int64{2, 2}, DatatypeBytes},
		{"classification label containing a colon",
			`{"outputs":[{"name":"p","shape":[1,1],"datatype":"BYTES","data":["0.9:2:a:b"]}]}`, "",
			[]Value{{Kind: KindClass, Int: 2, Str: []byte("a:b"), Nums: []float64{0.9}}},
			[]int64{1, 1}, DatatypeBytes},
		{"python NaN in FP32",
			`{"outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[Infinity]}]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{posInf}}},
			[]int64{1}, DatatypeFP32},
		{"empty batch",
			`{"outputs":[{"name":"y","shape":[0,3],"datatype":"FP32","data":[]}]}`, "",
			nil, []int64{0, 3}, DatatypeFP32},
	}
	var p Predictions
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, DecodeV2Response([]byte(tt.body), tt.output, &p))
			assertValues(t, tt.want, p.Values)
			assert.Equal(t, tt.shape, append([]int64{}, p.Shape...))
			assert.Equal(t, tt.dtype, p.Datatype)
			assert.NotEmpty(t, p.Output)
		})
	}
}

var posInf = func() float64 { var f float64; return 1 / f }()

func TestDecodeV2ResponseErrors(t *testing.T) {
	tests := []struct {
		name, body, output string
		kind               error
	}{
		{"malformed", `{"outputs":[{"name":"y",}]}`, "", ErrMalformedJSON},
		{"outputs not array", `{"outputs":{}}`, "", ErrMalformedJSON},
		{"no outputs", `{"model_name":"m"}`, "", ErrMissingOutput},
		{"empty outputs", `{"outputs":[]}`, "", ErrMissingOutput},
		{"named output missing", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}`, "b", ErrMissingOutput},
		{"no data", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}`, "", ErrMissingOutput},
		{"binary data size", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, "", ErrBinaryTensor},
		{"binary tail", "{\"outputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}\x00\x00\x80?", "", ErrBinaryTensor},
		{"count differs from shape", `{"outputs":[{"name":"a","shape":[2,3],"datatype":"FP32","data":[1,2,3]}]}`, "", ErrShape},
		{"negative dim", `{"outputs":[{"name":"a","shape":[-1],"datatype":"FP32","data":[1]}]}`, "", ErrShape},
		{"fractional dim", `{"outputs":[{"name":"a","shape":[1.5],"datatype":"FP32","data":[1]}]}`, "", ErrShape},
		{"shape not array", `{"outputs":[{"name":"a","shape":"1","datatype":"FP32","data":[1]}]}`, "", ErrShape},
		{"no shape", `{"outputs":[{"name":"a","datatype":"FP32","data":[1]}]}`, "", ErrShape},
		{"empty instances", `{"outputs":[{"name":"a","shape":[2,0],"datatype":"FP32","data":[]}]}`, "", ErrShape},
		{"huge shape", `{"outputs":[{"name":"a","shape":[1099511627776,1099511627776,16],"datatype":"FP32","data":[]}]}`, "", ErrShape},
		{"unknown datatype", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP8","data":[1]}]}`, "", ErrDatatype},
		{"no datatype", `{"outputs":[{"name":"a","shape":[1],"data":[1]}]}`, "", ErrDatatype},
		{"strings in FP32", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32","data":["1"]}]}`, "", ErrDatatype},
		{"numbers in BYTES", `{"outputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":[1]}]}`, "", ErrDatatype},
		{"fractions in INT64", `{"outputs":[{"name":"a","shape":[1],"datatype":"INT64","data":[1.5]}]}`, "", ErrDatatype},
		{"numbers in BOOL", `{"outputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":[1]}]}`, "", ErrDatatype},
		{"bools in FP32", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[true]}]}`, "", ErrDatatype},
		{"null in data", `{"outputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[null]}]}`, "", ErrDatatype},
	}
	var p Predictions
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeV2Response([]byte(tt.body), tt.output, &p)
			require.ErrorIs(t, err, tt.kind)
		})
	}
}

func TestV2TypesRoundTripThroughDecoder(t *testing.T) {
	// The struct codecs (used by model servers) and the fast decoder agree.
	resp := V2Response{ModelName: "iris", Outputs: []V2Tensor{{
		Name: "probabilities", Shape: []int64{2, 3}, Datatype: DatatypeFP64,
		Data: []float64{0.1, 0.2, 0.7, 0.5, 0.25, 0.25},
	}}}
	body, err := json.Marshal(resp)
	require.NoError(t, err)
	var p Predictions
	require.NoError(t, DecodeV2Response(body, "probabilities", &p))
	assertValues(t, []Value{{Kind: KindNumbers, Nums: []float64{0.1, 0.2, 0.7}}, {Kind: KindNumbers, Nums: []float64{0.5, 0.25, 0.25}}}, p.Values)
}

func TestDecodeV2ReusesStorage(t *testing.T) {
	body := []byte(`{"model_name":"m","id":"1","outputs":[{"name":"probs","shape":[1,10],"datatype":"FP32","data":[0.01,0.02,0.03,0.04,0.1,0.2,0.3,0.1,0.1,0.1]}]}`)
	var p Predictions
	require.NoError(t, DecodeV2Response(body, "probs", &p))
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeV2Response(body, "probs", &p); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestParseClassification(t *testing.T) {
	score, idx, label, ok := ParseClassification([]byte("0.75:12:tabby cat"))
	require.True(t, ok)
	assert.Equal(t, 0.75, score)
	assert.Equal(t, int64(12), idx)
	assert.Equal(t, "tabby cat", string(label))
	for _, bad := range []string{"", "cat", ":1", "x:1", "0.5:", "0.5:x", "0.5:1.5:a"} {
		_, _, _, ok := ParseClassification([]byte(bad))
		assert.False(t, ok, bad)
	}
}

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name, ct, body string
		proto          Protocol
		kind           error // nil: comparable
	}{
		{"v1 instances", "application/json", `{"instances": [[1,2]]}`, ProtocolV1, nil},
		{"v1 inputs", "", `{"inputs": {"x": [1]}}`, ProtocolV1, nil},
		{"v1 without instances", "application/json", `{"data": [1]}`, ProtocolV1, ErrMissingOutput},
		{"v1 malformed", "application/json", `{"instances": [1,`, ProtocolV1, ErrMalformedJSON},
		{"v2 inputs", "application/json", `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`, ProtocolV2, nil},
		{"v2 binary input", "application/json", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, ProtocolV2, ErrBinaryTensor},
		{"v2 binary tail", "application/json", "{\"inputs\":[]}\x01\x02", ProtocolV2, ErrBinaryTensor},
		{"v2 inputs not array", "application/json", `{"inputs":{}}`, ProtocolV2, ErrMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRequest(tt.proto, []byte(tt.body))
			if tt.kind == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.kind)
		})
	}
}
