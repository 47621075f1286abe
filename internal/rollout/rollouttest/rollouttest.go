// Package rollouttest holds what the rollout's tests share across packages
// (internal/rollout and its real-API-server suite in kubee2e): a manual
// clock, a canary of fixed behaviour as an evidence.Source, and the
// VirtualService the fixtures manage. Tests only.
package rollouttest

import (
	"context"
	"sync"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
)

// InlineManifest is a VirtualService in the inline shape at 100/0, with the
// managed route "shadowsplit" between the router and the canary.
const InlineManifest = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: model
spec:
  hosts: [model]
  http:
  - name: shadowsplit
    route:
    - destination: {host: model-router}
      weight: 100
    - destination: {host: model-canary}
      weight: 0
`

// Clock is a manual clock shared by a test and its Controller. Safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at a fixed instant, so runs are repeatable.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// SteadyCanary is an evidence.Source for a canary with a fixed behaviour:
// PerMinute exchanges a minute since the step began, disagreeing at rate
// Dis, failing at rate Fail, with canary p99 CanaryP99 (default 21ms;
// stable's is 20ms). A non-nil Err is returned instead of evidence.
type SteadyCanary struct {
	Clock     *Clock
	PerMinute int64
	Dis, Fail float64
	CanaryP99 time.Duration
	Err       error
}

// Evidence implements evidence.Source.
func (s *SteadyCanary) Evidence(_ context.Context, since time.Time) (evidence.Evidence, error) {
	if s.Err != nil {
		return evidence.Evidence{}, s.Err
	}
	now := s.Clock.Now()
	n := int64(now.Sub(since)/time.Minute) * s.PerMinute
	fails := int64(float64(n) * s.Fail)
	dis := int64(float64(n)*s.Dis) + fails
	p99 := s.CanaryP99
	if p99 == 0 {
		p99 = 21 * time.Millisecond
	}
	return evidence.Evidence{Since: since, Until: now, Exchanges: n, CanaryFailures: fails, Pairs: n, Agreed: n - dis,
		Latency: &evidence.Latency{Samples: n, StableP99: 20 * time.Millisecond, CanaryP99: p99}}, nil
}
