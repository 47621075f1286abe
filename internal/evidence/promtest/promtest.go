// Package promtest starts a real Prometheus server (Debian package
// `prometheus`) for a test: on 127.0.0.1, scraping the given targets every
// second, with its TSDB in the test's temporary directory, stopped by PID
// when the test ends. Without the binary the test is skipped, or fails
// when CI=true or SHADOWSPLIT_REQUIRE_PROMETHEUS=1 (install it with
// hack/deps.d/40-prometheus.sh).
package promtest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Server is a running Prometheus. Stop is safe to call more than once and
// from the test's goroutine only.
type Server struct {
	URL string
	cmd *exec.Cmd
}

// Start runs Prometheus scraping targets (host:port) as job "shadowsplit"
// with the extra label namespace="models", and waits until it is ready.
func Start(t *testing.T, targets ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		msg := "prometheus is not installed: run hack/deps.d/40-prometheus.sh (apt-get install -y prometheus)"
		if os.Getenv("CI") == "true" || os.Getenv("SHADOWSPLIT_REQUIRE_PROMETHEUS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: shadowsplit
  static_configs:
  - targets: [%s]
    labels: {namespace: models}
`, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	var out strings.Builder
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	require.NoError(t, cmd.Start())
	s := &Server{URL: "http://" + addr, cmd: cmd}
	t.Cleanup(s.Stop)

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 60s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the process it started (SIGTERM, then SIGKILL after 10s). It
// is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	cmd := s.cmd
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
