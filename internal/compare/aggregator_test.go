package compare

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWilsonKnownValues(t *testing.T) {
	// Reference values from the closed form (Wilson 1927), computed
	// independently; 0/10 and 10/10 are the classic 0.2775/0.7225 bounds.
	tests := []struct {
		s, n         int64
		lower, upper float64
	}{
		{81, 263, 0.2552885199, 0.3662095770},
		{0, 10, 0, 0.2775327999},
		{10, 10, 0.7224672001, 1},
		{5, 10, 0.2365930905, 0.7634069095},
		{990, 1000, 0.9816905311, 0.9945592456},
		{1, 1, 0.2065493144, 1},
	}
	for _, tt := range tests {
		lo, hi := Wilson(tt.s, tt.n, Z95)
		assert.InDelta(t, tt.lower, lo, 1e-9, "%d/%d lower", tt.s, tt.n)
		assert.InDelta(t, tt.upper, hi, 1e-9, "%d/%d upper", tt.s, tt.n)
	}
	lo, hi := Wilson(0, 0, Z95)
	assert.Equal(t, [2]float64{0, 1}, [2]float64{lo, hi}, "no trials, no evidence")
	lo, hi = Wilson(12, 10, Z95)
	assert.Equal(t, 1.0, hi, "successes clamped to n")
	assert.Greater(t, lo, 0.7)
	// A wider z gives a wider interval.
	lo99, hi99 := Wilson(81, 263, 2.5758293035489)
	assert.Less(t, lo99, 0.2552885199)
	assert.Greater(t, hi99, 0.3662095770)
}

// clock is a manual clock for the injected Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestAggregator(t *testing.T, c *clock) *Aggregator {
	t.Helper()
	a, err := NewAggregator(AggregatorConfig{Window: time.Minute, Buckets: 6, Now: c.Now})
	require.NoError(t, err)
	return a
}

func result(o Outcome, instances, agreed int) Result {
	return Result{Outcome: o, Instances: instances, Agreed: agreed}
}

func TestAggregatorCountsAndAgreement(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	a := newTestAggregator(t, c)
	a.Add(result(OutcomeAgree, 3, 3))
	a.Add(result(OutcomeDisagree, 2, 1))
	a.Add(result(OutcomeCanaryTimeout, 1, 0))
	a.Add(result(OutcomeStableError, 0, 0))
	a.Add(Result{Outcome: OutcomeAgree, Instances: 1, Agreed: 1, Diffs: []InstanceDiff{{Mode: ModeProbabilities, Agree: true, JS: 0.25}}})
	s := a.Snapshot()
	assert.Equal(t, int64(5), s.Exchanges)
	assert.Equal(t, int64(7), s.Instances)
	assert.Equal(t, int64(5), s.Agreed)
	assert.Equal(t, int64(6), s.Compared)
	assert.InDelta(t, 5.0/7, s.Agreement, 1e-12)
	lo, hi := Wilson(5, 7, Z95)
	assert.Equal(t, lo, s.Lower)
	assert.Equal(t, hi, s.Upper)
	assert.Equal(t, int64(2), s.Outcomes[OutcomeAgree])
	assert.Equal(t, int64(1), s.Outcomes[OutcomeCanaryTimeout])
	assert.Equal(t, int64(0), s.Outcomes[OutcomeBothFailed], "every outcome is present")
	assert.Len(t, s.Outcomes, len(Outcomes))
	assert.InDelta(t, 0.25, s.MeanJS, 1e-12)
	assert.Equal(t, int64(1), s.JSCount)
	assert.Equal(t, time.Minute, s.Window)
	assert.Equal(t, c.Now(), s.At)
}

func TestAggregatorEmpty(t *testing.T) {
	a := newTestAggregator(t, &clock{t: time.Unix(1000, 0)})
	s := a.Snapshot()
	assert.Zero(t, s.Instances)
	assert.Zero(t, s.Agreement)
	assert.Equal(t, 0.0, s.Lower)
	assert.Equal(t, 1.0, s.Upper)
	assert.Zero(t, s.Stable.Count)
	assert.Zero(t, s.Delta.P99)
}

func TestAggregatorWindowExpiry(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} // bucket-aligned
	a := newTestAggregator(t, c)                                 // 1m window, 10s buckets
	a.Add(result(OutcomeDisagree, 1, 0))
	c.Advance(30 * time.Second)
	a.Add(result(OutcomeAgree, 1, 1))
	assert.Equal(t, int64(2), a.Snapshot().Instances)

	c.Advance(29 * time.Second) // 59s after the first: still inside
	assert.Equal(t, int64(2), a.Snapshot().Instances)

	c.Advance(1 * time.Second) // 60s: the first bucket has left the window
	s := a.Snapshot()
	assert.Equal(t, int64(1), s.Instances)
	assert.Equal(t, int64(1), s.Agreed)
	assert.Equal(t, int64(0), s.Outcomes[OutcomeDisagree])

	// A new result reuses the expired bucket's slot without inheriting it.
	a.Add(result(OutcomeAgree, 4, 4))
	assert.Equal(t, int64(5), a.Snapshot().Instances)

	c.Advance(10 * time.Minute) // long idle: everything expired
	assert.Zero(t, a.Snapshot().Exchanges)
}

