package diffstore

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

// rolloutRef is the rollout a pair is compared under.
type rolloutRef struct {
	id   string
	step int
}

// SetRollout records which rollout and step the following pairs belong to
// (id "" clears it). The rollout loop calls it on every step change. Safe
// for concurrent use; never blocks.
func (s *Store) SetRollout(id string, step int) {
	if id == "" {
		s.rollout.Store(nil)
		return
	}
	s.rollout.Store(&rolloutRef{id: id, step: step})
}

// OnResult is the pipeline hook (pipeline.Config.OnResult): it decides
// whether to keep the pair (every non-agree outcome; agreements sampled
// deterministically), redacts the request and enqueues the record. It runs
// on a shadow worker, reads ex's byte slices only during the call, does
// CPU work only and never blocks: a full queue drops the record and counts
// it. Safe for concurrent use.
func (s *Store) OnResult(ex models.Exchange, res compare.Result) {
	weight := 1.0
	if res.Outcome == compare.OutcomeAgree {
		if !s.sampleAgreement() {
			s.m.sampledOut.Inc()
			return
		}
		weight = 1 / s.cfg.AgreementSample
	}
	rec := s.build(ex, res, weight)
	s.enqueue(rec)
}

// sampleAgreement keeps agreement n when floor(n*rate) advances: exactly
// rate of them, evenly spread, no randomness (tests count exactly).
func (s *Store) sampleAgreement() bool {
	rate := s.cfg.AgreementSample
	if rate >= 1 {
		return true
	}
	if rate <= 0 {
		return false
	}
	n := s.agreements.Add(1)
	return math.Floor(float64(n)*rate) > math.Floor(float64(n-1)*rate)
}

var predPool = sync.Pool{New: func() any { return new(models.Predictions) }}

// build copies what is kept out of the exchange. Nothing of the request
// but the redactor's output is kept.
func (s *Store) build(ex models.Exchange, res compare.Result, weight float64) Record {
	r := Record{
		Time: ex.Start.UTC(), RequestID: ex.RequestID, TraceID: ex.TraceID, RolloutStep: -1,
		Protocol: string(ex.Protocol), Model: ex.Model, CanaryModel: ex.CanaryModel, ModelVersion: ex.Version,
		Mode: string(res.Mode), Outcome: string(res.Outcome), Side: string(res.Side), Reason: string(res.Reason),
		Detail: res.Detail, Instances: res.Instances, Agreed: res.Agreed, Weight: weight,
		StableStatus: ex.Stable.Status, CanaryStatus: ex.Canary.Status,
		StableFailure: string(ex.Stable.Failure), CanaryFailure: string(ex.Canary.Failure),
		StableLatency: res.StableLatency, CanaryLatency: res.CanaryLatency, LatencyDelta: res.LatencyDelta,
		Paired: res.Paired, MaxAbsDiff: math.NaN(), MaxJS: math.NaN(),
	}
	if ro := s.rollout.Load(); ro != nil {
		r.RolloutID, r.RolloutStep = ro.id, ro.step
	}
	red := s.red.redact(ex.Protocol, ex.Request)
	r.InputFingerprint, r.InputRaw = red.fingerprint, red.raw
	// Allow-listed headers describe the whole request: every instance
	// carries them, so the report can slice by them.
	if hv := s.red.headers(ex.Header); hv != nil {
		for i := range red.instances {
			red.instances[i].inputs = withValues(red.instances[i].inputs, hv)
		}
		if len(red.instances) == 0 {
			r.Inputs = withValues(nil, hv)
		}
	}
	if len(red.instances) > 0 {
		r.Inputs = red.instances[0].inputs
	}
	n := max(len(res.Diffs), len(red.instances))
	if n > s.cfg.MaxInstances {
		n = s.cfg.MaxInstances
	}
	if n > 0 {
		r.InstanceDiffs = make([]Instance, n)
	}
	for i := range r.InstanceDiffs {
		in := &r.InstanceDiffs[i]
		if i < len(red.instances) {
			in.Fingerprint, in.Inputs = red.instances[i].fingerprint, red.instances[i].inputs
		}
		if i >= len(res.Diffs) {
			continue
		}
		d := &res.Diffs[i]
		in.Agree = d.Agree
		if d.HasLabels {
			in.StableLabel, in.CanaryLabel = labelString(d.Stable), labelString(d.Canary)
		}
		in.MaxAbsDiff, in.JS, in.TopKOverlap = finite(d.MaxAbsDiff), finite(d.JS), finite(d.TopKOverlap)
	}
	for i := range res.Diffs {
		d := &res.Diffs[i]
		if !math.IsNaN(d.MaxAbsDiff) && (math.IsNaN(r.MaxAbsDiff) || d.MaxAbsDiff > r.MaxAbsDiff) {
			r.MaxAbsDiff = d.MaxAbsDiff
		}
		if !math.IsNaN(d.JS) && (math.IsNaN(r.MaxJS) || d.JS > r.MaxJS) {
			r.MaxJS = d.JS
		}
	}
	if len(r.InstanceDiffs) > 0 {
		r.StableLabel, r.CanaryLabel = r.InstanceDiffs[0].StableLabel, r.InstanceDiffs[0].CanaryLabel
	}
	output := ""
	if s.cfg.OutputFor != nil {
		output = s.cfg.OutputFor(ex.Model)
	}
	r.StableOutput = s.outputs(ex.Protocol, ex.Stable, output)
	r.CanaryOutput = s.outputs(ex.Protocol, ex.Canary, output)
	return r
}

