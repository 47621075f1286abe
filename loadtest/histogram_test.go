package loadtest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogramQuantilesAreWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var exact []time.Duration
	for range 100000 {
		// Log-normal-ish latencies from ~50µs to ~100ms.
		d := time.Duration(50e3 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*100))
		h.Record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := exact[int(q*float64(len(exact)))-1]
		got := h.Quantile(q)
		assert.InEpsilon(t, float64(want), float64(got), 0.01, "q=%v", q)
		assert.GreaterOrEqual(t, got, want, "the reported value is the bucket top, never below")
	}
	assert.Equal(t, exact[len(exact)-1], h.Max())
	assert.Equal(t, uint64(100000), h.Count())
}

func TestHistogramSmallValuesAreExactAndMergeAdds(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for i := range 100 {
		a.Record(time.Duration(i + 1))
	}
	b.Record(time.Hour) // above the trackable range: clamped, still counted
	b.Record(-5)
	a.Merge(b)
	assert.Equal(t, uint64(102), a.Count())
	assert.Equal(t, time.Duration(50), a.Quantile(0.5))
	assert.Equal(t, maxTrackable, a.Max())
	assert.Equal(t, time.Duration(0), NewHistogram().Quantile(0.99))
}

func TestBucketTopIsTheLargestValueOfItsBucket(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 1000, 123456789, uint64(maxTrackable)} {
		i := bucketOf(v)
		top := uint64(bucketTop(i))
		assert.GreaterOrEqual(t, top, v)
		assert.Equal(t, i, bucketOf(top), "v=%d", v)
		assert.Equal(t, i+1, bucketOf(top+1), "v=%d", v)
	}
}
