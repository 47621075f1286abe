package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/shadowsplit/shadowsplit/loadtest"
)

// buildBinaries builds cmd/router and cmd/modelserver into a temporary
// directory (incremental: the Go build cache makes a rebuild a relink).
func buildBinaries(t *testing.T) (router, modelserver string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, name := range []string{"router", "modelserver"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build ./cmd/%s: %s", name, out)
	}
	return filepath.Join(dir, "router"), filepath.Join(dir, "modelserver")
}

// proc is a child process the test started; it is killed at cleanup if it
// is still running.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan error // receives Wait's result once; wait() re-sends it
}

// start runs bin and waits (at most a minute) until a line of its stdout
// or stderr matches ready; it returns the submatches of that line.
func start(t *testing.T, ready *regexp.Regexp, bin string, args ...string) (*proc, []string) {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	lines := make(chan []string, 1)
	scan := func(r io.Reader, tee io.Writer) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if tee != nil {
				_, _ = tee.Write(append(sc.Bytes(), '\n'))
			}
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case lines <- m:
				default:
				}
			}
		}
	}
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); scan(stdout, nil) }()
	go func() { defer readers.Done(); scan(stderr, p.stderr) }()
	go func() {
		readers.Wait() // Wait must follow the pipe readers
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case m := <-lines:
		return p, m
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("%s exited before it was ready: %v\n%s", filepath.Base(bin), err, p.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("%s not ready within a minute\n%s", filepath.Base(bin), p.stderr)
	}
	return nil, nil
}

// stop sends SIGTERM, as the kubelet does, and waits (at most a minute) for
// a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		p.exited <- err
		require.NoError(t, err, "exit after SIGTERM\n%s", p.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("no exit within a minute of SIGTERM\n%s", p.stderr)
	}
}

var (
	routerReady = regexp.MustCompile(`shadowsplit router listening data=(\S+) admin=(\S+)`)
	modelReady  = regexp.MustCompile(`"msg":"modelserver listening".*"addr":"([^"]+)"`)
)

// TestShippedConfigRunsTheRouter runs the real router on the config.yaml
// each overlay ships in its ConfigMap, between two real model servers. The
// router decodes the file strictly (an unknown key is an error) and
// validates it, so a key renamed in cmd/router and not here fails this
// test; and the traffic shows the shipped config does what the shape
// promises: inline answers from stable and compares; tap accepts the
// mirrored copy, replays it to both models and compares. Only what exists
// only in a cluster is overridden, by flags: listen addresses, the model
// Service URLs and the token file.
func TestShippedConfigRunsTheRouter(t *testing.T) {
	routerBin, modelBin := buildBinaries(t)
	_, stableAddr := start(t, modelReady, modelBin, "--listen", "127.0.0.1:0", "--variant", "stable")
	_, canaryAddr := start(t, modelReady, modelBin, "--listen", "127.0.0.1:0", "--variant", "canary")
	stableURL, canaryURL := "http://"+stableAddr[1], "http://"+canaryAddr[1]

	bodies, err := loadtest.DemoBodies("v2", 1, 4, 7)
	require.NoError(t, err)
	inferPath := loadtest.DemoPath("v2", "demo")
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(base string) (int, []byte) {
		resp, err := client.Post(base+inferPath, "application/json", bytes.NewReader(bodies[0]))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	direct, stableAnswer := post(stableURL)
	require.Equal(t, http.StatusOK, direct)

	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "config.yaml")
			require.NoError(t, os.WriteFile(cfgPath, []byte(routerConfigYAML(t, render(t, ov.name))), 0o600))
			tokenPath := filepath.Join(dir, "admin-token")
			const token = "deploytest-token"
			require.NoError(t, os.WriteFile(tokenPath, []byte(token+"\n"), 0o600))

			router, addrs := start(t, routerReady, routerBin, "serve", "--config", cfgPath,
				"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenPath,
				"--stable", stableURL, "--canary", canaryURL)
			data, admin := "http://"+addrs[1], "http://"+addrs[2]
			// The "router started" line names the mode it runs in.
			wantMode := fmt.Sprintf(`"mode":"%s"`, ov.shape)
			require.Eventually(t, func() bool { return strings.Contains(router.stderr.String(), wantMode) },
				10*time.Second, 20*time.Millisecond, "no %s in the router log:\n%s", wantMode, router.stderr)

			for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
				resp, err := client.Get(admin + path)
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, path)
			}
			summary := func(withToken bool) (int, map[string]any) {
				req, err := http.NewRequest(http.MethodGet, admin+"/api/v1/summary", nil)
				require.NoError(t, err)
				if withToken {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				return resp.StatusCode, m
			}
			code, _ := summary(false)
			assert.Equal(t, http.StatusUnauthorized, code, "the admin API must want the token file's token")

			status, body := post(data)
			if ov.shape == "inline" {
				assert.Equal(t, http.StatusOK, status)
				assert.Equal(t, string(stableAnswer), string(body), "inline: the client gets stable's answer byte for byte")
			} else {
				assert.Equal(t, http.StatusAccepted, status)
				assert.JSONEq(t, `{"status":"accepted"}`, string(body), "tap: the mirrored copy must be accepted for replay")
			}
			// Both shapes compare the two models' answers for that request.
			require.Eventually(t, func() bool {
				code, m := summary(true)
				n, _ := m["exchanges"].(float64)
				return code == http.StatusOK && n >= 1
			}, 20*time.Second, 50*time.Millisecond, "no comparison in /api/v1/summary\n%s", router.stderr)

			// The drain (shutdownDrain) and exit fit the pod's grace period;
			// TestRouterDeployment checks the arithmetic.
			router.stop(t)
		})
	}
}

// lockedBuffer collects a child's stderr: written by a reader goroutine,
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
