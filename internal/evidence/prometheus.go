package evidence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/shadowsplit/shadowsplit/internal/compare"
)

// PrometheusConfig configures a Prometheus source.
type PrometheusConfig struct {
	// URL of the Prometheus server (http://prometheus.monitoring:9090).
	// Required.
	URL string
	// Selector is label matchers added to every series selector, e.g.
	// `namespace="models",app="model-router"`, so only this rollout's
	// routers count. Empty matches every shadowsplit_ series.
	Selector string
	// Timeout bounds each query (default 10s).
	Timeout time.Duration
	// Client is the HTTP client; nil means a client with Timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Prometheus measures the fleet: PromQL over every replica's counters, so
// evidence survives the restart of any one router. Counts are each
// series' growth since the given time (see since: exact to the scrape,
// cautious on resets; a replica gone since its last scrape is not
// counted). A query failure is an error (the rollout holds), an empty
// result is zero traffic. Safe for concurrent use; each call makes up to
// six instant queries bounded by ctx and Timeout.
type Prometheus struct {
	cfg PrometheusConfig
	api promv1.API
}

// NewPrometheus checks cfg; it does no I/O.
func NewPrometheus(cfg PrometheusConfig) (*Prometheus, error) {
	if cfg.URL == "" {
		return nil, errors.New("evidence: PrometheusConfig.URL is required")
	}
	if strings.ContainsAny(cfg.Selector, "{}") {
		return nil, fmt.Errorf("evidence: selector %q: give label matchers without braces, e.g. namespace=\"models\"", cfg.Selector)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("evidence: prometheus url %q: %w", cfg.URL, err)
	}
	return &Prometheus{cfg: cfg, api: promv1.NewAPI(c)}, nil
}

// sel builds a series selector with the configured matchers.
func (p *Prometheus) sel(metric string, matchers ...string) string {
	if p.cfg.Selector != "" {
		matchers = append([]string{p.cfg.Selector}, matchers...)
	}
	return metric + "{" + strings.Join(matchers, ",") + "}"
}

// since returns the PromQL for the growth of a counter since a time,
// summed by one label: per series the value now minus the value at since
// (exact, unlike increase(), which extrapolates to the range ends and
// overcounts short ranges by 10% and more); a series that started after
// since counts in full; a series that was reset (its difference is
// negative) counts from the reset only, an undercount, the cautious side.
func (p *Prometheus) since(metric, by string, since time.Time) string {
	x := p.sel(metric)
	at := fmt.Sprintf("%.3f", float64(since.UnixMilli())/1000)
	return fmt.Sprintf("sum by (%s) (((%s - %s @ %s) >= 0) or %s)", by, x, x, at, x)
}

// Evidence implements Source.
func (p *Prometheus) Evidence(ctx context.Context, since time.Time) (Evidence, error) {
	now := p.cfg.Now()
	ev := Evidence{Since: since, Until: now}

	byOutcome, err := p.vector(ctx, p.since(MetricComparisons, "outcome", since), now, "outcome")
	if err != nil {
		return Evidence{}, err
	}
	for o, v := range byOutcome {
		n := round(v)
		ev.Exchanges += n
		switch compare.Outcome(o) {
		case compare.OutcomeStableError, compare.OutcomeBothFailed:
			ev.StableFailures += n
		case compare.OutcomeCanaryError, compare.OutcomeCanaryTimeout:
			ev.CanaryFailures += n
		}
	}
	byResult, err := p.vector(ctx, p.since(MetricInstances, "result", since), now, "result")
	if err != nil {
		return Evidence{}, err
	}
	ev.Agreed = round(byResult["agree"])
	ev.Pairs = ev.Agreed + round(byResult["disagree"])

	lat, err := p.latency(ctx, now)
	if err != nil {
		return Evidence{}, err
	}
	ev.Latency = lat
	return ev, nil
}

// latency reads each replica's windowed quantiles of the paired
// comparisons (the pipeline's own gauges, over the pipeline's window): the
// canary's and the delta's worst replica against stable's best, so a slow
// stable replica never widens the canary's allowance. Stable and canary are thereby
// measured on the same shadowed requests on every replica, which the
// proxy's upstream histogram (stable: all client traffic) would not give.
func (p *Prometheus) latency(ctx context.Context, now time.Time) (*Latency, error) {
	n, err := p.scalar(ctx, fmt.Sprintf("sum(%s)", p.sel(MetricWindowInstances)), now)
	if err != nil || n == nil || round(*n) == 0 {
		return nil, err
	}
	l := &Latency{Samples: round(*n)}
	get := func(role string) (time.Duration, bool, error) {
		agg := "max"
		if role == "stable" {
			agg = "min"
		}
		v, err := p.scalar(ctx, fmt.Sprintf("%s(%s)", agg, p.sel(MetricWindowLat, `role="`+role+`"`, `quantile="0.99"`)), now)
		if err != nil || v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return 0, false, err
		}
		return time.Duration(*v * float64(time.Second)), true, nil
	}
	var okS, okC bool
	if l.StableP99, okS, err = get("stable"); err != nil {
		return nil, err
	}
	if l.CanaryP99, okC, err = get("canary"); err != nil {
		return nil, err
	}
	if !okS || !okC {
		return nil, nil
	}
	if l.DeltaP99, l.HasDelta, err = get("delta"); err != nil {
		return nil, err
	}
	return l, nil
}

// vector runs an instant query and returns value by the given label.
func (p *Prometheus) vector(ctx context.Context, q string, at time.Time, by string) (map[string]float64, error) {
	v, err := p.query(ctx, q, at)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range v {
		out[string(s.Metric[model.LabelName(by)])] += float64(s.Value)
	}
	return out, nil
}

// scalar runs an instant query expected to give at most one series; nil
// when it gives none.
func (p *Prometheus) scalar(ctx context.Context, q string, at time.Time) (*float64, error) {
	v, err := p.query(ctx, q, at)
	if err != nil || len(v) == 0 {
		return nil, err
	}
	f := float64(v[0].Value)
	return &f, nil
}

func (p *Prometheus) query(ctx context.Context, q string, at time.Time) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	res, _, err := p.api.Query(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("evidence: prometheus %s: query %q: %w", p.cfg.URL, q, err)
	}
	v, ok := res.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("evidence: prometheus %s: query %q: got %s, want a vector", p.cfg.URL, q, res.Type())
	}
	return v, nil
}

func round(v float64) int64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return int64(math.Round(v))
}
