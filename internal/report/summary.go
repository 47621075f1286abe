// Package report turns stored diff records into what a data scientist
// reads: a summary with its interval, agreement over time, the label flip
// matrix and Cohen's kappa, difference distributions, latency side by side,
// disagreement by slice and the top disagreeing examples, as JSON (Build)
// and as one self-contained HTML page with inline SVG charts (Render).
//
// Everything is computed in one streaming pass over the records, with
// bounded memory (fixed-size samples and a top-N heap). Agreements may be
// sampled by the store: every count here is weighted by Record.Weight, so
// it estimates the full traffic.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/diffstore"
)

// Query selects and shapes a report. Zero values are the defaults.
type Query struct {
	// Since/Until bound the records (zero: all); RolloutID and Model
	// narrow them.
	Since, Until time.Time
	RolloutID    string
	Model        string
	// MinSliceCount hides slices with fewer instances (0: 20).
	MinSliceCount int
	// TopN is the number of example disagreements (0: 20).
	TopN int
	// Points is the number of time buckets of the agreement chart (0: 40).
	Points int
	// RolloutPhase is the current rollout phase, shown as given (the
	// rollout loop knows it, the store does not).
	RolloutPhase string
	// TraceURL, when set, links trace ids: "{trace_id}" is replaced.
	TraceURL string
}

// Summary is the report's content; its JSON form is the automation API
// (field names are a contract: only add).
type Summary struct {
	GeneratedAt time.Time  `json:"generated_at"`
	Since       *time.Time `json:"since,omitempty"`
	Until       *time.Time `json:"until,omitempty"`
	RolloutID   string     `json:"rollout_id,omitempty"`
	Model       string     `json:"model,omitempty"`
	// First and Last are the times of the oldest and newest record read.
	First *time.Time `json:"first,omitempty"`
	Last  *time.Time `json:"last,omitempty"`

	// Records is how many stored records were read; Pairs the number of
	// compared pairs they stand for (sum of weights); Sampled is true
	// when agreements were sampled (counts are then estimates).
	Records int64   `json:"records"`
	Pairs   float64 `json:"pairs"`
	Sampled bool    `json:"agreements_sampled"`
	// Instances/Agreed are the (weighted) agreement trials; Agreement
	// their rate and 95% Wilson interval, null without trials.
	Instances float64   `json:"instances"`
	Agreed    float64   `json:"agreed"`
	Agreement *Interval `json:"agreement"`
	// Outcomes counts pairs by outcome (every outcome, in order);
	// Failures breaks the failure outcomes down by side and reason.
	Outcomes []OutcomeCount `json:"outcomes"`
	Failures []FailureCount `json:"failures"`
	// Rollout is the newest record's rollout (and the given phase).
	Rollout RolloutInfo `json:"rollout"`

	OverTime    []TimePoint  `json:"agreement_over_time"`
	StepChanges []StepChange `json:"step_changes"`

	Flip  *FlipMatrix `json:"flip_matrix,omitempty"`
	Kappa *float64    `json:"cohens_kappa"`
	// NoiseBaseline is stable's disagreement with itself, when measured
	// (not measured by this version: always null).
	NoiseBaseline *float64 `json:"noise_baseline"`

	// Regression: canary - stable per scalar instance, and the pairs
	// (mean, difference) of the difference-vs-mean plot (a sample).
	Difference *Distribution `json:"regression_difference,omitempty"`
	DiffVsMean []Point       `json:"regression_diff_vs_mean,omitempty"`
	// Divergence is the Jensen-Shannon divergence of probability outputs.
	Divergence *Distribution `json:"probability_divergence,omitempty"`

	Latency LatencyReport `json:"latency"`

	Slices       []Slice   `json:"slices"`
	HiddenSlices int       `json:"hidden_slices"`
	MinSlice     int       `json:"min_slice_count"`
	Examples     []Example `json:"top_disagreements"`

	// Interactive shows a range/rollout form on the page (the admin
	// page sets it; a static file has nowhere to submit to).
	Interactive bool `json:"-"`

	traceURL string
}

