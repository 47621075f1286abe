package compare

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Seed corpora live in testdata/fuzz/<Target>/ and run with plain `go test`;
// `go test -fuzz=FuzzCompare ./internal/compare` explores further.

var fuzzModes = []Mode{ModeAuto, ModeClassification, ModeRegression, ModeProbabilities, ModeExact}

// FuzzCompare feeds arbitrary bodies (and statuses) through Compare in
// every mode: it must never panic and its Result must be consistent.
func FuzzCompare(f *testing.F) {
	f.Add(uint8(0), uint8(0), "", []byte(`{"predictions":[[0.1,0.9]]}`), []byte(`{"predictions":[[0.2,0.8]]}`), uint16(200), uint16(200))
	f.Add(uint8(1), uint8(3), "p", []byte(`{"outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[0.1,0.9]}]}`),
		[]byte(`{"outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[0.6,0.4]}]}`), uint16(200), uint16(200))
	f.Fuzz(func(t *testing.T, proto, mode uint8, output string, stable, canary []byte, sStatus, cStatus uint16) {
		ex := models.Exchange{
			Protocol: []models.Protocol{models.ProtocolV1, models.ProtocolV2, models.ProtocolUnknown}[proto%3],
			Stable:   models.Response{Status: int(sStatus % 600), Body: stable, Latency: time.Millisecond},
			Canary:   models.Response{Status: int(cStatus % 600), Body: canary, Latency: 2 * time.Millisecond},
		}
		opts := Options{Mode: fuzzModes[int(mode)%len(fuzzModes)], Output: output, NaN: []NaNPolicy{NaNEqual, NaNDisagree}[mode/8%2]}
		r := Compare(ex, opts)
		checkResult(t, r)
	})
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	if r.Outcome.index() < 0 {
		t.Fatalf("unknown outcome %q", r.Outcome)
	}
	if r.Agreed < 0 || r.Agreed > r.Instances || r.Instances < 0 {
		t.Fatalf("agreed %d of %d", r.Agreed, r.Instances)
	}
	switch r.Outcome {
	case OutcomeAgree, OutcomeDisagree:
		if len(r.Diffs) != r.Instances {
			t.Fatalf("%d diffs for %d instances", len(r.Diffs), r.Instances)
		}
		if (r.Outcome == OutcomeAgree) != (r.Agreed == r.Instances) {
			t.Fatalf("outcome %s with %d/%d agreed", r.Outcome, r.Agreed, r.Instances)
		}
		for _, d := range r.Diffs {
			if d.JS < 0 || d.JS > 1 || d.TopKOverlap < 0 || d.TopKOverlap > 1 || d.MaxAbsDiff < 0 {
				t.Fatalf("metric out of range: %+v", d)
			}
		}
	default:
		if !slices.Contains(Reasons, r.Reason) {
			t.Fatalf("reason %q is not listed in Reasons", r.Reason)
		}
		if r.Agreed != 0 || r.Diffs != nil || r.Reason == ReasonNone || r.Side == SideNone {
			t.Fatalf("failure outcome %s with agreed %d, diffs %d, reason %q, side %q", r.Outcome, r.Agreed, len(r.Diffs), r.Reason, r.Side)
		}
	}
}

// FuzzProbabilities checks the comparator core on arbitrary vectors.
func FuzzProbabilities(f *testing.F) {
	f.Add(0.1, 0.7, 0.2, 0.3, 0.3, 0.4, 2)
	f.Fuzz(func(t *testing.T, a0, a1, a2, b0, b1, b2 float64, k int) {
		a, b := []float64{a0, a1, a2}, []float64{b0, b1, b2}
		d := Probabilities(a, b, k%100, true)
		if d.Stable.Index < 0 || d.Stable.Index > 2 || d.Canary.Index < 0 || d.Canary.Index > 2 {
			t.Fatalf("label out of range: %+v", d)
		}
		if !math.IsNaN(d.JS) && (d.JS < 0 || d.JS > 1) {
			t.Fatalf("JS out of range: %v", d.JS)
		}
		if !math.IsNaN(d.TopKOverlap) && (d.TopKOverlap < 0 || d.TopKOverlap > 1) {
			t.Fatalf("top-k overlap out of range: %v", d.TopKOverlap)
		}
		self := Probabilities(a, a, k%100, true)
		if !self.Agree {
			t.Fatalf("a vector disagrees with itself: %v", a)
		}
		if !math.IsNaN(self.JS) && self.JS > 1e-9 {
			t.Fatalf("self divergence %v for %v", self.JS, a)
		}
		r := Regression(a, b, 1e-6, 1e-4, true)
		if r.Agree && !math.IsNaN(r.MaxAbsDiff) && r.MaxAbsDiff > 1e-6+1e-4*max(math.Abs(a0), math.Abs(a1), math.Abs(a2)) {
			t.Fatalf("regression agrees with max diff %v", r.MaxAbsDiff)
		}
	})
}
