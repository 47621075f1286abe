package evidence

import (
	"context"
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

// promServer is a real Prometheus (Debian package `prometheus`) started for
// one test on 127.0.0.1, scraping the given targets every second, with its
// TSDB in a temporary directory. It is stopped by PID at cleanup.
type promServer struct {
	URL string
	cmd *exec.Cmd
}

func startPrometheus(t *testing.T, targets ...string) *promServer {
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
	s := &promServer{URL: "http://" + addr, cmd: cmd}
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
func (s *promServer) Stop() {
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

// waitUp waits until Prometheus has scraped n targets successfully.
func waitUp(ctx context.Context, t *testing.T, p *Prometheus, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := p.query(ctx, `count(up{job="shadowsplit"} == 1)`, time.Now())
		return err == nil && len(v) == 1 && int(v[0].Value) == n
	}, 30*time.Second, 200*time.Millisecond, "prometheus never scraped %d targets", n)
}