func labelString(l compare.Label) string {
	if l.Name != "" {
		return l.Name
	}
	return strconv.FormatInt(l.Index, 10)
}

// outputs decodes a 2xx answer into one JSON value per instance (at most
// MaxInstances instances, MaxOutputValues numbers each); nil when the
// answer is not readable.
func (s *Store) outputs(proto models.Protocol, resp models.Response, output string) json.RawMessage {
	if !resp.OK() {
		return nil
	}
	p := predPool.Get().(*models.Predictions)
	defer func() { p.Reset(); predPool.Put(p) }()
	if err := models.DecodeResponse(proto, resp, output, p); err != nil {
		return nil
	}
	vals := make([]any, 0, min(len(p.Values), s.cfg.MaxInstances))
	for i := range p.Values {
		if i == s.cfg.MaxInstances {
			break
		}
		vals = append(vals, s.value(&p.Values[i]))
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return nil
	}
	return b
}

func (s *Store) value(v *models.Value) any {
	switch v.Kind {
	case models.KindInt:
		return v.Int
	case models.KindString:
		return string(v.Str)
	case models.KindNumbers:
		n := min(len(v.Nums), s.cfg.MaxOutputValues)
		out := make([]*float64, n)
		for i := range n {
			out[i] = finite(v.Nums[i])
		}
		if len(v.Nums) == 1 {
			return out[0]
		}
		return out
	case models.KindClass:
		c := map[string]any{"index": v.Int, "label": string(v.Str)}
		if len(v.Nums) > 0 {
			c["score"] = finite(v.Nums[0])
		}
		return c
	case models.KindStrings:
		n := min(len(v.Strs), s.cfg.MaxOutputValues)
		out := make([]string, n)
		for i := range n {
			out[i] = string(v.Strs[i])
		}
		return out
	case models.KindJSON:
		if len(v.Raw) > 4096 || !json.Valid(v.Raw) {
			return nil
		}
		return json.RawMessage(append([]byte(nil), v.Raw...))
	}
	return nil
}

// rolloutPtr is the atomic holder type (kept here with its setter).
type rolloutPtr = atomic.Pointer[rolloutRef]

// withValues adds kv to m (made if nil) and returns it.
func withValues(m, kv map[string]any) map[string]any {
	if m == nil {
		m = make(map[string]any, len(kv))
	}
	for k, v := range kv {
		m[k] = v
	}
	return m
}
