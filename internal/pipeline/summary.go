package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/compare"
)

// SummaryJSON is the summary as the admin API serves it. Field names are a
// public contract (scripts and the demo read them); durations are seconds.
type SummaryJSON struct {
	At            time.Time        `json:"at"`
	WindowSeconds float64          `json:"window_seconds"`
	Exchanges     int64            `json:"exchanges"`
	Outcomes      map[string]int64 `json:"outcomes"`
	Instances     int64            `json:"instances"`
	Agreed        int64            `json:"agreed"`
	Compared      int64            `json:"compared"`
	Agreement     *Interval        `json:"agreement"`
	MeanJS        *float64         `json:"mean_js_divergence,omitempty"`
	Latency       LatencyJSON      `json:"latency_seconds"`
}

// Interval is the agreement rate and its 95% Wilson interval. It is null in
// JSON when nothing was compared: no data is not "100% agreement".
type Interval struct {
	Rate  float64 `json:"rate"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// LatencyJSON holds the quantiles of both models and of the paired delta.
type LatencyJSON struct {
	Stable QuantilesJSON `json:"stable"`
	Canary QuantilesJSON `json:"canary"`
	Delta  QuantilesJSON `json:"delta"`
}

// QuantilesJSON is one latency distribution in seconds.
type QuantilesJSON struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
}

// SummaryJSON returns the current summary in its JSON shape.
func (p *Pipeline) SummaryJSON() any { return toJSON(p.Snapshot()) }

func toJSON(s compare.Summary) SummaryJSON {
	out := SummaryJSON{
		At: s.At.UTC(), WindowSeconds: s.Window.Seconds(), Exchanges: s.Exchanges,
		Outcomes: make(map[string]int64, len(s.Outcomes)), Instances: s.Instances, Agreed: s.Agreed, Compared: s.Compared,
		Latency: LatencyJSON{Stable: quantiles(s.Stable), Canary: quantiles(s.Canary), Delta: quantiles(s.Delta)},
	}
	for o, n := range s.Outcomes {
		out.Outcomes[string(o)] = n
	}
	if s.Instances > 0 {
		out.Agreement = &Interval{Rate: s.Agreement, Lower: s.Lower, Upper: s.Upper}
	}
	if s.JSCount > 0 {
		js := s.MeanJS
		out.MeanJS = &js
	}
	return out
}

func quantiles(q compare.Quantiles) QuantilesJSON {
	return QuantilesJSON{Count: q.Count, P50: q.P50.Seconds(), P90: q.P90.Seconds(), P99: q.P99.Seconds()}
}

// summaryCollector exports the windowed summary at scrape time: one
// snapshot per scrape, nothing on the record path.
type summaryCollector struct{ p *Pipeline }

var (
	descAgreement = prometheus.NewDesc("shadowsplit_agreement_ratio",
		"Agreement rate of this replica over the comparison window; bound=estimate|lower|upper (95% Wilson interval). Absent until something was compared. For the fleet, use shadowsplit_compared_instances_total.",
		[]string{"bound"}, nil)
	descWindowInstances = prometheus.NewDesc("shadowsplit_window_instances",
		"Agreement trials in this replica's comparison window.", nil, nil)
	descWindowLatency = prometheus.NewDesc("shadowsplit_window_latency_seconds",
		"Latency quantiles over the comparison window; role=stable|canary|delta (delta = canary - stable on the same request, may be negative).",
		[]string{"role", "quantile"}, nil)
)

func (c *summaryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAgreement
	ch <- descWindowInstances
	ch <- descWindowLatency
}

func (c *summaryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Snapshot()
	ch <- prometheus.MustNewConstMetric(descWindowInstances, prometheus.GaugeValue, float64(s.Instances))
	if s.Instances > 0 {
		ch <- prometheus.MustNewConstMetric(descAgreement, prometheus.GaugeValue, s.Agreement, "estimate")
		ch <- prometheus.MustNewConstMetric(descAgreement, prometheus.GaugeValue, s.Lower, "lower")
		ch <- prometheus.MustNewConstMetric(descAgreement, prometheus.GaugeValue, s.Upper, "upper")
	}
	for _, r := range []struct {
		role string
		q    compare.Quantiles
	}{{"stable", s.Stable}, {"canary", s.Canary}, {"delta", s.Delta}} {
		if r.q.Count == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descWindowLatency, prometheus.GaugeValue, r.q.P50.Seconds(), r.role, "0.5")
		ch <- prometheus.MustNewConstMetric(descWindowLatency, prometheus.GaugeValue, r.q.P90.Seconds(), r.role, "0.9")
		ch <- prometheus.MustNewConstMetric(descWindowLatency, prometheus.GaugeValue, r.q.P99.Seconds(), r.role, "0.99")
	}
}
