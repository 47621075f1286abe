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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/shadowsplit/shadowsplit/internal/istio"
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
// each overlay ships in its ConfigMap, between two real model servers, with
// its rollout loop against the real API server where the overlay is
// applied, as the overlay's ServiceAccount. The router decodes the file
// strictly (an unknown key is an error) and validates it, so a key renamed
// in cmd/router and not here fails this test; the traffic shows the shipped
// config does what the shape promises (inline answers from stable and
// compares; tap accepts the mirrored copy, replays it to both models and
// compares); and the rollout loop shows the rendered Role is enough for it
// (the Lease it is allowed, the VirtualService it manages). Only what
// exists only in a cluster is overridden: listen addresses, the model
// Service URLs and the token file (flags), the namespace and the
// credentials of the rollout (rollout.namespace, rollout.kubeconfig).
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
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			a := applyOverlay(t, ov)
			dir := t.TempDir()
			kubeconfig := filepath.Join(dir, "kubeconfig")
			writeServiceAccountKubeconfig(t, kubeconfig, a.ns)

			shipped := routerConfigYAML(t, render(t, ov.name))
			var cfg map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(shipped), &cfg))
			ro, ok := cfg["rollout"].(map[string]any)
			require.True(t, ok, "the shipped config has no rollout section")
			assert.Equal(t, exampleNamespace, ro["namespace"])
			ro["namespace"], ro["kubeconfig"] = a.ns, kubeconfig
			// The store's file and key live on pod volumes; here, in dir.
			store, ok := cfg["store"].(map[string]any)
			require.True(t, ok, "the shipped config has no store section")
			store["sqlite"].(map[string]any)["path"] = filepath.Join(dir, "diffs.db")
			keyPath := filepath.Join(dir, "fingerprint-key")
			require.NoError(t, os.WriteFile(keyPath, []byte("0123456789abcdef0123456789abcdef"), 0o600))
			store["inputs"].(map[string]any)["fingerprintKeyFile"] = keyPath
			out, err := yaml.Marshal(cfg)
			require.NoError(t, err)
			cfgPath := filepath.Join(dir, "config.yaml")
			require.NoError(t, os.WriteFile(cfgPath, out, 0o600))
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
			adminJSON := func(method, path string, withToken bool) (int, map[string]any) {
				req, err := http.NewRequest(method, admin+path, nil)
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
			code, _ := adminJSON(http.MethodGet, "/api/v1/summary", false)
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
				code, m := adminJSON(http.MethodGet, "/api/v1/summary", true)
				n, _ := m["exchanges"].(float64)
				return code == http.StatusOK && n >= 1
			}, 20*time.Second, 50*time.Millisecond, "no comparison in /api/v1/summary\n%s", router.stderr)

			// The diff store is on: the report page is served (behind the token).
			req, err := http.NewRequest(http.MethodGet, admin+"/reports", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "/reports with the diff store on")
			_, err = os.Stat(filepath.Join(dir, "diffs.db"))
			assert.NoError(t, err, "the SQLite store file")

			// The rollout loop, as the ServiceAccount: it wins the Lease the
			// Role names, reads the VirtualService at its install weights,
			// and can write it (pause is recorded on the VirtualService).
			var st map[string]any
			require.Eventually(t, func() bool {
				code, st = adminJSON(http.MethodGet, "/api/v1/rollout", true)
				return code == http.StatusOK && st["leader"] == true
			}, 30*time.Second, 100*time.Millisecond, "the router never led its rollout: %v\n%s", st, router.stderr)
			assert.Equal(t, float64(100), st["primaryWeight"], "%v", st)
			assert.Equal(t, float64(0), st["canaryWeight"], "%v", st)
			assert.Empty(t, st["drift"])
			assert.Empty(t, st["routeError"])
			_, _, cs := adminClients(t, &warningRecorder{})
			lease, err := cs.CoordinationV1().Leases(a.ns).Get(ctx, routerName, metav1.GetOptions{})
			require.NoError(t, err, "the router must hold the Lease the Role allows (%s)", routerName)
			require.NotNil(t, lease.Spec.HolderIdentity)
			assert.NotEmpty(t, *lease.Spec.HolderIdentity)

			code, res := adminJSON(http.MethodPost, "/api/v1/rollout/pause", true)
			require.Equal(t, http.StatusOK, code, "pause: %v\n%s", res, router.stderr)
			_, dyn, _ := adminClients(t, &warningRecorder{})
			vs, err := dyn.Resource(istio.VirtualServiceGVR).Namespace(a.ns).Get(ctx, vsName, metav1.GetOptions{})
			require.NoError(t, err)
			var ours []string
			for k := range vs.GetAnnotations() {
				if strings.HasPrefix(k, istio.AnnotationPrefix) {
					ours = append(ours, k)
				}
			}
			assert.NotEmpty(t, ours, "the paused state must be written on the VirtualService")

			// The drain (shutdownDrain) and exit fit the pod's grace period;
			// TestRouterDeployment checks the arithmetic.
			router.stop(t)
		})
	}
}

// writeServiceAccountKubeconfig writes a kubeconfig that authenticates as
// the router's ServiceAccount in ns (a client certificate with its user
// name and groups, which RBAC treats like its token).
func writeServiceAccountKubeconfig(t *testing.T, path, ns string) {
	t.Helper()
	sa, err := env.UserConfig(fmt.Sprintf("system:serviceaccount:%s:%s", ns, routerName),
		"system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
	require.NoError(t, err)
	c := clientcmdapi.NewConfig()
	c.Clusters["test"] = &clientcmdapi.Cluster{Server: sa.Host, CertificateAuthorityData: sa.CAData}
	c.AuthInfos["router"] = &clientcmdapi.AuthInfo{ClientCertificateData: sa.CertData, ClientKeyData: sa.KeyData}
	c.Contexts["router"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "router", Namespace: ns}
	c.CurrentContext = "router"
	require.NoError(t, clientcmd.WriteToFile(*c, path))
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