// Interval is a rate with its 95% Wilson interval.
type Interval struct {
	Rate  float64 `json:"rate"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// OutcomeCount is the (weighted) number of pairs of one outcome.
type OutcomeCount struct {
	Outcome string  `json:"outcome"`
	Pairs   float64 `json:"pairs"`
	Share   float64 `json:"share"`
}

// FailureCount counts one failure outcome/side/reason.
type FailureCount struct {
	Outcome string  `json:"outcome"`
	Side    string  `json:"side"`
	Reason  string  `json:"reason"`
	Pairs   float64 `json:"pairs"`
}

// RolloutInfo is the rollout the newest record belongs to.
type RolloutInfo struct {
	ID    string `json:"id"`
	Step  int    `json:"step"`
	Phase string `json:"phase,omitempty"`
}

// TimePoint is the agreement of one time bucket.
type TimePoint struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Instances float64   `json:"instances"`
	Agreed    float64   `json:"agreed"`
	Agreement *Interval `json:"agreement"`
}

// StepChange marks when the rollout id or step changed.
type StepChange struct {
	At        time.Time `json:"at"`
	RolloutID string    `json:"rollout_id"`
	Step      int       `json:"step"`
}

// FlipMatrix counts instances by stable label (rows) and canary label
// (columns), with each stable class's flip rate.
type FlipMatrix struct {
	Labels   []string    `json:"labels"`
	Counts   [][]float64 `json:"counts"`
	PerClass []ClassFlip `json:"per_class"`
}

// ClassFlip is how often the canary changed one stable label.
type ClassFlip struct {
	Label   string  `json:"label"`
	Count   float64 `json:"count"`
	Flipped float64 `json:"flipped"`
	Rate    float64 `json:"rate"`
}

// Distribution summarises a sample of values with a histogram.
type Distribution struct {
	Count  float64   `json:"count"`
	Mean   float64   `json:"mean"`
	P50    float64   `json:"p50"`
	P90    float64   `json:"p90"`
	P99    float64   `json:"p99"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Edges  []float64 `json:"edges"`
	Counts []float64 `json:"counts"`
}

// Point is one (x, y) pair.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// LatencyReport holds both models' latency (ms) and the paired delta.
type LatencyReport struct {
	Stable *Distribution `json:"stable_ms"`
	Canary *Distribution `json:"canary_ms"`
	Delta  *Distribution `json:"delta_ms"`
}

// Slice is the disagreement of the instances sharing one field value.
type Slice struct {
	Field     string   `json:"field"`
	Value     string   `json:"value"`
	Instances float64  `json:"instances"`
	Disagreed float64  `json:"disagreed"`
	Rate      Interval `json:"disagreement"`
}

// Example is one of the most disagreeing pairs.
type Example struct {
	Time         time.Time       `json:"time"`
	RequestID    string          `json:"request_id"`
	TraceID      string          `json:"trace_id"`
	TraceLink    string          `json:"trace_link,omitempty"`
	Model        string          `json:"model"`
	Mode         string          `json:"mode"`
	Score        float64         `json:"score"`
	StableLabel  string          `json:"stable_label,omitempty"`
	CanaryLabel  string          `json:"canary_label,omitempty"`
	StableOutput json.RawMessage `json:"stable_output"`
	CanaryOutput json.RawMessage `json:"canary_output"`
	Inputs       map[string]any  `json:"inputs,omitempty"`
	InputRaw     string          `json:"input_raw,omitempty"`
}

// Build reads the records matching q from src in one pass and computes
// the summary. It does I/O through src only; memory is bounded whatever
// the number of records. Safe for concurrent use.
func Build(ctx context.Context, src diffstore.Scanner, q Query, now time.Time) (*Summary, error) {
	q.defaults()
	a := newAcc(q)
	f := diffstore.Filter{Since: q.Since, Until: q.Until, RolloutID: q.RolloutID, Model: q.Model}
	if err := src.Scan(ctx, f, func(r *diffstore.Record) error { a.add(r); return nil }); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	s := a.finish(q)
	s.GeneratedAt = now.UTC()
	if !q.Since.IsZero() {
		t := q.Since.UTC()
		s.Since = &t
	}
	if !q.Until.IsZero() {
		t := q.Until.UTC()
		s.Until = &t
	}
	s.RolloutID, s.Model = q.RolloutID, q.Model
	return s, nil
}

func (q *Query) defaults() {
	if q.MinSliceCount <= 0 {
		q.MinSliceCount = 20
	}
	if q.TopN <= 0 {
		q.TopN = 20
	}
	if q.Points <= 0 {
		q.Points = 40
	}
}

// interval returns the Wilson interval of weighted counts (the weights
// make n an estimate; the interval is then approximate).
func interval(agreed, n float64) *Interval {
	if n <= 0 {
		return nil
	}
	lo, hi := compare.Wilson(int64(math.Round(agreed)), int64(math.Round(n)), compare.Z95)
	return &Interval{Rate: agreed / n, Lower: lo, Upper: hi}
}

// kappa is Cohen's kappa of a square confusion matrix: agreement beyond
// what the two label marginals give by chance. nil when undefined.
func kappa(m [][]float64) *float64 {
	var n, diag float64
	rows := make([]float64, len(m))
	cols := make([]float64, len(m))
	for i := range m {
		for j, c := range m[i] {
			n += c
			rows[i] += c
			cols[j] += c
			if i == j {
				diag += c
			}
		}
	}
	if n == 0 {
		return nil
	}
	po := diag / n
	pe := 0.0
	for i := range rows {
		pe += rows[i] / n * cols[i] / n
	}
	if pe >= 1 {
		return nil
	}
	k := (po - pe) / (1 - pe)
	return &k
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
