// Package diffstore keeps a record of compared stable/canary pairs for the
// data scientists' report and exports: every pair that did not agree, plus a
// deterministic sample of the agreements, redacted before it is queued and
// written in batches by one background writer to SQLite (embedded default)
// or PostgreSQL (shared by several replicas).
//
// The data plane never waits for the store: Recorder.OnResult does CPU work
// only and hands the record to a bounded queue; a full queue, a full disk or
// an unreachable database drops records and counts them
// (shadowsplit_diffstore_dropped_total) instead.
package diffstore

import (
	"encoding/json"
	"math"
	"time"
)

// Record is one compared pair as stored and exported. Its field set is the
// export schema (docs/report.md): add fields, never rename or retype them.
type Record struct {
	// ID is assigned by the store (increasing per store); 0 before insert.
	ID int64
	// Time is when the router received the request, in UTC.
	Time time.Time
	// RequestID is the request's X-Request-Id, TraceID its W3C trace id
	// (empty without tracing).
	RequestID string
	TraceID   string
	// RolloutID and RolloutStep say which rollout and step the pair was
	// compared under (empty / -1 when no rollout ran); see
	// Recorder.SetRollout.
	RolloutID   string
	RolloutStep int
	// Protocol is v1 or v2; Model is stable's model name, CanaryModel the
	// name used on the canary call, ModelVersion the V2 path version.
	Protocol     string
	Model        string
	CanaryModel  string
	ModelVersion string
	// Mode is the comparison mode configured for the model ("" = auto).
	Mode string
	// Outcome, Side, Reason and Detail are compare.Result's.
	Outcome string
	Side    string
	Reason  string
	Detail  string
	// Instances and Agreed are the agreement trials of the pair.
	Instances int
	Agreed    int
	// Weight is how many compared pairs this record stands for: 1 for
	// everything kept always, 1/rate for sampled agreements. sum(Weight)
	// estimates the number of pairs compared.
	Weight float64
	// StableStatus/CanaryStatus are HTTP statuses (0 when the call failed
	// without an answer; StableFailure/CanaryFailure then say why).
	StableStatus  int
	CanaryStatus  int
	StableFailure string
	CanaryFailure string
	// Latencies as measured by the proxy. LatencyDelta (canary - stable)
	// is only meaningful when Paired (both answered 2xx).
	StableLatency time.Duration
	CanaryLatency time.Duration
	LatencyDelta  time.Duration
	Paired        bool
	// MaxAbsDiff and MaxJS are the largest per-instance absolute
	// difference and Jensen-Shannon divergence; NaN when not applicable.
	MaxAbsDiff float64
	MaxJS      float64
	// StableLabel and CanaryLabel are instance 0's derived labels
	// (classification, probabilities), empty otherwise; InstanceDiffs has
	// every instance.
	StableLabel string
	CanaryLabel string
	// StableOutput and CanaryOutput are the compared outputs as JSON: an
	// array with one value per instance (capped, see Config).
	StableOutput json.RawMessage
	CanaryOutput json.RawMessage
	// InstanceDiffs is the per-instance comparison.
	InstanceDiffs []Instance
	// InputFingerprint is the hex HMAC-SHA256 of the canonical request
	// inputs; Inputs the allow-listed (possibly bucketed) fields of
	// instance 0; InputRaw the request body, only when raw storage is
	// enabled.
	InputFingerprint string
	Inputs           map[string]any
	InputRaw         string
}

// Instance is the comparison of one instance of the batch.
type Instance struct {
	Agree       bool           `json:"agree"`
	StableLabel string         `json:"stable_label,omitempty"`
	CanaryLabel string         `json:"canary_label,omitempty"`
	MaxAbsDiff  *float64       `json:"max_abs_diff,omitempty"`
	JS          *float64       `json:"js,omitempty"`
	TopKOverlap *float64       `json:"topk_overlap,omitempty"`
	Fingerprint string         `json:"fingerprint,omitempty"`
	Inputs      map[string]any `json:"inputs,omitempty"`
}

// Filter selects records. Zero fields select everything.
type Filter struct {
	// Since (inclusive) and Until (exclusive) bound Record.Time.
	Since, Until time.Time
	// Outcomes keeps only these outcomes.
	Outcomes []string
	// Model keeps only this stable model name.
	Model string
	// RolloutID keeps only this rollout.
	RolloutID string
	// Limit caps the number of records (0: no cap).
	Limit int
}

// finite returns a pointer to f, or nil for NaN/Inf (JSON has no NaN).
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}
