package kubee2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
)

// cutProxy forwards TCP to the API server until Cut, which drops every
// connection and refuses new ones: a replica that vanished without
// releasing its Lease, as a killed pod does.
type cutProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestCrashedLeaderIsReplacedWithinTheLeaseDuration: the leader loses the
// API server without releasing its Lease (its connections are cut, as if the
// pod was killed). The follower takes over once the lease expires and
// continues from the step the VirtualService shows.
func TestCrashedLeaderIsReplacedWithinTheLeaseDuration(t *testing.T) {
	ctx := testCtx(t)
	f := newFixture(ctx, t)
	clk := newClock()
	const lease = 3 * time.Second

	u, err := url.Parse(env.Config().Host)
	require.NoError(t, err)
	proxy := newCutProxy(t, u.Host)
	viaProxy := rest.CopyConfig(env.Config())
	viaProxy.Host = "https://" + proxy.ln.Addr().String()
	viaProxy.Timeout = 2 * time.Second

	start := func(cfg *rest.Config, name string) (*rollout.Leader, func()) {
		dyn, err := dynamic.NewForConfig(cfg)
		require.NoError(t, err)
		kc, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		tg, err := rollout.NewKubeTarget(f.route, istio.KubeDeps{Client: dyn, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		c, err := rollout.NewController(rollout.ControllerConfig{
			Rollout:  rollout.Config{Gates: rollout.Gates{MinPairs: 500, MinDwell: 2 * time.Minute}},
			Interval: 100 * time.Millisecond, Now: clk.Now, NewID: func() string { return "r1" },
		}, rollout.ControllerDeps{Target: tg, Evidence: &steadyCanary{Clock: clk, PerMinute: 1000}, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		l, err := rollout.NewLeader(rollout.LeaderConfig{Namespace: f.ns, Name: "rollout", Identity: name,
			LeaseDuration: lease, RenewDeadline: 2 * time.Second, RetryPeriod: 300 * time.Millisecond}, kc, nil, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		lctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = l.Run(lctx, func(ctx context.Context) { _ = c.Run(ctx) }) }()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return l, stop
	}

	a, _ := start(viaProxy, "router-a")
	require.Eventually(t, a.IsLeader, 10*time.Second, 20*time.Millisecond)
	b, _ := start(env.Config(), "router-b") // starts second: follows
	for range 3 {                           // a few fake minutes: the leader steps
		clk.Add(3 * time.Minute)
		time.Sleep(300 * time.Millisecond)
	}
	_, before, _ := f.read(ctx, t)
	require.GreaterOrEqual(t, before.Step, 1, "the leader made progress")
	require.False(t, b.IsLeader())

	proxy.Cut() // router-a is gone, its Lease still held
	cut := time.Now()
	require.Eventually(t, b.IsLeader, lease+3*time.Second, 20*time.Millisecond, "takeover within the lease duration (+ retry)")
	t.Logf("router-b leads %v after router-a was cut off (lease %v), VirtualService at step %d",
		time.Since(cut).Round(10*time.Millisecond), lease, before.Step)

	_, s, _ := f.read(ctx, t)
	require.GreaterOrEqual(t, s.Step, before.Step, "continues from the same step, never back")
	require.Eventually(t, func() bool {
		clk.Add(3 * time.Minute)
		_, s, _ := f.read(ctx, t)
		return s.Phase == rollout.PhasePromoted
	}, 30*time.Second, 200*time.Millisecond)
	_, s, _ = f.read(ctx, t)
	steps := map[int]int{}
	for _, h := range s.History {
		steps[h.Step]++
	}
	for st, n := range steps {
		require.Equal(t, 1, n, "step %d recorded %d times", st, n)
	}
}
