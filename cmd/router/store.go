package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

// StoreConfig configures the prediction-diff store and the report.
// (Owned by the diff-store/report work; filled in there.)
type StoreConfig struct{}

// storeWiring is what serve needs from the diff store.
type storeWiring struct {
	// onResult receives every comparison on a shadow worker; must not block.
	onResult func(models.Exchange, compare.Result)
	mount    adminMount
	close    func(context.Context) error
}

// buildStore opens the diff store and the report routes. Stub until the
// diff-store work lands: nothing is stored.
func buildStore(_ context.Context, _ Config, _ prometheus.Registerer, _ *slog.Logger) (*storeWiring, error) {
	return &storeWiring{close: func(context.Context) error { return nil }}, nil
}

// reportCmd is `router report ...`.
func reportCmd(_ context.Context, _ []string, _ func(string) string, _, _ io.Writer) error {
	return fmt.Errorf("report: not available yet")
}