func TestAggregatorLatencyQuantiles(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	a := newTestAggregator(t, c)
	// Stable: 1..1000 ms uniform. Canary: stable + 5 ms. Delta: -500..+499 µs uniform.
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(1000)
	var deltas []time.Duration
	for _, i := range perm {
		st := time.Duration(i+1) * time.Millisecond
		d := time.Duration(i-500) * time.Microsecond
		deltas = append(deltas, d)
		a.Add(Result{Outcome: OutcomeAgree, StableAnswered: true, CanaryAnswered: true, Paired: true,
			StableLatency: st, CanaryLatency: st + 5*time.Millisecond, LatencyDelta: d})
	}
	// Failures contribute to the per-model latencies but not to the delta.
	a.Add(Result{Outcome: OutcomeCanaryTimeout, StableAnswered: true, StableLatency: 500 * time.Millisecond})
	s := a.Snapshot()
	assert.Equal(t, int64(1001), s.Stable.Count)
	assert.Equal(t, int64(1000), s.Canary.Count)
	assert.Equal(t, int64(1000), s.Delta.Count)

	within := func(want, got time.Duration, what string) {
		t.Helper()
		assert.InDelta(t, float64(want), float64(got), math.Abs(float64(want))*0.04+float64(2*time.Microsecond), "%s: want %v got %v", what, want, got)
	}
	within(500*time.Millisecond, s.Stable.P50, "stable p50")
	within(900*time.Millisecond, s.Stable.P90, "stable p90")
	within(990*time.Millisecond, s.Stable.P99, "stable p99")
	within(505*time.Millisecond, s.Canary.P50, "canary p50")
	within(995*time.Millisecond, s.Canary.P99, "canary p99")

	sort.Slice(deltas, func(i, j int) bool { return deltas[i] < deltas[j] })
	within(deltas[499], s.Delta.P50, "delta p50")
	within(deltas[899], s.Delta.P90, "delta p90")
	within(deltas[989], s.Delta.P99, "delta p99")
	assert.Less(t, s.Delta.P50, time.Duration(0), "nearest-rank p50 of -500..499 µs is negative")
}

func TestAggregatorNegativeDeltaQuantiles(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	a := newTestAggregator(t, c)
	for i := range 100 { // canary 20 ms faster on 99, 1 s slower on one
		d := -20 * time.Millisecond
		if i == 0 {
			d = time.Second
		}
		a.Add(Result{Outcome: OutcomeAgree, Paired: true, LatencyDelta: d})
	}
	s := a.Snapshot()
	assert.InDelta(t, float64(-20*time.Millisecond), float64(s.Delta.P50), float64(time.Millisecond))
	assert.InDelta(t, float64(-20*time.Millisecond), float64(s.Delta.P99), float64(time.Millisecond))
}

func TestHistogramBuckets(t *testing.T) {
	// Bucket bounds are contiguous and each midpoint maps back to its bucket.
	for i := range histBuckets {
		assert.Equal(t, i, bucketOf(bucketMid(i)), "bucket %d", i)
	}
	assert.Equal(t, histBuckets-1, bucketOf(math.MaxUint64))
	for _, v := range []uint64{17, 1000, 123_456_789, 1 << 39} {
		mid := bucketMid(bucketOf(v))
		assert.InDelta(t, float64(v), float64(mid), float64(v)/16, "value %d", v)
	}
}

func TestAggregatorConcurrentUse(t *testing.T) {
	a, err := NewAggregator(AggregatorConfig{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				a.Add(Result{Outcome: OutcomeAgree, Instances: 1, Agreed: 1, StableAnswered: true, StableLatency: time.Duration(g*i) * time.Microsecond})
				if i%100 == 0 {
					_ = a.Snapshot()
				}
			}
		})
	}
	wg.Wait()
	s := a.Snapshot()
	assert.Equal(t, int64(2000), s.Instances)
	assert.Equal(t, int64(2000), s.Stable.Count)
}

func TestNewAggregatorValidates(t *testing.T) {
	for _, cfg := range []AggregatorConfig{
		{Window: -time.Second},
		{Buckets: -1},
		{Z: -1},
		{Window: 5, Buckets: 10},
	} {
		_, err := NewAggregator(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
	a, err := NewAggregator(AggregatorConfig{})
	require.NoError(t, err)
	assert.Equal(t, 5*time.Minute, a.Snapshot().Window)
}

func TestAggregatorMemoryIsBounded(t *testing.T) {
	// The footprint is fixed by the bucket count, not by traffic.
	a, err := NewAggregator(AggregatorConfig{})
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(1000, func() {
		a.Add(Result{Outcome: OutcomeAgree, Instances: 1, Agreed: 1, StableAnswered: true, StableLatency: time.Millisecond, Paired: true, LatencyDelta: -time.Millisecond})
	})
	assert.Zero(t, allocs)
}
