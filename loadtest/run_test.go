package loadtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func okServer(t *testing.T) (*httptest.Server, *sync.Map) {
	t.Helper()
	var seen sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(string(b), true)
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestOpenLoopSendsExactlyRateTimesDuration(t *testing.T) {
	srv, seen := okServer(t)
	r, err := RunOpen(context.Background(), OpenConfig{
		Target:   Target{URL: srv.URL, Bodies: [][]byte{[]byte("a"), []byte("b"), []byte("c")}},
		Rate:     400,
		Duration: 250 * time.Millisecond,
		Warmup:   50 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(100), r.Sent, "warm-up requests are not counted")
	assert.Equal(t, uint64(120), r.Issued, "but they were issued")
	assert.Equal(t, uint64(100), r.OK)
	assert.Zero(t, r.Errors)
	assert.Equal(t, map[int]uint64{200: 100}, r.Statuses)
	assert.Equal(t, uint64(100), r.Latency.Count)
	assert.Positive(t, r.Latency.P50)
	assert.InDelta(t, 400, r.Throughput, 1)
	for _, b := range []string{"a", "b", "c"} {
		_, ok := seen.Load(b)
		assert.True(t, ok, "body %q sent", b)
	}
}

// A target that stalls must show the stall in the tail for every request
// that was due during it: latency counts from the intended send time.
func TestOpenLoopDoesNotHideStalls(t *testing.T) {
	const stall = 200 * time.Millisecond
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			time.Sleep(stall)
		}
	}))
	t.Cleanup(srv.Close)
	r, err := RunOpen(context.Background(), OpenConfig{
		Target: Target{URL: srv.URL}, Rate: 1000, Duration: 400 * time.Millisecond, MaxInFlight: 1,
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(400), r.OK)
	// Roughly the first half of the run was due during the stall; a
	// closed-loop measurement would report one slow request and a fast p90.
	assert.GreaterOrEqual(t, r.Latency.P90, stall/4)
	assert.GreaterOrEqual(t, r.Latency.Max, stall)
	assert.GreaterOrEqual(t, r.SendLag.P90, stall/4, "the generator reports it was held back")
}

func TestClosedLoopMeasuresThroughput(t *testing.T) {
	srv, _ := okServer(t)
	r, err := RunClosed(context.Background(), ClosedConfig{
		Target: Target{URL: srv.URL, Method: http.MethodGet}, Workers: 4,
		Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Positive(t, r.OK)
	assert.Zero(t, r.Errors)
	assert.Equal(t, r.OK, r.Latency.Count)
	assert.InDelta(t, float64(r.OK)/0.2, r.Throughput, 1)
}

func TestErrorsAreCountedByStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	r, err := RunOpen(context.Background(), OpenConfig{Target: Target{URL: srv.URL}, Rate: 200, Duration: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, uint64(20), r.Errors)
	assert.Equal(t, map[int]uint64{503: 20}, r.Statuses)
	assert.Zero(t, r.Latency.Count)
}

func TestRefusedTargetCountsTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r, err := RunClosed(context.Background(), ClosedConfig{Target: Target{URL: url}, Workers: 1, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Positive(t, r.Errors)
	assert.Equal(t, r.Errors, r.Statuses[0])
	assert.Contains(t, r.FirstError, "refused")
}

func TestOnlyLoopbackTargetsAndBoundedRuns(t *testing.T) {
	ctx := context.Background()
	_, err := RunOpen(ctx, OpenConfig{Target: Target{URL: "http://10.0.0.1/"}, Rate: 1, Duration: time.Second})
	require.ErrorIs(t, err, ErrNotLoopback)
	_, err = RunClosed(ctx, ClosedConfig{Target: Target{URL: "http://example.com/"}, Duration: time.Second})
	require.ErrorIs(t, err, ErrNotLoopback)
	_, err = RunOpen(ctx, OpenConfig{Target: Target{URL: "http://127.0.0.1:1/"}, Rate: 1, Duration: time.Hour})
	require.Error(t, err)
	_, err = RunOpen(ctx, OpenConfig{Target: Target{URL: "http://127.0.0.1:1/"}, Rate: 0, Duration: time.Second})
	require.Error(t, err)
}

func TestCancelStopsARun(t *testing.T) {
	srv, _ := okServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RunOpen(ctx, OpenConfig{Target: Target{URL: srv.URL}, Rate: 10, Duration: time.Minute})
	require.ErrorIs(t, err, context.Canceled)
}
