// Package evidence says what the canary did since a point in time: how many
// comparisons, how many agreed, how many calls failed on each side, and the
// latency of both models. The rollout decides on it; this package only
// measures.
//
// Two sources sit behind one interface:
//
//   - InProcess reads this replica's own counters (the pipeline's metrics,
//     gathered from the registry) and its windowed latency summary. Right
//     for a single replica, and the embedded default.
//   - Prometheus asks a Prometheus server with PromQL over every replica's
//     shadowsplit_ metrics: the fleet's evidence, surviving restarts of
//     any one replica.
//
// Both read the same metric names (shadowsplit_comparisons_total,
// shadowsplit_compared_instances_total), so a rollout judged in process and
// one judged through Prometheus count the same things.
package evidence

import (
	"context"
	"time"
)

// Metric names both sources read. They are the pipeline's public contract.
const (
	MetricComparisons     = "shadowsplit_comparisons_total"        // {outcome}
	MetricInstances       = "shadowsplit_compared_instances_total" // {result="agree|disagree"}
	MetricWindowLat       = "shadowsplit_window_latency_seconds"   // gauge {role,quantile}
	MetricWindowInstances = "shadowsplit_window_instances"         // gauge
)

// Source measures the canary. Implementations are safe for concurrent use
// and block on I/O bounded by ctx.
type Source interface {
	// Evidence returns what was observed from since until now. A failure to
	// measure is an error (never a zero Evidence that looks healthy); no
	// traffic is Exchanges == 0, which the rollout treats as unknown.
	Evidence(ctx context.Context, since time.Time) (Evidence, error)
}

// Evidence is a measurement over [Since, Until]. Counts are totals over the
// period, across every replica the source sees.
type Evidence struct {
	Since, Until time.Time

	// Exchanges is every shadowed exchange that was compared or failed.
	Exchanges int64
	// StableFailures are exchanges where stable itself failed (stable_error,
	// both_failed): nothing can be learned about the canary from them.
	StableFailures int64
	// CanaryFailures are exchanges where stable answered and the canary
	// failed or timed out (canary_error, canary_timeout).
	CanaryFailures int64
	// Pairs are agreement trials (batch instances; a canary failure counts
	// its stable batch as disagreements) and Agreed how many agreed.
	Pairs, Agreed int64

	// Latency is nil when the source has no latency for the period.
	Latency *Latency
	// Noise, when the source measures it, is stable compared with stable:
	// the model's own non-determinism (optional baseline).
	Noise *Noise
}

// Latency holds p99s over the period (or the source's latency window).
type Latency struct {
	// Samples is the number of canary calls the quantiles are built on.
	Samples int64
	// StableP99 and CanaryP99 are each model's own p99.
	StableP99, CanaryP99 time.Duration
	// DeltaP99 is the p99 of the paired delta canary - stable on the same
	// request; HasDelta says whether it was measured.
	DeltaP99 time.Duration
	HasDelta bool
}

// Noise is a stable-against-stable agreement sample.
type Noise struct {
	Pairs, Disagreed int64
}

// CanaryErrorDenominator is the number of exchanges on which the canary could
// have failed: those where stable did not.
func (e Evidence) CanaryErrorDenominator() int64 { return e.Exchanges - e.StableFailures }
