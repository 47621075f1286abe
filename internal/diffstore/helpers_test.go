package diffstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// exchange is a V1 pair: the request carries a secret field that is not
// on any allow-list the tests configure.
func exchange(i int, stable, canary string) models.Exchange {
	req := `{"instances":[{"age":` + itoa(20+i%50) + `,"region":"north","ssn":"SECRET-SSN-` + itoa(1000+i) + `"}]}`
	return models.Exchange{
		RequestID: fmt.Sprintf("req-%04d", i), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Protocol: models.ProtocolV1,
		Model: "churn", CanaryModel: "churn", Path: "/v1/models/churn:predict", ContentType: "application/json",
		Request: []byte(req),
		Stable:  models.Response{Status: 200, Body: []byte(`{"predictions":[` + stable + `]}`), Latency: 10 * time.Millisecond},
		Canary:  models.Response{Status: 200, Body: []byte(`{"predictions":[` + canary + `]}`), Latency: 12 * time.Millisecond},
		Start:   t0.Add(time.Duration(i) * time.Second),
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// feed compares and records the exchange as the pipeline would.
func feed(s *Store, ex models.Exchange) compare.Result {
	res := compare.Compare(ex, compare.Options{Mode: compare.ModeClassification})
	s.OnResult(ex, res)
	return res
}

func openSQLiteStore(t *testing.T, cfg Config, reg prometheus.Registerer) *Store {
	t.Helper()
	if cfg.SQLitePath == "" {
		cfg.SQLitePath = filepath.Join(t.TempDir(), "diffs.db")
	}
	s, err := Open(context.Background(), cfg, reg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

func all(t *testing.T, s *Store, f Filter) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	var out []Record
	require.NoError(t, s.Scan(ctx, f, func(r *Record) error { out = append(out, *r); return nil }))
	return out
}
