package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/diffstore"
)

// records is a Scanner over a slice (the store's read side is tested in
// diffstore; here only the arithmetic is).
type records []diffstore.Record

func (rs records) Scan(_ context.Context, f diffstore.Filter, fn func(*diffstore.Record) error) error {
	for i := range rs {
		if !f.Since.IsZero() && rs[i].Time.Before(f.Since) {
			continue
		}
		if err := fn(&rs[i]); err != nil {
			return err
		}
	}
	return nil
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func classification(i int, stable, canary, region string, weight float64) diffstore.Record {
	agree := stable == canary
	outcome, agreed := "disagree", 0
	if agree {
		outcome, agreed = "agree", 1
	}
	step := 1
	if i >= 50 {
		step = 2
	}
	return diffstore.Record{Time: t0.Add(time.Duration(i) * time.Second), RequestID: "r", TraceID: "abc", Model: "m",
		RolloutID: "ro", RolloutStep: step, Outcome: outcome, Instances: 1, Agreed: agreed, Weight: weight,
		StableStatus: 200, CanaryStatus: 200, StableLatency: 10 * time.Millisecond, CanaryLatency: 14 * time.Millisecond,
		LatencyDelta: 4 * time.Millisecond, Paired: true, MaxAbsDiff: math.NaN(), MaxJS: math.NaN(),
		StableLabel: stable, CanaryLabel: canary, StableOutput: json.RawMessage(`["` + stable + `"]`), CanaryOutput: json.RawMessage(`["` + canary + `"]`),
		InstanceDiffs: []diffstore.Instance{{Agree: agree, StableLabel: stable, CanaryLabel: canary, Inputs: map[string]any{"region": region}}},
		Inputs:        map[string]any{"region": region}}
}

// flipSet: stable a -> canary a 40, a -> b 10, b -> a 5, b -> b 45, and one
// canary timeout. Kappa by hand: po = .85, pe = .5*.45 + .5*.55 = .5, so
// kappa = .7.
func flipSet() records {
	var rs records
	i := 0
	add := func(n int, s, c, region string) {
		for range n {
			rs = append(rs, classification(i, s, c, region, 1))
			i++
		}
	}
	add(40, "a", "a", "south")
	add(10, "a", "b", "north")
	add(5, "b", "a", "north")
	add(45, "b", "b", "south")
	rs = append(rs, diffstore.Record{Time: t0.Add(100 * time.Second), Outcome: "canary_timeout", Side: "canary", Reason: "timeout",
		Instances: 1, Weight: 1, StableStatus: 200, StableLatency: 10 * time.Millisecond, CanaryFailure: "timeout",
		RolloutID: "ro", RolloutStep: 2, MaxAbsDiff: math.NaN(), MaxJS: math.NaN()})
	// A tiny slice below the minimum count.
	rs = append(rs, classification(101, "a", "b", "east", 1))
	return rs
}

func TestSummaryNumbers(t *testing.T) {
	s, err := Build(context.Background(), flipSet(), Query{MinSliceCount: 5, TopN: 3}, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.EqualValues(t, 102, s.Records)
	assert.Equal(t, 102.0, s.Pairs)
	assert.Equal(t, 102.0, s.Instances)
	assert.Equal(t, 85.0, s.Agreed)
	require.NotNil(t, s.Agreement)
	assert.InDelta(t, 85.0/102, s.Agreement.Rate, 1e-12)
	assert.Less(t, s.Agreement.Lower, s.Agreement.Rate)
	assert.Greater(t, s.Agreement.Upper, s.Agreement.Rate)
	assert.False(t, s.Sampled)

	require.NotNil(t, s.Flip)
	assert.Equal(t, []string{"a", "b"}, s.Flip.Labels)
	assert.Equal(t, [][]float64{{40, 11}, {5, 45}}, s.Flip.Counts)
	assert.InDelta(t, 11.0/51, s.Flip.PerClass[0].Rate, 1e-12)
	assert.InDelta(t, 5.0/50, s.Flip.PerClass[1].Rate, 1e-12)
	require.NotNil(t, s.Kappa)
	// With the extra east flip: n=101, po=85/101, rows 51/50, cols 45/56.
	po, pe := 85.0/101, 51.0/101*45/101+50.0/101*56/101
	assert.InDelta(t, (po-pe)/(1-pe), *s.Kappa, 1e-12)

	outcomes := map[string]float64{}
	for _, o := range s.Outcomes {
		outcomes[o.Outcome] = o.Pairs
	}
	assert.Equal(t, map[string]float64{"agree": 85, "disagree": 16, "canary_timeout": 1, "schema_mismatch": 0,
		"stable_error": 0, "both_failed": 0, "canary_error": 0, "unparseable": 0}, outcomes)
	assert.Equal(t, []FailureCount{{Outcome: "canary_timeout", Side: "canary", Reason: "timeout", Pairs: 1}}, s.Failures)

	// Slices: north 15/15 disagree, south 0/85; east (1) is hidden.
	require.Len(t, s.Slices, 3) // north, south, model=m
	assert.Equal(t, "region", s.Slices[0].Field)
	assert.Equal(t, "north", s.Slices[0].Value)
	assert.Equal(t, 15.0, s.Slices[0].Instances)
	assert.Equal(t, 1.0, s.Slices[0].Rate.Rate)
	assert.Equal(t, 1, s.HiddenSlices)

	assert.Len(t, s.Examples, 3)
	assert.Equal(t, t0.Add(101*time.Second), s.Examples[0].Time, "equal scores: newest first")

	assert.Equal(t, []StepChange{{At: t0.Add(50 * time.Second), RolloutID: "ro", Step: 2}}, s.StepChanges)
	assert.Equal(t, RolloutInfo{ID: "ro", Step: 2}, s.Rollout)
	require.NotNil(t, s.Latency.Delta)
	assert.Equal(t, 4.0, s.Latency.Delta.P50)
	assert.Equal(t, 102.0, s.Latency.Stable.Count)
	assert.Equal(t, 101.0, s.Latency.Canary.Count)
	var inBuckets float64
	for _, p := range s.OverTime {
		inBuckets += p.Instances
	}
	assert.Equal(t, 102.0, inBuckets)
}

func TestWeightsEstimateTheFullTraffic(t *testing.T) {
	rs := records{classification(0, "a", "a", "x", 10), classification(1, "a", "b", "x", 1)}
	s, err := Build(context.Background(), rs, Query{}, t0)
	require.NoError(t, err)
	assert.True(t, s.Sampled)
	assert.Equal(t, 11.0, s.Pairs)
	assert.InDelta(t, 10.0/11, s.Agreement.Rate, 1e-12)
}

func TestRegressionAndProbabilityDistributions(t *testing.T) {
	var rs records
	for i := range 20 {
		s, c := float64(i), float64(i)+0.5
		js := 0.01 * float64(i)
		rs = append(rs, diffstore.Record{Time: t0.Add(time.Duration(i) * time.Second), Outcome: "disagree", Instances: 1, Weight: 1,
			MaxAbsDiff: 0.5, MaxJS: math.NaN(), StableOutput: json.RawMessage(mustJSON(s)), CanaryOutput: json.RawMessage(mustJSON(c)),
			InstanceDiffs: []diffstore.Instance{{MaxAbsDiff: &[]float64{0.5}[0], JS: &js}}})
		rs[i].StableOutput = json.RawMessage("[" + string(rs[i].StableOutput) + "]")
		rs[i].CanaryOutput = json.RawMessage("[" + string(rs[i].CanaryOutput) + "]")
	}
	sum, err := Build(context.Background(), rs, Query{}, t0)
	require.NoError(t, err)
	require.NotNil(t, sum.Difference)
	assert.Equal(t, 20.0, sum.Difference.Count)
	assert.InDelta(t, 0.5, sum.Difference.Mean, 1e-12)
	assert.Len(t, sum.DiffVsMean, 20)
	assert.Equal(t, Point{X: 0.25, Y: 0.5}, sum.DiffVsMean[0])
	require.NotNil(t, sum.Divergence)
	assert.InDelta(t, 0.095, sum.Divergence.Mean, 1e-12)
	assert.Nil(t, sum.Flip)
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestRenderIsSelfContained(t *testing.T) {
	s, err := Build(context.Background(), flipSet(), Query{MinSliceCount: 5, TraceURL: "https://jaeger.example/trace/{trace_id}"}, t0.Add(time.Hour))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, Render(&b, s))
	html := b.String()
	for _, banned := range []string{"<script", "<link", "src=", "@import", "url("} {
		assert.NotContains(t, html, banned, "the page must work offline")
	}
	assert.Contains(t, html, `<svg`)
	assert.Contains(t, html, `id="agreement">83.3%<`)
	assert.Contains(t, html, `href="https://jaeger.example/trace/abc"`)
	assert.Contains(t, html, `data-flip-rate="a"><b>21.6%</b>`)
	assert.GreaterOrEqual(t, strings.Count(html, "<svg"), 3, "agreement, latency and delta charts")

	// An empty store renders a page that says so.
	b.Reset()
	empty, err := Build(context.Background(), records{}, Query{}, t0)
	require.NoError(t, err)
	require.NoError(t, Render(&b, empty))
	assert.Contains(t, b.String(), "No compared pairs yet")
}

// With agreements sampled 1 in 10, ten stored agreements stand for 100:
// the slice's rate is the weighted estimate, but its interval is only as
// narrow as the stored records allow, and the minimum count applies to
// what was stored.
func TestSampledSlicesUseTheEffectiveSampleSize(t *testing.T) {
	var rs records
	for i := range 10 {
		rs = append(rs, classification(i, "a", "a", "north", 10))
	}
	for i := range 10 {
		rs = append(rs, classification(10+i, "a", "b", "north", 1))
	}
	for i := range 3 {
		rs = append(rs, classification(20+i, "a", "a", "south", 10)) // 30 weighted, 3 stored
	}
	s, err := Build(context.Background(), rs, Query{MinSliceCount: 5}, t0)
	require.NoError(t, err)
	var north *Slice
	for i := range s.Slices {
		require.NotEqual(t, "south", s.Slices[i].Value, "3 stored records are below the minimum, whatever their weight")
		if s.Slices[i].Field == "region" && s.Slices[i].Value == "north" {
			north = &s.Slices[i]
		}
	}
	require.NotNil(t, north)
	assert.InDelta(t, 10.0/110, north.Rate.Rate, 1e-12, "the rate estimates all traffic")
	// As if all 110 had been stored, the interval would be this narrow:
	lo, hi := compare.Wilson(10, 110, compare.Z95)
	assert.Greater(t, north.Rate.Upper-north.Rate.Lower, hi-lo, "20 stored records do not give the precision of 110")
}

func TestDistinctLabelsAreBounded(t *testing.T) {
	q := Query{}
	q.defaults()
	a := newAcc(q)
	for i := range 10 * maxKeptLabels {
		l := fmt.Sprintf("label-%d", i)
		r := classification(i, l, l+"-c", "x", 1)
		a.add(&r)
	}
	assert.LessOrEqual(t, len(a.labels), maxKeptLabels+1, "labels past the bound pool into (other)")
	assert.LessOrEqual(t, len(a.flips), (maxKeptLabels+1)*(maxKeptLabels+1))
	assert.Contains(t, a.labels, "(other)")
	m := a.flipMatrix()
	require.NotNil(t, m)
	assert.LessOrEqual(t, len(m.Labels), maxLabels)
}

func TestInterleavedReplicasMarkEachStepOnce(t *testing.T) {
	q := Query{}
	q.defaults()
	a := newAcc(q)
	for i := range 200 {
		r := classification(i, "a", "a", "x", 1)
		r.RolloutStep = 1 + i%2 // two replicas' records interleaved around a step change
		a.add(&r)
	}
	assert.Len(t, a.steps, 1)
}
