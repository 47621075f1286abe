package diffstore

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/diffstore/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

func openPG(t *testing.T, dsn string, cfg Config) *Store {
	t.Helper()
	cfg.Driver, cfg.PostgresDSN = "postgres", dsn
	s, err := Open(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// Two replicas open the same database at once (the migration runs once
// under an advisory lock) and write into one shared store.
func TestPostgresSharedByReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	var a, b *Store
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = openPG(t, dsn, Config{AgreementSample: 1}) }()
	go func() { defer wg.Done(); b = openPG(t, dsn, Config{AgreementSample: 1}) }()
	wg.Wait()
	require.True(t, a.migrated.Load() && b.migrated.Load())
	a.SetRollout("ro-7", 3)
	for i := range 30 {
		s := a
		if i%2 == 1 {
			s = b
		}
		if i%3 == 0 {
			feed(s, exchange(i, "1", "2"))
		} else {
			feed(s, exchange(i, "1", "1"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.Flush(ctx))
	recs := all(t, a, Filter{})
	require.Len(t, recs, 30)
	for i, r := range recs {
		assert.Equal(t, t0.Add(time.Duration(i)*time.Second), r.Time, "ordered by time, UTC")
	}
	assert.Len(t, all(t, a, Filter{Outcomes: []string{"disagree"}}), 10)
	assert.Len(t, all(t, a, Filter{RolloutID: "ro-7"}), 15)
	d := all(t, b, Filter{Outcomes: []string{"disagree"}, Limit: 1})[0]
	assert.Equal(t, "1", d.StableLabel)
	assert.Equal(t, "2", d.CanaryLabel)
	assert.Equal(t, 10*time.Millisecond, d.StableLatency)
	assert.Equal(t, 2*time.Millisecond, d.LatencyDelta)
	assert.JSONEq(t, `[2]`, string(d.CanaryOutput))

	// Retention works the same on PostgreSQL.
	a.cfg.MaxAge, a.cfg.Now = 10*time.Second, func() time.Time { return t0.Add(30 * time.Second) }
	require.NoError(t, a.Prune(ctx))
	assert.Len(t, all(t, a, Filter{}), 10)
	a.cfg.MaxAge, a.cfg.MaxBytes = 0, 1 // everything is over one byte
	require.NoError(t, a.Prune(ctx))
	assert.Empty(t, all(t, a, Filter{}))
}

// An unreachable database never blocks the data plane: OnResult returns at
// once, records are dropped and counted, and the store recovers nothing it
// could not write.
func TestPostgresUnreachableDropsAndCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	s := openPG(t, "postgres://x:y@"+addr+"/none?sslmode=disable&connect_timeout=2",
		Config{AgreementSample: 1, QueueSize: 8, BatchSize: 4, WriteTimeout: 2 * time.Second})
	require.False(t, s.migrated.Load())
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			feed(s, exchange(i, "1", "2"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("OnResult blocked on an unreachable database")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	assert.Error(t, s.Flush(ctx))
	dropped := testutil.ToFloat64(s.m.dbErr) + testutil.ToFloat64(s.m.queueFull)
	assert.Equal(t, 100.0, dropped, "every record is dropped and counted")
	assert.Positive(t, testutil.ToFloat64(s.m.dbErr))
	assert.Zero(t, testutil.ToFloat64(s.m.written))
}
