package rollout

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

func TestWebhookPostsEveryTransitionAsSlackJSON(t *testing.T) {
	var mu sync.Mutex
	var texts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		require.NoError(t, json.NewDecoder(r.Body).Decode(&m))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		mu.Lock()
		texts = append(texts, m["text"])
		mu.Unlock()
	}))
	defer srv.Close()
	wh := NewWebhook(srv.URL, time.Second, slog.New(slog.DiscardHandler))

	ctx := context.Background()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "vs.yaml")
	require.NoError(t, os.WriteFile(path, []byte(testManifest), 0o644))
	tg, err := NewFileTarget(testRoute, istio.FileDeps{Path: path, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	c, err := NewController(ControllerConfig{Rollout: Config{Plan: []int32{0, 100}, Gates: testGates}, Now: clk.Now, NewID: func() string { return "r9" }},
		ControllerDeps{Target: tg, Evidence: &steadyCanary{Clock: clk, PerMinute: 1000}, Logger: slog.New(slog.DiscardHandler), OnTransition: wh.Notify})
	require.NoError(t, err)
	for range 5 {
		_, err := c.Tick(ctx)
		require.NoError(t, err)
		clk.Add(time.Minute)
	}
	require.NoError(t, wh.Close(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, texts, 2, "start and promotion, not one per tick")
	assert.Contains(t, texts[0], "rollout r9: Shadowing, step 0, canary 0% (Started)")
	assert.Contains(t, texts[1], "Promoted, step 1, canary 100% (GatesPassedFinal)")
}
