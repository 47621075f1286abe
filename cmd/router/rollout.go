package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/pipeline"
)

// RolloutConfig configures the rollout loop and the VirtualService it
// manages. (Owned by the rollout work; filled in there.)
type RolloutConfig struct{}

// rolloutDeps is what the rollout loop gets from serve.
type rolloutDeps struct {
	pipeline *pipeline.Pipeline
	reg      prometheus.Registerer
	log      *slog.Logger
}

// rolloutWiring is what serve needs from the rollout loop.
type rolloutWiring struct {
	mount adminMount
	// stop ends the loop (and gives up leadership) before the servers stop.
	stop func(context.Context) error
}

// startRollout starts the rollout loop. Stub until the rollout work lands.
func startRollout(_ context.Context, _ Config, _ rolloutDeps) (*rolloutWiring, error) {
	return &rolloutWiring{stop: func(context.Context) error { return nil }}, nil
}

// rolloutCmd is `router rollout status|pause|resume|promote|abort`.
func rolloutCmd(_ context.Context, _ []string, _ func(string) string, _, _ io.Writer) error {
	return fmt.Errorf("rollout: not available yet")
}
