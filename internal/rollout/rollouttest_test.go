package rollout

import (
	"context"
	"sync"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// testRoute is the managed route of the fixtures (inline shape).
var testRoute = istio.Config{Name: "model", Hosts: istio.Hosts{Router: "model-router", Canary: "model-canary"}}

const testManifest = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: model
spec:
  hosts: [model]
  http:
  - name: other
    route:
    - destination: {host: elsewhere}
  - name: shadowsplit
    route:
    - destination: {host: model-router}
      weight: 100
    - destination: {host: model-canary}
      weight: 0
`

// clock is a manual clock shared by a test and its Controller.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// steadyCanary is an evidence.Source for a canary with a fixed behaviour:
// perMinute exchanges a minute since the step began, disagreeing at rate
// dis, failing at rate fail, with the given canary p99 (stable's is 20ms).
type steadyCanary struct {
	clock     *clock
	perMinute int64
	dis, fail float64
	canaryP99 time.Duration
	err       error
}

func (s *steadyCanary) Evidence(_ context.Context, since time.Time) (evidence.Evidence, error) {
	if s.err != nil {
		return evidence.Evidence{}, s.err
	}
	now := s.clock.Now()
	n := int64(now.Sub(since)/time.Minute) * s.perMinute
	fails := int64(float64(n) * s.fail)
	dis := int64(float64(n)*s.dis) + fails
	p99 := s.canaryP99
	if p99 == 0 {
		p99 = 21 * time.Millisecond
	}
	return evidence.Evidence{Since: since, Until: now, Exchanges: n, CanaryFailures: fails, Pairs: n, Agreed: n - dis,
		Latency: &evidence.Latency{Samples: n, StableP99: 20 * time.Millisecond, CanaryP99: p99}}, nil
}

// testGates decide within a few ticks of a minute at 1000 exchanges/min.
var testGates = Gates{MinPairs: 500, MinDwell: 2 * time.Minute}
