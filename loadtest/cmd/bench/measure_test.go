package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/loadtest"
)

func TestScrapeAndDeltaKeepOnlyShadowCounters(t *testing.T) {
	body := "# HELP shadowsplit_shadow_total x\n# TYPE shadowsplit_shadow_total counter\n" +
		"shadowsplit_shadow_total{reason=\"\",result=\"sent\"} 10\n" +
		"shadowsplit_shadow_total{reason=\"queue_full\",result=\"dropped\"} 2\n" +
		"shadowsplit_requests_total{code=\"200\",role=\"stable\"} 12\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	got := scrape(srv.URL)
	assert.Equal(t, map[string]float64{
		`shadowsplit_shadow_total{reason="",result="sent"}`:              10,
		`shadowsplit_shadow_total{reason="queue_full",result="dropped"}`: 2,
	}, got)
	before := map[string]float64{`shadowsplit_shadow_total{reason="",result="sent"}`: 4, `shadowsplit_shadow_total{reason="queue_full",result="dropped"}`: 2}
	assert.Equal(t, map[string]float64{`shadowsplit_shadow_total{reason="",result="sent"}`: 6}, delta(before, got))
	assert.Nil(t, scrape(""))
}

func TestMedianPicksTheMiddleRound(t *testing.T) {
	mk := func(key string, p99 time.Duration) runResult {
		return runResult{Key: key, Result: loadtest.Result{Latency: loadtest.Summary{P99: p99}}}
	}
	rs := []runResult{mk("a", 3), mk("b", 100), mk("a", 1), mk("a", 2)}
	r, ok := median(rs, "a", p99)
	require.True(t, ok)
	assert.Equal(t, time.Duration(2), r.Result.Latency.P99)
	_, ok = median(rs, "c", p99)
	assert.False(t, ok)
}

func TestSupervisorStopsWhatItStarted(t *testing.T) {
	sup := &supervisor{logDir: t.TempDir()}
	p, err := sup.start("sleeper", "sleep", "60")
	require.NoError(t, err)
	assert.False(t, p.exited())
	assert.Empty(t, sup.stopAll(), "sleep stops on SIGTERM")
	assert.True(t, p.exited())
}

func TestProcCPUReadsProcStat(t *testing.T) {
	sup := &supervisor{logDir: t.TempDir()}
	defer sup.stopAll()
	p, err := sup.start("burner", "sh", "-c", "i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); done")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.cpu() >= 20*time.Millisecond }, 20*time.Second, 10*time.Millisecond)
	var none *proc
	assert.Zero(t, none.cpu(), "the direct path has no proxy process")
}
