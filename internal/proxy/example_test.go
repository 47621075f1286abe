package proxy_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/models"
	"github.com/shadowsplit/shadowsplit/internal/proxy"
)

type discard struct{}

func (discard) Record(models.Exchange) {} // a real Recorder hands off to the comparer without blocking

// Wiring as cmd/router does it: build once, serve, shut the server down
// first, then drain the shadow queue.
func ExampleNew() {
	stable, _ := url.Parse("http://model-stable.models.svc:8080")
	canary, _ := url.Parse("http://model-canary.models.svc:8080")
	h, err := proxy.New(proxy.Config{
		Stable:        stable,
		Canary:        canary,
		CanaryModel:   "iris-v2",
		ShadowPercent: 10,
		CanaryTimeout: 2 * time.Second,
		Logger:        slog.Default(),
	}, discard{}, prometheus.NewRegistry())
	if err != nil {
		panic(err) // the error names the bad field and value
	}
	srv := &http.Server{Addr: ":8080", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ListenAndServe() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // no new requests, in-flight ones finished
	_ = h.Close(ctx)      // then the queued shadows
}
