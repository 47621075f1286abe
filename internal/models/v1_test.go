package models

import (
	"math"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeV1Response(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		output string
		want   []Value
	}{
		{"int labels", `{"predictions": [1, 0, 2]}`, "",
			[]Value{{Kind: KindInt, Int: 1}, {Kind: KindInt}, {Kind: KindInt, Int: 2}}},
		{"booleans are int labels", `{"predictions":[true,false]}`, "",
			[]Value{{Kind: KindInt, Int: 1}, {Kind: KindInt}}},
		{"string labels", `{"predictions": ["setosa", "virginica"]}`, "",
			[]Value{{Kind: KindString, Str: []byte("setosa")}, {Kind: KindString, Str: []byte("virginica")}}},
		{"escaped string label", `{"predictions": ["caf\u00e9 \"x\"\n"]}`, "",
			[]Value{{Kind: KindString, Str: []byte("café \"x\"\n")}}},
		{"float scalars", `{"predictions": [0.5, 1e3, -2.25E-1]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.5}}, {Kind: KindNumbers, Nums: []float64{1000}}, {Kind: KindNumbers, Nums: []float64{-0.225}}}},
		{"probability vectors", `{"predictions": [[0.1, 0.9], [0.8, 0.2]]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.1, 0.9}}, {Kind: KindNumbers, Nums: []float64{0.8, 0.2}}}},
		{"integer vectors keep IntData", `{"predictions": [[1, 2]]}`, "",
			[]Value{{Kind: KindNumbers, IntData: true, Nums: []float64{1, 2}}}},
		{"nested arrays are flattened", `{"predictions": [[[1.5, 2], [3, 4]]]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{1.5, 2, 3, 4}}}},
		{"mixed arrays stay raw", `{"predictions": [[1, "a"]]}`, "",
			[]Value{{Kind: KindJSON, Raw: []byte(`[1, "a"]`)}}},
		{"empty array stays raw", `{"predictions": [[]]}`, "",
			[]Value{{Kind: KindJSON, Raw: []byte(`[]`)}}},
		{"null stays raw", `{"predictions": [null]}`, "",
			[]Value{{Kind: KindJSON, Raw: []byte(`null`)}}},
		{"objects without output stay raw", `{"predictions": [{"label": 1}]}`, "",
			[]Value{{Kind: KindJSON, Raw: []byte(`{"label": 1}`)}}},
		{"objects with output select the key", `{"predictions": [{"id": "x", "probs": [0.3, 0.7]}, {"probs": [1.0, 0.0]}]}`, "probs",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.3, 0.7}}, {Kind: KindNumbers, Nums: []float64{1, 0}}}},
		{"python NaN and Infinity", `{"predictions": [NaN, Infinity, -Infinity, [NaN, 1]]}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{math.NaN()}}, {Kind: KindNumbers, Nums: []float64{math.Inf(1)}},
				{Kind: KindNumbers, Nums: []float64{math.Inf(-1)}}, {Kind: KindNumbers, Nums: []float64{math.NaN(), 1}}}},
		{"outputs array (TF serving)", `{"outputs": [3]}`, "",
			[]Value{{Kind: KindInt, Int: 3}}},
		{"columnar outputs, one key", `{"outputs": {"scores": [[0.2, 0.8]]}}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.2, 0.8}}}},
		{"columnar outputs, selected key", `{"outputs": {"classes": [1], "scores": [[0.2, 0.8]]}}`, "classes",
			[]Value{{Kind: KindInt, Int: 1}}},
		{"non-array predictions is one instance", `{"predictions": 0.25}`, "",
			[]Value{{Kind: KindNumbers, Nums: []float64{0.25}}}},
		{"other keys are skipped", `{"model": {"a": [1, {"b": null}]}, "predictions": [7], "x": "y"}`, "",
			[]Value{{Kind: KindInt, Int: 7}}},
		{"empty batch", `{"predictions": []}`, "", nil},
	}
	var p Predictions
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, DecodeV1Response([]byte(tt.body), tt.output, &p))
			assertValues(t, tt.want, p.Values)
		})
	}
}

func TestDecodeV1ResponseErrors(t *testing.T) {
	tests := []struct {
		name, body, output string
		kind               error
	}{
		{"not JSON", `<html>`, "", ErrMalformedJSON},
		{"empty body", ``, "", ErrMalformedJSON},
		{"top level array", `[1,2]`, "", ErrMalformedJSON},
		{"unterminated", `{"predictions": [1, 2`, "", ErrMalformedJSON},
		{"bad number", `{"predictions": [01]}`, "", ErrMalformedJSON},
		{"bad number in vector", `{"predictions": [[1, 2.]]}`, "", ErrMalformedJSON},
		{"bad escape", `{"predictions": ["\x"]}`, "", ErrMalformedJSON},
		{"control char", "{\"predictions\": [\"a\tb\"]}", "", ErrMalformedJSON},
		{"trailing comma", `{"predictions": [1,]}`, "", ErrMalformedJSON},
		{"binary tail", "{\"predictions\": [1]}\x00\x01\x02", "", ErrBinaryTensor},
		{"no predictions", `{"error": "boom"}`, "", ErrMissingOutput},
		{"object missing output key", `{"predictions": [{"a": 1}]}`, "probs", ErrMissingOutput},
		{"columnar ambiguous", `{"outputs": {"a": [1], "b": [2]}}`, "", ErrMissingOutput},
		{"columnar missing key", `{"outputs": {"a": [1]}}`, "b", ErrMissingOutput},
	}
	var p Predictions
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeV1Response([]byte(tt.body), tt.output, &p)
			require.ErrorIs(t, err, tt.kind)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
		})
	}
}

func TestDeepNestingIsAnErrorNotAPanic(t *testing.T) {
	body := `{"predictions": [` + repeat("[", 100000) + repeat("]", 100000) + `]}`
	var p Predictions
	require.ErrorIs(t, DecodeV1Response([]byte(body), "", &p), ErrMalformedJSON)
}

func TestDecodeResponseContentTypeAndTruncation(t *testing.T) {
	var p Predictions
	body := []byte(`{"predictions": [1]}`)
	err := DecodeResponse(ProtocolV1, Response{Status: 200, ContentType: "application/octet-stream", Body: body}, "", &p)
	require.ErrorIs(t, err, ErrBinaryTensor)
	err = DecodeResponse(ProtocolV2, Response{Status: 200, ContentType: "application/vnd.sagemaker-triton.binary+json;json-header-size=10", Body: body}, "", &p)
	require.ErrorIs(t, err, ErrBinaryTensor)
	err = DecodeResponse(ProtocolV1, Response{Status: 200, Body: body, Truncated: true}, "", &p)
	require.ErrorIs(t, err, ErrTruncated)
	assert.True(t, Unparseable(err))
	err = DecodeResponse(ProtocolUnknown, Response{Status: 200, Body: body}, "", &p)
	require.ErrorIs(t, err, ErrMalformedJSON)
	require.NoError(t, DecodeResponse(ProtocolV1, Response{Status: 200, ContentType: "application/json; charset=utf-8", Body: body}, "", &p))
	assertValues(t, []Value{{Kind: KindInt, Int: 1}}, p.Values)
	assert.False(t, Unparseable(&DecodeError{Kind: ErrShape}))
}

func TestDecodeReusesStorage(t *testing.T) {
	var p Predictions
	body := []byte(`{"predictions": [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]}`)
	require.NoError(t, DecodeV1Response(body, "", &p))
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeV1Response(body, "", &p); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "a warm Predictions decodes without allocating")
	assertValues(t, []Value{{Kind: KindNumbers, Nums: []float64{0.1, 0.2, 0.7}}, {Kind: KindNumbers, Nums: []float64{0.3, 0.3, 0.4}}}, p.Values)
}

func TestRetainedTracksGrowth(t *testing.T) {
	assert.Equal(t, uintptr(unsafeSizeofValue), unsafe.Sizeof(Value{}))
	var p Predictions
	require.NoError(t, DecodeV1Response([]byte(`{"predictions": [[0.5, 0.5]]}`), "", &p))
	small := p.Retained()
	big := `{"predictions": [` + repeat("[0.5, 0.5],", 9999) + `[0.5, 0.5]]}`
	require.NoError(t, DecodeV1Response([]byte(big), "", &p))
	assert.Greater(t, p.Retained(), small+10000*(112+16))
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

// assertValues compares decoded values field by field (NaN equal to NaN).
func assertValues(t *testing.T, want, got []Value) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		assert.Equal(t, w.Kind, g.Kind, "instance %d kind", i)
		assert.Equal(t, w.Int, g.Int, "instance %d int", i)
		assert.Equal(t, w.IntData, g.IntData, "instance %d IntData", i)
		assert.Equal(t, string(w.Str), string(g.Str), "instance %d str", i)
		assert.Equal(t, string(w.Raw), string(g.Raw), "instance %d raw", i)
		require.Len(t, g.Nums, len(w.Nums), "instance %d nums", i)
		for j := range w.Nums {
			if math.IsNaN(w.Nums[j]) {
				assert.True(t, math.IsNaN(g.Nums[j]), "instance %d num %d", i, j)
				continue
			}
			assert.Equal(t, w.Nums[j], g.Nums[j], "instance %d num %d", i, j)
		}
		require.Len(t, g.Strs, len(w.Strs))
		for j := range w.Strs {
			assert.Equal(t, string(w.Strs[j]), string(g.Strs[j]))
		}
	}
}
