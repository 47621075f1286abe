package models

import (
	"encoding/json"
	"testing"

	"github.com/shadowsplit/shadowsplit/internal/benchcpu"
)

// Run with: go test -run '^$' -bench . -benchmem ./internal/models

var (
	benchV1Probs10 = []byte(`{"predictions": [[0.01, 0.02, 0.03, 0.04, 0.1, 0.2, 0.3, 0.1, 0.1, 0.1]]}`)
	benchV2Probs10 = []byte(`{"model_name":"m","model_version":"1","id":"a1b2","outputs":[{"name":"probs","shape":[1,10],"datatype":"FP32","data":[0.01,0.02,0.03,0.04,0.1,0.2,0.3,0.1,0.1,0.1]}]}`)
	benchV1Labels  = []byte(`{"predictions": [0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 1, 2, 0, 0, 1, 2, 1, 0, 2, 1, 0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 1, 2]}`)
)

func benchDecode(b *testing.B, body []byte, decode func([]byte, string, *Predictions) error, output string) {
	defer benchcpu.PerOp(b)()
	var p Predictions
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(body, output, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV1Probs10(b *testing.B) {
	benchDecode(b, benchV1Probs10, DecodeV1Response, "")
}

func BenchmarkDecodeV2Probs10(b *testing.B) {
	benchDecode(b, benchV2Probs10, DecodeV2Response, "probs")
}

func BenchmarkDecodeV1Labels32(b *testing.B) {
	benchDecode(b, benchV1Labels, DecodeV1Response, "")
}

// BenchmarkEncodingJSONV2Probs10 is the baseline the scanner replaces.
func BenchmarkEncodingJSONV2Probs10(b *testing.B) {
	defer benchcpu.PerOp(b)()
	b.ReportAllocs()
	for b.Loop() {
		var r V2Response
		if err := json.Unmarshal(benchV2Probs10, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckRequestV2(b *testing.B) {
	defer benchcpu.PerOp(b)()
	body := []byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckRequest(ProtocolV2, body); err != nil {
			b.Fatal(err)
		}
	}
}
