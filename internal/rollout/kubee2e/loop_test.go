package kubee2e

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
)

// tickUntil ticks once a fake minute until done says so or n ticks passed,
// checking after every tick that the state and the weights on the server
// agree (they are written in one update).
func tickUntil(t *testing.T, f *fixture, c *rollout.Controller, clk *clock, n int, done func(rollout.State) bool) rollout.State {
	t.Helper()
	ctx := testCtx(t)
	var s rollout.State
	for range n {
		_, err := c.Tick(ctx)
		require.NoError(t, err)
		routes, st, _ := f.read(ctx, t)
		require.Equal(t, st.Weight, routes.CanaryWeight(), "step and weight disagree on the server")
		s = st
		if done(s) {
			return s
		}
		clk.Add(time.Minute)
	}
	return s
}

func TestAgreeingCanaryIsPromotedThroughEveryStep(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	c := f.controller(t, &steadyCanary{Clock: clk, PerMinute: 1000}, clk, true)

	var seen []int32
	tickUntil(t, f, c, clk, 40, func(s rollout.State) bool {
		if len(seen) == 0 || seen[len(seen)-1] != s.Weight {
			seen = append(seen, s.Weight)
		}
		return s.Phase == rollout.PhasePromoted
	})
	assert.Equal(t, []int32{0, 5, 10, 25, 50, 100}, seen)
	routes, s, vs := f.read(ctx, t)
	assert.Equal(t, rollout.PhasePromoted, s.Phase)
	assert.Equal(t, int32(0), routes.Primary.Weight)
	assert.Equal(t, int32(100), routes.Canary.Weight)
	assert.Len(t, s.History, 6, "start + 5 steps")

	// One Event per transition, on the VirtualService.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		evs, err := f.kube.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "model").String()})
		require.NoError(ct, err)
		reasons := map[string]int{}
		for _, e := range evs.Items {
			assert.Equal(ct, vs.GetUID(), e.InvolvedObject.UID)
			reasons[e.Reason] += int(max(e.Count, 1))
		}
		assert.Equal(ct, 1, reasons[string(rollout.ReasonStarted)])
		assert.Equal(ct, 4, reasons[string(rollout.ReasonGatesPassed)])
		assert.Equal(ct, 1, reasons[string(rollout.ReasonPromoted)])
	}, 20*time.Second, 200*time.Millisecond)
}

func TestDisagreeingCanaryIsRolledBackWithTheReason(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	c := f.controller(t, &steadyCanary{Clock: clk, PerMinute: 1000, Dis: 0.03}, clk, false)
	s := tickUntil(t, f, c, clk, 10, func(s rollout.State) bool { return s.Phase.Terminal() })
	assert.Equal(t, rollout.PhaseRolledBack, s.Phase)
	assert.Equal(t, rollout.ReasonAgreementLow, s.Reason)
	assert.Contains(t, s.Message, "agreement 0.9700")
	routes, _, _ := f.read(ctx, t)
	assert.Equal(t, int32(0), routes.CanaryWeight())
}

func TestSlowCanaryIsRolledBackOnLatencyAndFailingOneOnErrors(t *testing.T) {
	ctx := testCtx(t)
	slow := newFixture(ctx, t)
	clk := newClock()
	c := slow.controller(t, &steadyCanary{Clock: clk, PerMinute: 1000, CanaryP99: 60 * time.Millisecond}, clk, false)
	s := tickUntil(t, slow, c, clk, 10, func(s rollout.State) bool { return s.Phase.Terminal() })
	assert.Equal(t, rollout.PhaseRolledBack, s.Phase)
	assert.Equal(t, rollout.ReasonLatency, s.Reason)
	assert.Contains(t, s.Message, "canary p99 60ms")

	failing := newFixture(ctx, t)
	clk2 := newClock()
	c2 := failing.controller(t, &steadyCanary{Clock: clk2, PerMinute: 1000, Fail: 0.05}, clk2, false)
	s = tickUntil(t, failing, c2, clk2, 10, func(s rollout.State) bool { return s.Phase.Terminal() })
	assert.Equal(t, rollout.PhaseRolledBack, s.Phase)
	assert.Equal(t, rollout.ReasonCanaryErrors, s.Reason)
}

