package deploytest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildRouter builds cmd/router once per test into a temporary directory.
func buildRouter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "router")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/router")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/router: %s", out)
	return bin
}

var listeningLine = regexp.MustCompile(`shadowsplit router listening data=(\S+) admin=(\S+)`)

// TestRenderedConfigStartsTheRouter runs the real router binary on the
// config.yaml each overlay ships in its ConfigMap. The router decodes the
// file strictly (an unknown key is an error) and validates it, so a key
// renamed in cmd/router and not here fails this test. Only what cannot
// exist outside a cluster is overridden: the listen addresses (flags, to
// 127.0.0.1:0) and the token file (a flag, to a temporary file).
func TestRenderedConfigStartsTheRouter(t *testing.T) {
	bin := buildRouter(t)
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "config.yaml")
			require.NoError(t, os.WriteFile(cfgPath, []byte(routerConfigYAML(t, render(t, ov.name))), 0o600))
			tokenPath := filepath.Join(dir, "admin-token")
			const token = "deploytest-token"
			require.NoError(t, os.WriteFile(tokenPath, []byte(token+"\n"), 0o600))

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath,
				"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenPath)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			stderr := &lockedBuffer{}
			cmd.Stderr = stderr
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Whatever happens, the process does not outlive the test.
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})

			lines := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if listeningLine.MatchString(sc.Text()) {
						lines <- sc.Text()
						break
					}
				}
				_, _ = io.Copy(io.Discard, stdout)
			}()
			var admin string
			select {
			case l := <-lines:
				admin = listeningLine.FindStringSubmatch(l)[2]
			case err := <-exited:
				t.Fatalf("router exited on the shipped config: %v\n%s", err, stderr.String())
			case <-ctx.Done():
				t.Fatalf("router did not start within a minute\n%s", stderr.String())
			}
			// The "router started" log line (stderr) names the mode it runs in;
			// stderr is copied by another goroutine, so wait for it.
			wantMode := fmt.Sprintf(`"mode":"%s"`, ov.shape)
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), wantMode) },
				10*time.Second, 20*time.Millisecond, "no %s in the router log:\n%s", wantMode, stderr)

			client := &http.Client{Timeout: 5 * time.Second}
			for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
				resp, err := client.Get("http://" + admin + path)
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, path)
			}
			// The admin API wants the token from the mounted file.
			resp, err := client.Get("http://" + admin + "/api/v1/summary")
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

			// SIGTERM, as the kubelet sends it: the router drains
			// (shutdownDrain) and exits 0 well within the pod's grace period.
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				require.NoError(t, err, "router exit after SIGTERM\n%s", stderr.String())
			case <-ctx.Done():
				t.Fatalf("router did not stop after SIGTERM\n%s", stderr.String())
			}
		})
	}
}

// lockedBuffer is the router's stderr: written by exec's copying goroutine,
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
