// Package pgtest gives tests a real PostgreSQL database: it starts the
// machine's installed cluster with pg_ctlcluster when it is down (and stops
// it again at the end of the test binary), creates a role and a fresh
// database per test, and drops the database when the test ends.
//
// Without PostgreSQL a test is skipped loudly, except under CI=true where a
// missing component is a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	role     = "shadowsplit_test"
	password = "shadowsplit_test"
)

var (
	mu      sync.Mutex
	started string // cluster version we started, "" if none
	ready   bool
)

// Unavailable skips the test (locally) or fails it (CI=true).
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required in CI: %s (hack/deps.sh installs what the tests need)", why)
	}
	t.Skipf("SKIPPING: PostgreSQL not usable here: %s", why)
}

// DSN returns a connection string to a new, empty database owned by a test
// role on 127.0.0.1:5432, dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !ready {
		if err := start(); err != nil {
			Unavailable(t, err.Error())
		}
		ready = true
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "shadowsplit_" + hex.EncodeToString(b)
	if out, err := psql("CREATE DATABASE " + db + " OWNER " + role); err != nil {
		t.Fatalf("pgtest: create database: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := psql("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v: %s", db, err, out)
		}
	})
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:5432/%s?sslmode=disable&connect_timeout=5", role, password, db)
}

// Stop stops the cluster if this process started it. Call from TestMain.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if started != "" {
		_ = exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", started, "main", "stop").Run()
		started = ""
	}
	ready = false
}

func start() error {
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		return fmt.Errorf("pg_ctlcluster not found (is the postgresql package installed?)")
	}
	versions, _ := filepath.Glob("/etc/postgresql/*")
	if len(versions) == 0 {
		return fmt.Errorf("no cluster under /etc/postgresql")
	}
	v := filepath.Base(versions[len(versions)-1])
	if out, _ := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "status").CombinedOutput(); !strings.Contains(string(out), "server is running") {
		if out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "start").CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctlcluster %s main start: %v: %s", v, err, out)
		}
		started = v
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := psql("SELECT 1"); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s did not accept connections within 30s: %v", v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The role may survive from an earlier run; (re)set its password.
	if out, err := psql(fmt.Sprintf("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s LOGIN; END IF; END$$; ALTER ROLE %s LOGIN PASSWORD '%s'", role, role, role, password)); err != nil {
		return fmt.Errorf("create role: %v: %s", err, out)
	}
	return nil
}

// psql runs one command as the postgres superuser over the local socket.
func psql(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	return string(out), err
}
