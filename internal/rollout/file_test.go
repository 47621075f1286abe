package rollout

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

func newFileController(t *testing.T, src *steadyCanary, clk *clock) (*Controller, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vs.yaml")
	require.NoError(t, os.WriteFile(path, []byte(testManifest), 0o644))
	tg, err := NewFileTarget(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	c, err := NewController(ControllerConfig{Rollout: Config{Gates: testGates}, Now: clk.Now, NewID: func() string { return "r1" }},
		ControllerDeps{Target: tg, Evidence: src, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return c, path
}

// readFile reads the manifest back with internal/istio's own File backend:
// what a GitOps tool would commit.
func readFile(t *testing.T, path string) (istio.Routes, State) {
	t.Helper()
	f, err := istio.NewFile(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	r, err := f.Routes(context.Background())
	if !errors.Is(err, istio.ErrDrift) {
		require.NoError(t, err)
	}
	tg, _ := NewFileTarget(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	snap, err := tg.Read(context.Background())
	require.NoError(t, err)
	s, err := DecodeState(snap.State)
	require.NoError(t, err)
	return r, s
}

func TestFileTargetPromotesThroughEveryStep(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, path := newFileController(t, &steadyCanary{Clock: clk, PerMinute: 1000}, clk)
	var weights []int32
	for i := 0; i < 40; i++ {
		d, err := c.Tick(ctx)
		require.NoError(t, err)
		r, s := readFile(t, path)
		require.Equal(t, s.Weight, r.CanaryWeight(), "state and weights are written together")
		if d.Write && (len(weights) == 0 || weights[len(weights)-1] != r.CanaryWeight()) {
			weights = append(weights, r.CanaryWeight())
		}
		if s.Phase == PhasePromoted {
			break
		}
		clk.Add(time.Minute)
	}
	assert.Equal(t, []int32{0, 5, 10, 25, 50, 100}, weights)
	r, s := readFile(t, path)
	assert.Equal(t, PhasePromoted, s.Phase)
	assert.Equal(t, ReasonPromoted, s.Reason)
	assert.Equal(t, int32(0), r.Primary.Weight)
	b, _ := os.ReadFile(path)
	assert.Contains(t, string(b), "name: other", "the other route survives")
}

func TestFileTargetRollsBackOnDisagreementWithTheReason(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, path := newFileController(t, &steadyCanary{Clock: clk, PerMinute: 1000, Dis: 0.03}, clk)
	for i := 0; i < 10; i++ {
		_, err := c.Tick(ctx)
		require.NoError(t, err)
		clk.Add(time.Minute)
	}
	r, s := readFile(t, path)
	assert.Equal(t, PhaseRolledBack, s.Phase)
	assert.Equal(t, ReasonAgreementLow, s.Reason)
	assert.Contains(t, s.Message, "agreement 0.9700")
	assert.Contains(t, s.Message, "below 0.9900")
	assert.Equal(t, int32(0), r.CanaryWeight())
	assert.Equal(t, 0, s.Step, "never advanced")
}

func TestFileTargetHoldsOnAHandEditAndDoesNotFight(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, path := newFileController(t, &steadyCanary{Clock: clk, PerMinute: 1000}, clk)
	for i := 0; i < 4; i++ { // start, then advance to step 1 (5%)
		_, err := c.Tick(ctx)
		require.NoError(t, err)
		clk.Add(time.Minute)
	}
	r, s := readFile(t, path)
	require.Equal(t, int32(5), r.CanaryWeight())
	b, _ := os.ReadFile(path)
	edited := strings.Replace(strings.Replace(string(b), "weight: 95", "weight: 70", 1), "weight: 5\n", "weight: 30\n", 1)
	require.NotEqual(t, string(b), edited)
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))

	for i := 0; i < 5; i++ {
		d, err := c.Tick(ctx)
		require.NoError(t, err)
		assert.Equal(t, ReasonDrift, d.Reason)
		assert.False(t, d.Write)
		clk.Add(time.Minute)
	}
	after, _ := os.ReadFile(path)
	assert.Equal(t, edited, string(after), "the hand edit stays")
	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, PhaseHolding, st.State.Phase)
	assert.NotEmpty(t, st.Drift)
	_, s2 := readFile(t, path)
	assert.Equal(t, s.Step, s2.Step)

	// The operator aborts: that is an explicit write over the edit.
	d, err := c.Command(ctx, CommandAbort)
	require.NoError(t, err)
	assert.Equal(t, ActionRollback, d.Action)
	r, s = readFile(t, path)
	assert.Equal(t, int32(0), r.CanaryWeight())
	assert.Equal(t, PhaseRolledBack, s.Phase)
	_, err = c.Command(ctx, CommandResume)
	assert.ErrorIs(t, err, ErrRejected)
}

func TestFileTargetWriteIsFencedByTheRead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vs.yaml")
	require.NoError(t, os.WriteFile(path, []byte(testManifest), 0o644))
	tg, err := NewFileTarget(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	stale, err := tg.Read(ctx)
	require.NoError(t, err)
	fresh, err := tg.Read(ctx)
	require.NoError(t, err)
	require.NoError(t, tg.Write(ctx, fresh, fresh.Routes.WithCanaryWeight(10), map[string]string{AnnotationState: `{"id":"a"}`}))
	err = tg.Write(ctx, stale, stale.Routes.WithCanaryWeight(5), map[string]string{AnnotationState: `{"id":"b"}`})
	assert.ErrorIs(t, err, ErrConflict)
	r, _ := func() (istio.Routes, error) { s, err := tg.Read(ctx); return s.Routes, err }()
	assert.Equal(t, int32(10), r.CanaryWeight())
}
