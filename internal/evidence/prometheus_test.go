package evidence

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/evidence/promtest"
)

// TestPrometheusSumsEveryReplica: two router replicas (real pipelines,
// their registries served over HTTP), one real Prometheus scraping both.
// The Prometheus source sees the fleet; each replica's in-process source
// sees only itself. Then Prometheus goes away: the source fails, it never
// returns a healthy-looking zero.
func TestPrometheusSumsEveryReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pa, rega := newPipeline(t)
	pb, regb := newPipeline(t)
	a := httptest.NewServer(promhttp.HandlerFor(rega, promhttp.HandlerOpts{}))
	defer a.Close()
	b := httptest.NewServer(promhttp.HandlerFor(regb, promhttp.HandlerOpts{}))
	defer b.Close()

	prom := promtest.Start(t, strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"))
	src, err := NewPrometheus(PrometheusConfig{URL: prom.URL, Selector: `job="shadowsplit",namespace="models"`, Timeout: 5 * time.Second})
	require.NoError(t, err)
	waitUp(ctx, t, src, 2)
	since := time.Now()
	time.Sleep(1500 * time.Millisecond) // a scrape of the zero counters after since
	inA, err := NewInProcess(InProcessConfig{Gatherer: rega, Started: since.Add(-time.Minute)})
	require.NoError(t, err)
	_, err = inA.Evidence(ctx, since) // its baseline: it knows only from here on
	require.NoError(t, err)

	record(pa, 300, 10, 0)
	record(pb, 200, 0, 5)
	var ev Evidence
	require.Eventually(t, func() bool {
		ev, err = src.Evidence(ctx, since)
		return err == nil && ev.Exchanges >= 515
	}, 30*time.Second, 250*time.Millisecond, "last: %+v, %v", ev, err)
	assert.Equal(t, int64(515), ev.Exchanges, "exact counts, not increase()'s extrapolation")
	assert.Equal(t, int64(515), ev.Pairs)
	assert.Equal(t, int64(500), ev.Agreed)
	assert.Equal(t, int64(5), ev.CanaryFailures)
	assert.Zero(t, ev.StableFailures)
	require.NotNil(t, ev.Latency, "each replica's windowed quantiles")
	assert.Equal(t, int64(515), ev.Latency.Samples)
	assert.Greater(t, ev.Latency.CanaryP99, ev.Latency.StableP99)
	assert.Positive(t, ev.Latency.CanaryP99)
	assert.Positive(t, ev.Latency.StableP99)

	// Each replica alone sees less: why the fleet needs Prometheus.
	evA, err := inA.Evidence(ctx, since)
	require.NoError(t, err)
	assert.Equal(t, int64(310), evA.Exchanges)

	// Prometheus down: an error, never zero evidence.
	prom.Stop()
	_, err = src.Evidence(ctx, since)
	require.Error(t, err)
	assert.Contains(t, err.Error(), prom.URL)
}

func TestPrometheusConfigIsChecked(t *testing.T) {
	_, err := NewPrometheus(PrometheusConfig{})
	assert.ErrorContains(t, err, "URL is required")
	_, err = NewPrometheus(PrometheusConfig{URL: "http://127.0.0.1:9090", Selector: `{job="x"}`})
	assert.ErrorContains(t, err, "without braces")
}
