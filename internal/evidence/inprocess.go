package evidence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shadowsplit/shadowsplit/internal/compare"
)

// InProcessConfig configures an InProcess source.
type InProcessConfig struct {
	// Gatherer is the registry holding the pipeline's counters
	// (MetricComparisons, MetricInstances). Required.
	Gatherer prometheus.Gatherer
	// Summary returns the windowed comparison summary (pipeline.Snapshot);
	// its latency quantiles become Evidence.Latency. Nil: no latency.
	Summary func() compare.Summary
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Started is when the counters started from zero (the process start);
	// zero means the time NewInProcess is called.
	Started time.Time
}

// InProcess measures this replica alone. The counters are cumulative since
// the process started; to count "since a time" it keeps the totals it saw
// at each call (one per tick) and subtracts the newest ones taken at or
// before that time. When it has none that early (the step began before
// this process did) it counts from the process start: a restart loses the
// earlier evidence, so the rollout waits for more, never less. Latency is
// the summary's window (default 5m), not the step. Safe for concurrent use.
type InProcess struct {
	cfg InProcessConfig

	mu      sync.Mutex
	history []sample // oldest first, bounded
}

type sample struct {
	at time.Time
	t  totals
}

type totals struct{ exchanges, stableFail, canaryFail, pairs, agreed int64 }

// historyMax bounds the remembered totals: at one tick every 10s, 4096
// samples cover 11 hours, longer than any step is expected to last.
const historyMax = 4096

// NewInProcess checks cfg; it does no I/O.
func NewInProcess(cfg InProcessConfig) (*InProcess, error) {
	if cfg.Gatherer == nil {
		return nil, errors.New("evidence: InProcessConfig.Gatherer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Started.IsZero() {
		cfg.Started = cfg.Now()
	}
	return &InProcess{cfg: cfg}, nil
}

// Evidence implements Source. It blocks only on gathering the registry.
func (p *InProcess) Evidence(_ context.Context, since time.Time) (Evidence, error) {
	now := p.cfg.Now()
	cur, err := p.totals()
	if err != nil {
		return Evidence{}, err
	}
	p.mu.Lock()
	base, from := p.baseline(since)
	p.history = append(p.history, sample{at: now, t: cur})
	if len(p.history) > historyMax {
		p.history = append(p.history[:0:0], p.history[len(p.history)-historyMax:]...)
	}
	p.mu.Unlock()

	ev := Evidence{Since: from, Until: now,
		Exchanges:      cur.exchanges - base.exchanges,
		StableFailures: cur.stableFail - base.stableFail,
		CanaryFailures: cur.canaryFail - base.canaryFail,
		Pairs:          cur.pairs - base.pairs,
		Agreed:         cur.agreed - base.agreed,
	}
	if ev.Exchanges < 0 || ev.Pairs < 0 {
		return Evidence{}, fmt.Errorf("evidence: in-process counters went backwards (were they re-registered?)")
	}
	if p.cfg.Summary != nil {
		s := p.cfg.Summary()
		if s.Canary.Count > 0 {
			ev.Latency = &Latency{Samples: s.Canary.Count, StableP99: s.Stable.P99, CanaryP99: s.Canary.P99,
				DeltaP99: s.Delta.P99, HasDelta: s.Delta.Count > 0}
		}
	}
	return ev, nil
}

// baseline returns the totals to subtract for "since", and the time they
// were taken. Callers hold p.mu.
func (p *InProcess) baseline(since time.Time) (totals, time.Time) {
	if !since.After(p.cfg.Started) {
		return totals{}, p.cfg.Started
	}
	// The first sample taken at or after since: traffic from before the
	// step (the old weights) is never counted in it; at worst a little of
	// the step's own is left out (the safe direction).
	for i := range p.history {
		if !p.history[i].at.Before(since) {
			return p.history[i].t, p.history[i].at
		}
	}
	// No sample yet since then: start counting now.
	t, err := p.totals()
	if err != nil {
		return totals{}, p.cfg.Now()
	}
	return t, p.cfg.Now()
}

func (p *InProcess) totals() (totals, error) {
	mfs, err := p.cfg.Gatherer.Gather()
	if err != nil {
		return totals{}, fmt.Errorf("evidence: gather in-process metrics: %w", err)
	}
	var t totals
	for _, mf := range mfs {
		switch mf.GetName() {
		case MetricComparisons:
			for _, m := range mf.GetMetric() {
				v := counter(m)
				t.exchanges += v
				switch label(m, "outcome") {
				case string(compare.OutcomeStableError), string(compare.OutcomeBothFailed):
					t.stableFail += v
				case string(compare.OutcomeCanaryError), string(compare.OutcomeCanaryTimeout):
					t.canaryFail += v
				}
			}
		case MetricInstances:
			for _, m := range mf.GetMetric() {
				v := counter(m)
				t.pairs += v
				if label(m, "result") == "agree" {
					t.agreed += v
				}
			}
		}
	}
	return t, nil
}

func counter(m *dto.Metric) int64 { return int64(m.GetCounter().GetValue()) }

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
