package compare

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// AggregatorConfig configures an Aggregator. Zero values are the defaults.
type AggregatorConfig struct {
	// Window is how far back a Snapshot looks (default 5m).
	Window time.Duration
	// Buckets is how many time buckets the window is cut into (default
	// 20). Results expire a bucket at a time, so the window slides in
	// steps of Window/Buckets. Memory is about 10 KiB per bucket,
	// independent of traffic.
	Buckets int
	// Z is the normal quantile of the agreement interval (default Z95).
	Z float64
	// Now is the clock (default time.Now). Tests inject their own.
	Now func() time.Time
}

// Aggregator keeps windowed, bounded-memory aggregates of Results: a ring
// of time buckets, each with outcome counts, agreement trials and
// log-linear latency histograms. Safe for concurrent use; Add and Snapshot
// take a mutex for a short, allocation-free (Add) critical section and
// never block on anything else.
type Aggregator struct {
	window time.Duration
	width  time.Duration // of one bucket
	z      float64
	now    func() time.Time

	mu    sync.Mutex
	slots []slot
}

type slot struct {
	epoch     int64 // bucket number: unix nanos / width; -1 when unused
	outcomes  [8]int64
	exchanges int64
	instances int64
	agreed    int64
	compared  int64 // instances of agree/disagree results
	jsSum     float64
	jsN       int64
	stable    histogram
	canary    histogram
	delta     signedHist
}

// NewAggregator returns an empty Aggregator, or an error naming an invalid
// field.
func NewAggregator(cfg AggregatorConfig) (*Aggregator, error) {
	if cfg.Window < 0 {
		return nil, fmt.Errorf("aggregator: window %v: must not be negative", cfg.Window)
	}
	if cfg.Buckets < 0 {
		return nil, fmt.Errorf("aggregator: buckets %d: must not be negative", cfg.Buckets)
	}
	if cfg.Z < 0 || math.IsNaN(cfg.Z) {
		return nil, fmt.Errorf("aggregator: z %v: must be a positive number", cfg.Z)
	}
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 20
	}
	if cfg.Z == 0 {
		cfg.Z = Z95
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	width := cfg.Window / time.Duration(cfg.Buckets)
	if width <= 0 {
		return nil, fmt.Errorf("aggregator: window %v is shorter than %d buckets of 1ns", cfg.Window, cfg.Buckets)
	}
	a := &Aggregator{window: width * time.Duration(cfg.Buckets), width: width, z: cfg.Z, now: cfg.Now, slots: make([]slot, cfg.Buckets)}
	for i := range a.slots {
		a.slots[i].epoch = -1
	}
	return a, nil
}

func (a *Aggregator) epoch(t time.Time) int64 { return t.UnixNano() / int64(a.width) }

// Add records one Result at the current time. It does not retain r.
func (a *Aggregator) Add(r Result) {
	e := a.epoch(a.now())
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.slots[int(e%int64(len(a.slots)))]
	if s.epoch != e {
		if e < s.epoch {
			return // the clock went back past a whole window: drop it
		}
		*s = slot{epoch: e}
	}
	s.exchanges++
	if i := r.Outcome.index(); i >= 0 {
		s.outcomes[i]++
	}
	s.instances += int64(r.Instances)
	s.agreed += int64(r.Agreed)
	if r.Outcome == OutcomeAgree || r.Outcome == OutcomeDisagree {
		s.compared += int64(r.Instances)
		for i := range r.Diffs {
			if js := r.Diffs[i].JS; r.Diffs[i].Mode == ModeProbabilities && !math.IsNaN(js) {
				s.jsSum += js
				s.jsN++
			}
		}
	}
	if r.StableAnswered {
		s.stable.add(uint64(max(r.StableLatency, 0)))
	}
	if r.CanaryAnswered {
		s.canary.add(uint64(max(r.CanaryLatency, 0)))
	}
	if r.Paired {
		s.delta.add(r.LatencyDelta)
	}
}

// Summary is a read-only view of the aggregates over the window.
type Summary struct {
	// At is when the snapshot was taken; Window its length.
	At     time.Time
	Window time.Duration
	// Exchanges is the number of Results added; Outcomes counts them by
	// outcome (every Outcome present, zero or not).
	Exchanges int64
	Outcomes  map[Outcome]int64
	// Instances and Agreed are the agreement trials and successes (see
	// Result.Instances: canary failures count as disagreements, stable
	// failures not at all); Compared is the part of Instances that was
	// actually compared (agree and disagree outcomes).
	Instances, Agreed, Compared int64
	// Agreement is Agreed/Instances (0 when Instances is 0: check
	// Instances before trusting it); Lower and Upper its Wilson interval
	// ((0, 1) without trials).
	Agreement, Lower, Upper float64
	// MeanJS is the mean Jensen-Shannon divergence of compared probability
	// instances, and JSCount how many there were (MeanJS 0 when none).
	MeanJS  float64
	JSCount int64
	// Latency quantiles of each model (answered calls, any status) and of
	// the paired delta canary - stable (both 2xx; may be negative).
	Stable, Canary, Delta Quantiles
}

// Snapshot summarises the Results added within the window ending now.
// Safe for concurrent use with Add.
func (a *Aggregator) Snapshot() Summary {
	now := a.now()
	cur := a.epoch(now)
	sum := Summary{At: now, Window: a.window, Outcomes: make(map[Outcome]int64, len(Outcomes))}
	var stable, canary, delta signedHist
	var outcomes [8]int64
	jsSum := 0.0
	a.mu.Lock()
	for i := range a.slots {
		s := &a.slots[i]
		if s.epoch < 0 || s.epoch > cur || s.epoch <= cur-int64(len(a.slots)) {
			continue
		}
		for j, c := range s.outcomes {
			outcomes[j] += c
		}
		sum.Exchanges += s.exchanges
		sum.Instances += s.instances
		sum.Agreed += s.agreed
		sum.Compared += s.compared
		jsSum += s.jsSum
		sum.JSCount += s.jsN
		stable.pos.merge(&s.stable)
		canary.pos.merge(&s.canary)
		delta.merge(&s.delta)
	}
	a.mu.Unlock()
	for i, o := range Outcomes {
		sum.Outcomes[o] = outcomes[i]
	}
	if sum.Instances > 0 {
		sum.Agreement = float64(sum.Agreed) / float64(sum.Instances)
	}
	sum.Lower, sum.Upper = Wilson(sum.Agreed, sum.Instances, a.z)
	if sum.JSCount > 0 {
		sum.MeanJS = jsSum / float64(sum.JSCount)
	}
	sum.Stable, sum.Canary, sum.Delta = stable.quantiles(), canary.quantiles(), delta.quantiles()
	return sum
}
