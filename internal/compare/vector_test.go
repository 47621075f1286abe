package compare

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func nan() float64 { return math.NaN() }

// jsReference is the textbook Jensen-Shannon divergence (base 2) of two
// distributions, written independently of the fused loop under test.
func jsReference(p, q []float64) float64 {
	kl := func(a, m []float64) float64 {
		s := 0.0
		for i := range a {
			if a[i] > 0 {
				s += a[i] * math.Log2(a[i]/m[i])
			}
		}
		return s
	}
	m := make([]float64, len(p))
	for i := range p {
		m[i] = (p[i] + q[i]) / 2
	}
	return kl(p, m)/2 + kl(q, m)/2
}

func TestProbabilities(t *testing.T) {
	tests := []struct {
		name        string
		stable      []float64
		canary      []float64
		topK        int
		agree       bool
		sIdx, cIdx  int64
		js, maxAbs  float64
		topKOverlap float64
	}{
		{"identical", []float64{0.2, 0.5, 0.3}, []float64{0.2, 0.5, 0.3}, 2, true, 1, 1, 0, 0, 1},
		{"disjoint support", []float64{1, 0}, []float64{0, 1}, 1, false, 0, 1, 1, 1, 0},
		{"same argmax, different mass", []float64{0.1, 0.6, 0.3}, []float64{0.3, 0.4, 0.3}, 1, true, 1, 1,
			jsReference([]float64{0.1, 0.6, 0.3}, []float64{0.3, 0.4, 0.3}), 0.2, 1},
		{"unnormalised scores are normalised", []float64{1, 3}, []float64{2, 6}, 1, true, 1, 1, 0, 0, 1},
		{"logits are softmaxed", []float64{-1, 0, 1}, []float64{0, 1, 2}, 3, true, 2, 2, 0, 0, 1},
		{"all zero is uniform", []float64{0, 0}, []float64{0.5, 0.5}, 1, true, 0, 0, 0, 0, 1},
		{"ties keep the lower index", []float64{0.5, 0.5}, []float64{0.5, 0.5}, 1, true, 0, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Probabilities(tt.stable, tt.canary, tt.topK, true)
			assert.Equal(t, tt.agree, d.Agree)
			assert.Equal(t, tt.sIdx, d.Stable.Index)
			assert.Equal(t, tt.cIdx, d.Canary.Index)
			assert.InDelta(t, tt.js, d.JS, 1e-12)
			assert.InDelta(t, tt.maxAbs, d.MaxAbsDiff, 1e-12)
			assert.InDelta(t, tt.topKOverlap, d.TopKOverlap, 1e-12)
			assert.True(t, d.HasLabels)
			assert.Equal(t, ModeProbabilities, d.Mode)
		})
	}
}

func TestProbabilitiesJSMatchesReference(t *testing.T) {
	// Random pairs cover both the series branch (close probabilities) and
	// the closed form (far apart), and softmax for logits.
	rng := rand.New(rand.NewPCG(7, 11))
	for range 2000 {
		n := 2 + rng.IntN(20)
		a, b := make([]float64, n), make([]float64, n)
		sa, sb := 0.0, 0.0
		for i := range n {
			a[i] = rng.Float64()
			b[i] = a[i] * (0.5 + rng.Float64()) // mostly close...
			if rng.IntN(4) == 0 {
				b[i] = rng.Float64() // ...sometimes not
			}
			if rng.IntN(10) == 0 {
				a[i] = 0
			}
			sa += a[i]
			sb += b[i]
		}
		if sa == 0 || sb == 0 {
			continue
		}
		p, q := make([]float64, n), make([]float64, n)
		for i := range n {
			p[i], q[i] = a[i]/sa, b[i]/sb
		}
		d := Probabilities(a, b, 3, true)
		require.InDelta(t, jsReference(p, q), d.JS, 1e-12, "%v vs %v", a, b)
	}
	logits := []float64{-1, 0.5, 2}
	other := []float64{-0.5, 0.5, 1}
	softmax := func(x []float64) []float64 {
		out, z := make([]float64, len(x)), 0.0
		for i, v := range x {
			out[i] = math.Exp(v)
			z += out[i]
		}
		for i := range out {
			out[i] /= z
		}
		return out
	}
	assert.InDelta(t, jsReference(softmax(logits), softmax(other)), Probabilities(logits, other, 1, true).JS, 1e-12)
}

func TestProbabilitiesNonFinite(t *testing.T) {
	d := Probabilities([]float64{nan(), 0.2, 0.8}, []float64{nan(), 0.3, 0.7}, 2, true)
	assert.True(t, d.Agree)
	assert.Equal(t, int64(2), d.Stable.Index, "argmax ignores NaN")
	assert.True(t, math.IsNaN(d.JS) && math.IsNaN(d.MaxAbsDiff) && math.IsNaN(d.TopKOverlap))
	assert.False(t, Probabilities([]float64{nan(), 0.2, 0.8}, []float64{nan(), 0.3, 0.7}, 2, false).Agree)
	assert.False(t, Probabilities([]float64{0.1, 0.2, 0.8}, []float64{nan(), 0.3, 0.7}, 2, true).Agree)
	assert.True(t, Probabilities([]float64{math.Inf(1), 0}, []float64{math.Inf(1), 0}, 1, false).Agree)
	assert.False(t, Probabilities([]float64{math.Inf(1), 0}, []float64{1, 0}, 1, true).Agree)
}

