package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMainStartsRunsAndStopsLeavingNoProcess(t *testing.T) {
	var (
		e        *Env
		children map[int]proc
		host     string
		stderr   bytes.Buffer
	)
	before := childrenOf(os.Getpid())
	run := func() int {
		require.NotNil(t, e, "Main sets *env before running the tests")
		host = e.Config().Host
		children = newChildren(before, childrenOf(os.Getpid()))
		return 0
	}
	getenv := func(k string) string {
		if k == EnvCI || k == EnvRequire {
			return ""
		}
		return os.Getenv(k)
	}

	code := runMain(t.Context(), run, &e, getenv, &bytes.Buffer{}, &stderr)
	require.Equal(t, 0, code, stderr.String())

	var names []string
	for _, p := range children {
		names = append(names, p.comm)
	}
	slices.Sort(names)
	assert.Equal(t, []string{"etcd", "kube-apiserver"}, names, "Start runs exactly these children")
	for pid, p := range children {
		assert.False(t, alive(pid), "%s (pid %d) still running after Stop", p.comm, pid)
	}
	u, err := url.Parse(host)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err == nil {
		conn.Close()
	}
	assert.Error(t, err, "the API server port %s still accepts connections", u.Host)

	assert.NoError(t, e.Stop(), "a second Stop returns the first result")
	_, err = e.UserConfig("late")
	assert.Error(t, err, "no identities after Stop")
}

func newChildren(before, after map[int]proc) map[int]proc {
	out := map[int]proc{}
	for pid, p := range after {
		if _, ok := before[pid]; !ok {
			out[pid] = p
		}
	}
	return out
}

func TestMissingAssets(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name       string
		env        map[string]string
		wantCode   int
		wantStderr []string
	}{
		{
			name:       "locally: loud skip",
			env:        map[string]string{EnvAssets: empty},
			wantCode:   0,
			wantStderr: []string{"SKIPPING every test", "make kube-bin", filepath.Join(empty, "etcd")},
		},
		{
			name:       "CI: failure",
			env:        map[string]string{EnvAssets: empty, EnvCI: "true"},
			wantCode:   1,
			wantStderr: []string{"FAIL", "make kube-bin"},
		},
		{
			name:       "required: failure",
			env:        map[string]string{EnvAssets: empty, EnvRequire: "1"},
			wantCode:   1,
			wantStderr: []string{"FAIL", "make kube-bin"},
		},
		{
			name:       "CRD file missing in CI: failure",
			env:        map[string]string{EnvCRDs: filepath.Join(empty, "crds.yaml"), EnvCI: "true"},
			wantCode:   1,
			wantStderr: []string{"FAIL", "crds.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var e *Env
			ran := false
			getenv := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				if k == EnvCI || k == EnvRequire {
					return ""
				}
				return os.Getenv(k)
			}
			code := runMain(t.Context(), func() int { ran = true; return 0 }, &e, getenv, &stdout, &stderr)

			assert.Equal(t, tt.wantCode, code)
			assert.False(t, ran, "no test may run without the API server")
			assert.Nil(t, e)
			for _, s := range tt.wantStderr {
				assert.Contains(t, stderr.String(), s)
			}
			if tt.wantCode == 0 {
				// go test turns this line into "[no tests to run]" on the ok line.
				assert.Contains(t, stdout.String(), "testing: warning: no tests to run")
			}
		})
	}
}

// crashHelperEnv makes the test binary act as a test run that crashes with
// the environment up (see TestCrashedRunLeavesNoProcess).
const crashHelperEnv = "KUBETEST_CRASH_HELPER"

func crashHelper() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var pids []string
	for pid := range childrenOf(os.Getpid()) {
		pids = append(pids, strconv.Itoa(pid))
	}
	fmt.Printf("PIDS %s\n", strings.Join(pids, " "))
	_ = e // deliberately not stopped: the process dies as a panic or a go test timeout would end it
	return 3
}

func TestCrashedRunLeavesNoProcess(t *testing.T) {
	if findSetpriv() == "" {
		t.Skip("setpriv with --pdeathsig is not installed: a crashed run can leave etcd and kube-apiserver behind")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	// TMPDIR collects the data and certificate directories the crashed run
	// cannot remove, so the test's own cleanup does.
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "stderr: %s", stderr.String())
	require.Equal(t, 3, exitErr.ExitCode(), "stderr: %s", stderr.String())

	fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out)), "PIDS"))
	require.Len(t, fields, 2, "output: %q", out)
	var pids []int
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	t.Cleanup(func() {
		// Only if the guard failed: these are processes this test started.
		for _, pid := range pids {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	assert.Eventually(t, func() bool {
		return !slices.ContainsFunc(pids, alive)
	}, 15*time.Second, 50*time.Millisecond, "children of a crashed test binary must die with it")
}
