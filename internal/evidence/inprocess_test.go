package evidence

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestInProcessCountsSinceAPointInTime(t *testing.T) {
	ctx := context.Background()
	p, reg := newPipeline(t)
	clk := &manualClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	start := clk.Now()
	src, err := NewInProcess(InProcessConfig{Gatherer: reg, Summary: p.Snapshot, Now: clk.Now, Started: start})
	require.NoError(t, err)

	ev, err := src.Evidence(ctx, start)
	require.NoError(t, err)
	assert.Zero(t, ev.Exchanges, "nothing yet is zero traffic, not agreement")
	assert.Nil(t, ev.Latency)

	record(p, 90, 8, 2)
	clk.Add(time.Minute)
	ev, err = src.Evidence(ctx, start)
	require.NoError(t, err)
	assert.Equal(t, int64(100), ev.Exchanges)
	assert.Equal(t, int64(2), ev.CanaryFailures)
	assert.Equal(t, int64(0), ev.StableFailures)
	assert.Equal(t, int64(100), ev.Pairs, "a canary failure counts its stable batch as a disagreement")
	assert.Equal(t, int64(90), ev.Agreed)
	require.NotNil(t, ev.Latency)
	assert.Equal(t, int64(100), ev.Latency.Samples, "every answered canary call, 503s included")
	assert.Greater(t, ev.Latency.CanaryP99, ev.Latency.StableP99)

	// A new step starts now: only what follows counts.
	step := clk.Now()
	record(p, 10, 0, 0)
	clk.Add(time.Minute)
	ev, err = src.Evidence(ctx, step)
	require.NoError(t, err)
	assert.Equal(t, int64(10), ev.Exchanges)
	assert.Equal(t, int64(10), ev.Agreed)
	assert.True(t, ev.Since.Equal(step))

	// A step that began before this process: counted from the process start.
	ev, err = src.Evidence(ctx, start.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(110), ev.Exchanges)
}

// The controller stamps a step's start before the tick's evidence sample
// is taken. Traffic recorded between the last sample and the step start
// ran under the old weights and must not count in the new step.
func TestInProcessNeverCountsTrafficFromBeforeTheStep(t *testing.T) {
	ctx := context.Background()
	p, reg := newPipeline(t)
	clk := &manualClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	start := clk.Now()
	src, err := NewInProcess(InProcessConfig{Gatherer: reg, Summary: p.Snapshot, Now: clk.Now, Started: start})
	require.NoError(t, err)

	clk.Add(10 * time.Second)
	_, err = src.Evidence(ctx, start) // a tick's sample, at 12:00:10
	require.NoError(t, err)
	record(p, 50, 0, 0) // old-weight traffic after that sample
	clk.Add(time.Second)
	step := clk.Now() // the next step starts at 12:00:11
	clk.Add(10 * time.Second)
	ev, err := src.Evidence(ctx, step)
	require.NoError(t, err)
	assert.Zero(t, ev.Exchanges, "the 50 old-weight exchanges are not the new step's evidence")
	record(p, 5, 0, 0)
	clk.Add(10 * time.Second)
	ev, err = src.Evidence(ctx, step)
	require.NoError(t, err)
	assert.Equal(t, int64(5), ev.Exchanges)
}
