// Package pipeline turns the exchanges the proxy captures into comparisons,
// a windowed summary and Prometheus metrics. It is the proxy's Recorder and
// the rollout logic's (and the admin API's) source of evidence. It runs on
// the proxy's shadow workers, never on the client's path.
package pipeline

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Config configures a Pipeline. Zero values are usable.
type Config struct {
	// Default compares models not named in Models; its zero value is
	// compare's documented protocol default.
	Default compare.Options
	// Models holds per-model options, keyed by stable's model name as it
	// appears in the request path.
	Models map[string]compare.Options
	// Window is how far back the summary looks; 0 means 5 minutes.
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one debug line per failed comparison (never the
	// payload); nil discards.
	Logger *slog.Logger
	// OnResult, when set, receives every comparison after it is counted.
	// It runs on the shadow worker and must not block (the diff store
	// hands records to its own bounded queue). The Exchange's byte slices
	// are only valid during the call.
	OnResult func(models.Exchange, compare.Result)
}

// Pipeline compares exchanges and keeps their aggregates. Safe for
// concurrent use; Record never blocks on I/O.
type Pipeline struct {
	cfg Config
	agg *compare.Aggregator
	log *slog.Logger

	outcomes  map[compare.Outcome]prometheus.Counter
	failures  *prometheus.CounterVec
	instAgree prometheus.Counter
	instDis   prometheus.Counter
}

// New validates the options and registers the pipeline's metrics on reg
// (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) (*Pipeline, error) {
	if err := cfg.Default.Validate(); err != nil {
		return nil, fmt.Errorf("compare.default: %w", err)
	}
	for name, o := range cfg.Models {
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("compare.models.%s: %w", name, err)
		}
	}
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	agg, err := compare.NewAggregator(compare.AggregatorConfig{Window: cfg.Window, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, agg: agg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	comparisons := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowsplit_comparisons_total",
		Help: "Shadowed exchanges compared, by outcome (agree, disagree, schema_mismatch, stable_error, canary_error, canary_timeout, both_failed, unparseable).",
	}, []string{"outcome"})
	p.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowsplit_comparison_failures_total",
		Help: "Exchanges that could not be compared as agree/disagree, by outcome, the side at fault and the reason.",
	}, []string{"outcome", "side", "reason"})
	instances := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowsplit_compared_instances_total",
		Help: "Agreement trials (batch instances) by result; a canary failure counts its stable batch as disagreements. Fleet agreement = rate(result=\"agree\") / rate(all).",
	}, []string{"result"})
	p.outcomes = make(map[compare.Outcome]prometheus.Counter, len(compare.Outcomes))
	for _, o := range compare.Outcomes {
		p.outcomes[o] = comparisons.WithLabelValues(string(o))
	}
	p.instAgree = instances.WithLabelValues("agree")
	p.instDis = instances.WithLabelValues("disagree")
	if reg != nil {
		for _, c := range []prometheus.Collector{comparisons, p.failures, instances, &summaryCollector{p: p}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("pipeline: register metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Record compares one exchange and counts it. It implements
// proxy.Recorder: it does CPU work only and keeps none of ex's slices.
func (p *Pipeline) Record(ex models.Exchange) {
	opts, ok := p.cfg.Models[ex.Model]
	if !ok {
		opts = p.cfg.Default
	}
	res := compare.Compare(ex, opts)
	p.agg.Add(res)
	if c, ok := p.outcomes[res.Outcome]; ok {
		c.Inc()
	}
	if res.Instances > 0 {
		p.instAgree.Add(float64(res.Agreed))
		p.instDis.Add(float64(res.Instances - res.Agreed))
	}
	if res.Outcome != compare.OutcomeAgree && res.Outcome != compare.OutcomeDisagree {
		p.failures.WithLabelValues(string(res.Outcome), string(res.Side), string(res.Reason)).Inc()
		p.log.Debug("comparison failed", "request_id", ex.RequestID, "model", ex.Model,
			"outcome", res.Outcome, "side", res.Side, "reason", res.Reason, "detail", res.Detail)
	}
	if p.cfg.OnResult != nil {
		p.cfg.OnResult(ex, res)
	}
}

// Snapshot is the windowed summary: agreement with its interval, outcome
// counts and latency quantiles. Safe for concurrent use.
func (p *Pipeline) Snapshot() compare.Summary { return p.agg.Snapshot() }
