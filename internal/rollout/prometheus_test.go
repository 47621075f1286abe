package rollout

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
	"github.com/shadowsplit/shadowsplit/internal/evidence/promtest"
	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/models"
	"github.com/shadowsplit/shadowsplit/internal/pipeline"
)

// TestPrometheusDownHoldsAndNeverPromotes: the rollout judges on a real
// Prometheus scraping a real pipeline; it advances on good evidence, then
// Prometheus goes away: the rollout holds (never advances) with the reason,
// and after maxFailedChecks in a row it rolls back.
func TestPrometheusDownHoldsAndNeverPromotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	pl, err := pipeline.New(pipeline.Config{}, reg)
	require.NoError(t, err)
	replica := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer replica.Close()
	prom := promtest.Start(t, strings.TrimPrefix(replica.URL, "http://"))
	src, err := evidence.NewPrometheus(evidence.PrometheusConfig{URL: prom.URL, Selector: `job="shadowsplit"`, Timeout: 3 * time.Second})
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "vs.yaml")
	require.NoError(t, os.WriteFile(path, []byte(testManifest), 0o644))
	tg, err := NewFileTarget(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	c, err := NewController(ControllerConfig{Rollout: Config{Plan: []int32{0, 50, 100}, Gates: Gates{
		AgreementThreshold: 0.9, MinPairs: 50, MinDwell: time.Second, MinLatencySamples: 5, LatencySlack: time.Second, MaxFailedChecks: 4}}},
		ControllerDeps{Target: tg, Evidence: src, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	ex := models.Exchange{Protocol: models.ProtocolV1, Model: "m", Path: "/v1/models/m:predict", ContentType: "application/json",
		Request: []byte(`{"instances":[[1],[2]]}`),
		Stable:  models.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"predictions":[1,2]}`), Latency: time.Millisecond},
		Canary:  models.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"predictions":[1,2]}`), Latency: time.Millisecond}}
	// Prometheus is scraping the replica before the rollout starts.
	require.Eventually(t, func() bool {
		pl.Record(ex)
		ev, err := src.Evidence(ctx, time.Now().Add(-time.Hour))
		return err == nil && ev.Exchanges > 0
	}, 30*time.Second, 200*time.Millisecond)
	var st Status
	require.Eventually(t, func() bool {
		for range 20 {
			pl.Record(ex)
		}
		_, err := c.Tick(ctx)
		require.NoError(t, err)
		st, err = c.Status(ctx)
		require.NoError(t, err)
		return st.State.Step == 1
	}, 30*time.Second, 300*time.Millisecond, "never advanced on good evidence from Prometheus")

	prom.Stop()
	for i := 1; i < 4; i++ {
		for range 20 {
			pl.Record(ex) // the canary keeps agreeing: only the evidence is gone
		}
		d, err := c.Tick(ctx)
		require.NoError(t, err)
		assert.Equal(t, ReasonEvidenceFailed, d.Reason, d.Message)
		assert.Contains(t, d.Message, "connection refused")
		st, err = c.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, PhaseHolding, st.State.Phase)
		assert.Equal(t, 1, st.State.Step, "never advances on unknown evidence")
		assert.Equal(t, int32(50), st.CanaryWeight)
	}
	d, err := c.Tick(ctx)
	require.NoError(t, err)
	assert.Equal(t, ReasonFailedChecks, d.Reason)
	st, err = c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, PhaseRolledBack, st.State.Phase)
	assert.Equal(t, int32(0), st.CanaryWeight)
}
