package compare

import (
	"testing"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/benchcpu"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Run with: go test -run '^$' -bench . -benchmem ./internal/compare
// The target: a 10-class probability comparison (decoding done)
// under 200 ns with 0 allocations -- BenchmarkProbabilities10.

var (
	probs10a = []float64{0.01, 0.02, 0.03, 0.04, 0.1, 0.2, 0.3, 0.1, 0.1, 0.1}
	probs10b = []float64{0.02, 0.01, 0.05, 0.02, 0.1, 0.25, 0.25, 0.1, 0.1, 0.1}
	sink     InstanceDiff
)

func BenchmarkProbabilities10(b *testing.B) {
	defer benchcpu.PerOp(b)()
	b.ReportAllocs()
	for b.Loop() {
		sink = Probabilities(probs10a, probs10b, DefaultTopK, true)
	}
}

// BenchmarkProbabilities10Confident is the common shape of a trained
// classifier's answer: one dominant class, the rest small, in no order.
// (probs10a above is nearly ascending, the worst case for top-k insertion.)
func BenchmarkProbabilities10Confident(b *testing.B) {
	defer benchcpu.PerOp(b)()
	s := []float64{0.002, 0.001, 0.93, 0.01, 0.004, 0.02, 0.003, 0.015, 0.01, 0.005}
	c := []float64{0.003, 0.001, 0.91, 0.02, 0.004, 0.025, 0.002, 0.02, 0.01, 0.005}
	b.ReportAllocs()
	for b.Loop() {
		sink = Probabilities(s, c, DefaultTopK, true)
	}
}

func BenchmarkProbabilities10Logits(b *testing.B) {
	defer benchcpu.PerOp(b)()
	la := []float64{-2, -1, 0.5, 1, 3, -0.5, 0, 2, 1.5, -3}
	lb := []float64{-2, -1, 0.4, 1.1, 2.8, -0.5, 0, 2.1, 1.5, -3}
	b.ReportAllocs()
	for b.Loop() {
		sink = Probabilities(la, lb, DefaultTopK, true)
	}
}

func BenchmarkProbabilities1000(b *testing.B) {
	defer benchcpu.PerOp(b)()
	a, c := make([]float64, 1000), make([]float64, 1000)
	for i := range a {
		a[i], c[i] = float64(i%7+1)/4000, float64(i%5+1)/3000
	}
	b.ReportAllocs()
	for b.Loop() {
		sink = Probabilities(a, c, DefaultTopK, true)
	}
}

func BenchmarkRegression10(b *testing.B) {
	defer benchcpu.PerOp(b)()
	b.ReportAllocs()
	for b.Loop() {
		sink = Regression(probs10a, probs10b, DefaultAbsTol, DefaultRelTol, true)
	}
}

func BenchmarkClassificationLabel(b *testing.B) {
	defer benchcpu.PerOp(b)()
	o := resolve(Options{Mode: ModeClassification})
	s, c := models.Value{Kind: models.KindInt, Int: 3}, models.Value{Kind: models.KindInt, Int: 3}
	b.ReportAllocs()
	for b.Loop() {
		compareValue(&s, &c, &o, &sink)
	}
}

func BenchmarkClassificationArgmax10(b *testing.B) {
	defer benchcpu.PerOp(b)()
	o := resolve(Options{Mode: ModeClassification})
	s, c := models.Value{Kind: models.KindNumbers, Nums: probs10a}, models.Value{Kind: models.KindNumbers, Nums: probs10b}
	b.ReportAllocs()
	for b.Loop() {
		compareValue(&s, &c, &o, &sink)
	}
}

func benchExchange(proto models.Protocol, stable, canary string) models.Exchange {
	return models.Exchange{
		Protocol: proto,
		Stable:   models.Response{Status: 200, ContentType: "application/json", Body: []byte(stable), Latency: 3 * time.Millisecond},
		Canary:   models.Response{Status: 200, ContentType: "application/json", Body: []byte(canary), Latency: 4 * time.Millisecond},
	}
}

var (
	exV1Probs10 = benchExchange(models.ProtocolV1,
		`{"predictions": [[0.01, 0.02, 0.03, 0.04, 0.1, 0.2, 0.3, 0.1, 0.1, 0.1]]}`,
		`{"predictions": [[0.02, 0.01, 0.05, 0.02, 0.1, 0.25, 0.25, 0.1, 0.1, 0.1]]}`)
	exV2Probs10 = benchExchange(models.ProtocolV2,
		`{"model_name":"m","id":"1","outputs":[{"name":"probs","shape":[1,10],"datatype":"FP32","data":[0.01,0.02,0.03,0.04,0.1,0.2,0.3,0.1,0.1,0.1]}]}`,
		`{"model_name":"m","id":"1","outputs":[{"name":"probs","shape":[1,10],"datatype":"FP32","data":[0.02,0.01,0.05,0.02,0.1,0.25,0.25,0.1,0.1,0.1]}]}`)
	exV1Labels = benchExchange(models.ProtocolV1, `{"predictions": [1]}`, `{"predictions": [1]}`)
	exV1Exact  = benchExchange(models.ProtocolV1, `{"predictions": [{"label": "cat", "score": 0.9}]}`, `{"predictions": [{"score": 0.9, "label": "cat"}]}`)
)

func benchCompare(b *testing.B, ex models.Exchange, opts Options) {
	defer benchcpu.PerOp(b)()
	b.ReportAllocs()
	for b.Loop() {
		r := Compare(ex, opts)
		if r.Outcome != OutcomeAgree && r.Outcome != OutcomeDisagree {
			b.Fatal(r.Outcome, r.Detail)
		}
	}
}

func BenchmarkCompareV1Probs10(b *testing.B) { benchCompare(b, exV1Probs10, Options{}) }
func BenchmarkCompareV2Probs10(b *testing.B) {
	benchCompare(b, exV2Probs10, Options{Mode: ModeProbabilities, Output: "probs"})
}
func BenchmarkCompareV1Label(b *testing.B) { benchCompare(b, exV1Labels, Options{}) }
func BenchmarkCompareV1Exact(b *testing.B) { benchCompare(b, exV1Exact, Options{Mode: ModeExact}) }

// BenchmarkCompareIntoV2Probs10 is the full path with a reused Result.
func BenchmarkCompareIntoV2Probs10(b *testing.B) {
	defer benchcpu.PerOp(b)()
	var r Result
	opts := Options{Mode: ModeProbabilities, Output: "probs"}
	b.ReportAllocs()
	for b.Loop() {
		CompareInto(exV2Probs10, opts, &r)
	}
}

func BenchmarkAggregatorAdd(b *testing.B) {
	defer benchcpu.PerOp(b)()
	a, err := NewAggregator(AggregatorConfig{})
	if err != nil {
		b.Fatal(err)
	}
	r := Compare(exV2Probs10, Options{Mode: ModeProbabilities, Output: "probs"})
	b.ReportAllocs()
	for b.Loop() {
		a.Add(r)
	}
}

func BenchmarkAggregatorSnapshot(b *testing.B) {
	a, err := NewAggregator(AggregatorConfig{})
	if err != nil {
		b.Fatal(err)
	}
	a.Add(Compare(exV2Probs10, Options{}))
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Snapshot()
	}
}