func TestVectorsOfDifferentLengthsNeverAgree(t *testing.T) {
	assert.False(t, Probabilities([]float64{0.5, 0.5}, []float64{1}, 1, true).Agree)
	assert.False(t, Probabilities(nil, nil, 1, true).Agree)
	assert.False(t, Regression([]float64{1}, []float64{1, 2}, 1, 1, true).Agree)
}

func TestTopKOverlap(t *testing.T) {
	a := []float64{0.05, 0.3, 0.1, 0.25, 0.2, 0.1}
	b := []float64{0.3, 0.05, 0.1, 0.25, 0.2, 0.1}
	assert.InDelta(t, 2.0/3, topKOverlap(a, b, 3), 1e-12, "{1,3,4} vs {0,3,4}")
	assert.InDelta(t, 1.0, topKOverlap(a, b, 100), 1e-12, "k capped at n")
	// Long vectors take the index-list path instead of the bitmask.
	long1, long2 := make([]float64, 200), make([]float64, 200)
	for i := range long1 {
		long1[i] = float64(i)
		long2[i] = float64(200 - i)
	}
	long2[199] = 1000
	assert.InDelta(t, 0.2, topKOverlap(long1, long2, 5), 1e-12, "only index 199 shared")
	var idx [maxTopK]int32
	topK([]float64{3, 1, 4, 1, 5, 9, 2, 6}, 4, &idx)
	assert.Equal(t, []int32{5, 7, 4, 2}, idx[:4])
}

func TestArgmax(t *testing.T) {
	assert.Equal(t, -1, Argmax(nil))
	assert.Equal(t, -1, Argmax([]float64{nan()}))
	assert.Equal(t, 1, Argmax([]float64{nan(), 2, nan(), 1}))
	assert.Equal(t, 0, Argmax([]float64{2, 2}))
}

func TestRegression(t *testing.T) {
	tests := []struct {
		name           string
		stable, canary []float64
		abs, rel       float64
		nanEqual       bool
		agree          bool
		maxAbs         float64
	}{
		{"within abs", []float64{1}, []float64{1.05}, 0.1, 0, true, true, 0.05},
		{"outside abs", []float64{1}, []float64{1.2}, 0.1, 0, true, false, 0.2},
		{"rel scales with |stable|", []float64{-1000}, []float64{-1009}, 0, 0.01, true, true, 9},
		{"rel uses stable, not canary", []float64{0}, []float64{1}, 0, 0.5, true, false, 1},
		{"boundary is inclusive", []float64{1}, []float64{1.5}, 0.5, 0, true, true, 0.5},
		{"element-wise, worst element decides", []float64{1, 2, 3}, []float64{1, 2.5, 3}, 0.1, 0, true, false, 0.5},
		{"equal infinities", []float64{math.Inf(1)}, []float64{math.Inf(1)}, 0, 0, true, true, 0},
		{"opposite infinities", []float64{math.Inf(1)}, []float64{math.Inf(-1)}, 1, 1, true, false, math.Inf(1)},
		{"both NaN, nan_equal", []float64{nan()}, []float64{nan()}, 0, 0, true, true, nan()},
		{"both NaN, nan_disagree", []float64{nan()}, []float64{nan()}, 0, 0, false, false, nan()},
		{"NaN against number", []float64{nan()}, []float64{1}, 1, 1, true, false, nan()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Regression(tt.stable, tt.canary, tt.abs, tt.rel, tt.nanEqual)
			assert.Equal(t, tt.agree, d.Agree)
			if math.IsNaN(tt.maxAbs) {
				assert.True(t, math.IsNaN(d.MaxAbsDiff))
			} else {
				assert.InDelta(t, tt.maxAbs, d.MaxAbsDiff, 1e-9)
			}
			assert.False(t, d.HasLabels)
		})
	}
}

func TestLooksLikeProbabilities(t *testing.T) {
	assert.True(t, looksLikeProbabilities([]float64{0.2, 0.8}))
	assert.True(t, looksLikeProbabilities([]float64{0.2, 0.795}), "float32 rounding slack")
	assert.False(t, looksLikeProbabilities([]float64{0.5}), "a scalar is not a distribution")
	assert.False(t, looksLikeProbabilities([]float64{0.5, 0.6}))
	assert.False(t, looksLikeProbabilities([]float64{-0.1, 1.1}))
	assert.False(t, looksLikeProbabilities([]float64{nan(), 1}))
}