// TestRestartResumesAtTheSameStepWithoutDoubleStep: a replica advances to
// step 2 and "dies"; a fresh replica (no memory) resumes at step 2, counts
// evidence from the step's start kept on the VirtualService, and a write the
// dead replica had decided on an old read is refused.
func TestRestartResumesAtTheSameStepWithoutDoubleStep(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	src := &steadyCanary{Clock: clk, PerMinute: 1000}
	first := f.controller(t, src, clk, false)
	s := tickUntil(t, f, first, clk, 20, func(s rollout.State) bool { return s.Step == 2 })
	require.Equal(t, 2, s.Step)
	started := s.StepStartedAt

	// The old replica had read the object before its last write: a decision
	// on that read must not land.
	tg, err := rollout.NewKubeTarget(f.route, istio.KubeDeps{Client: f.dyn, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	stale, err := tg.Read(ctx)
	require.NoError(t, err)

	restarted := f.controller(t, src, clk, false) // a new process: nothing in memory
	d, err := restarted.Tick(ctx)                 // same fake minute: not enough dwell yet
	require.NoError(t, err)
	assert.Equal(t, rollout.ReasonCollecting, d.Reason)
	_, s, _ = f.read(ctx, t)
	assert.Equal(t, 2, s.Step, "resumed at the same step")
	assert.True(t, started.Equal(s.StepStartedAt), "evidence still counts from the step's start")

	clk.Add(2 * time.Minute)
	d, err = restarted.Tick(ctx)
	require.NoError(t, err)
	require.Equal(t, rollout.ActionAdvance, d.Action)
	_, s, _ = f.read(ctx, t)
	require.Equal(t, 3, s.Step)

	err = tg.Write(ctx, stale, stale.Routes.WithCanaryWeight(25), map[string]string{rollout.AnnotationState: stale.State})
	assert.ErrorIs(t, err, rollout.ErrConflict)
	d, err = first.Tick(ctx) // the old replica, back: it re-reads, it does not step again
	require.NoError(t, err)
	assert.NotEqual(t, rollout.ActionAdvance, d.Action)
	_, s, _ = f.read(ctx, t)
	assert.Equal(t, 3, s.Step, "exactly one step")
}

func TestHandEditHoldsWithAnEventAndNoFight(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	c := f.controller(t, &steadyCanary{Clock: clk, PerMinute: 1000}, clk, true)
	tickUntil(t, f, c, clk, 10, func(s rollout.State) bool { return s.Step == 1 })

	vs, err := f.vs.Get(ctx, "model", metav1.GetOptions{})
	require.NoError(t, err)
	http := vs.Object["spec"].(map[string]any)["http"].([]any)
	dests := http[0].(map[string]any)["route"].([]any)
	dests[0].(map[string]any)["weight"] = int64(60)
	dests[1].(map[string]any)["weight"] = int64(40)
	edited, err := f.vs.Update(ctx, vs, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
	require.NoError(t, err)

	for range 4 {
		clk.Add(time.Minute)
		d, err := c.Tick(ctx)
		require.NoError(t, err)
		assert.Equal(t, rollout.ReasonDrift, d.Reason)
	}
	after, err := f.vs.Get(ctx, "model", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, edited.GetResourceVersion(), after.GetResourceVersion(), "no write at all while drifted")
	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, rollout.PhaseHolding, st.State.Phase)
	assert.Equal(t, int32(40), st.CanaryWeight)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		evs, err := f.kube.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("reason", string(rollout.ReasonDrift)).String()})
		require.NoError(ct, err)
		require.Len(ct, evs.Items, 1)
		assert.Equal(ct, "Warning", evs.Items[0].Type)
		assert.Equal(ct, int32(1), max(evs.Items[0].Count, 1), "one Event, not one per tick")
	}, 20*time.Second, 200*time.Millisecond)
}
