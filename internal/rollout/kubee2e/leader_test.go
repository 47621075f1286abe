package kubee2e

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
)

// countingTarget counts one replica's successful writes.
type countingTarget struct {
	rollout.Target
	writes atomic.Int64
}

func (c *countingTarget) Write(ctx context.Context, s rollout.Snapshot, r istio.Routes, a map[string]string) error {
	err := c.Target.Write(ctx, s, r, a)
	if err == nil {
		c.writes.Add(1)
	}
	return err
}

type replica struct {
	name   string
	leader *rollout.Leader
	target *countingTarget
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, f *fixture, name string, clk *clock) *replica {
	t.Helper()
	tg, err := rollout.NewKubeTarget(f.route, istio.KubeDeps{Client: f.dyn, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ct := &countingTarget{Target: tg}
	c, err := rollout.NewController(rollout.ControllerConfig{
		Rollout:  rollout.Config{Gates: rollout.Gates{MinPairs: 500, MinDwell: 2 * time.Minute}},
		Interval: 100 * time.Millisecond, Now: clk.Now, NewID: func() string { return "r1" },
	}, rollout.ControllerDeps{Target: ct, Evidence: &steadyCanary{Clock: clk, PerMinute: 1000}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	l, err := rollout.NewLeader(rollout.LeaderConfig{Namespace: f.ns, Name: "shadowsplit-rollout", Identity: name,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 300 * time.Millisecond},
		f.kube, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, leader: l, target: ct, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = l.Run(ctx, func(ctx context.Context) { _ = c.Run(ctx) })
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// TestOnlyTheLeaderWritesAndAFollowerTakesOver: two replicas, one Lease.
// Exactly one runs the loop and writes; when it stops, the other takes over
// within the lease duration and continues from the same step.
func TestOnlyTheLeaderWritesAndAFollowerTakesOver(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	// Fake time moves a minute every 150ms of real time, for everyone.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(150 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				clk.Add(time.Minute)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	a := startReplica(t, f, "router-a", clk)
	b := startReplica(t, f, "router-b", clk)
	step := func() int { _, s, _ := f.read(ctx, t); return s.Step }
	require.Eventually(t, func() bool { return step() >= 2 }, 30*time.Second, 50*time.Millisecond)

	lead, follow := a, b
	if b.leader.IsLeader() {
		lead, follow = b, a
	}
	require.True(t, lead.leader.IsLeader())
	require.False(t, follow.leader.IsLeader(), "exactly one leader")
	assert.Zero(t, follow.target.writes.Load(), "the follower never wrote")
	assert.Positive(t, lead.target.writes.Load())

	// Stop the leader (it releases the Lease on the way out).
	lead.cancel()
	<-lead.done
	atKill := step()
	stopped := time.Now()
	require.Eventually(t, follow.leader.IsLeader, 3*time.Second, 20*time.Millisecond, "takeover within the lease duration")
	t.Logf("%s took over %v after %s stopped, at step %d", follow.name, time.Since(stopped).Round(time.Millisecond), lead.name, atKill)

	require.Eventually(t, func() bool { _, s, _ := f.read(ctx, t); return s.Phase == rollout.PhasePromoted }, 30*time.Second, 50*time.Millisecond)
	_, s, _ := f.read(ctx, t)
	assert.Positive(t, follow.target.writes.Load())
	// History proves it continued: every step exactly once, in order.
	var steps []int
	for _, h := range s.History {
		steps = append(steps, h.Step)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, steps)
}
