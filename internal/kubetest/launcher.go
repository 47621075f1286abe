package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// A test binary that panics, times out (go test -timeout) or is killed never
// reaches Stop, and envtest's children would outlive it: a 400 MB API server
// and etcd per crashed run on a machine shared by several test runs. Linux
// can kill a child when its parent dies (PR_SET_PDEATHSIG), but envtest
// builds the exec.Cmd itself and offers no hook for SysProcAttr. So each
// binary is started through a two-line launcher script that execs
// `setpriv --pdeathsig KILL` (util-linux), which sets the flag and execs the
// real binary: same PID, so envtest's SIGTERM and wait work unchanged.
//
// Without setpriv the binaries run directly and a crashed test run can leave
// them behind (Stop still stops them in every normal run).
//
// Caveat: Linux sends the signal when the *thread* that forked the child
// exits. Go keeps its threads alive, except one whose goroutine exits while
// locked with runtime.LockOSThread; tests here do not do that.

type launcher struct {
	etcd, apiServer string
	cleanup         func()
}

var (
	setprivOnce sync.Once
	setprivPath string // empty when setpriv is missing or lacks --pdeathsig
)

func findSetpriv() string {
	setprivOnce.Do(func() {
		p, err := exec.LookPath("setpriv")
		if err != nil {
			return
		}
		// Older util-linux (before 2.33) has no --pdeathsig.
		if exec.Command(p, "--pdeathsig", "KILL", "--", "true").Run() == nil {
			setprivPath = p
		}
	})
	return setprivPath
}

func newLauncher(a assets) (launcher, error) {
	setpriv := findSetpriv()
	if setpriv == "" {
		return launcher{etcd: a.etcd, apiServer: a.apiServer, cleanup: func() {}}, nil
	}
	dir, err := os.MkdirTemp("", "kubetest-launch-")
	if err != nil {
		return launcher{}, fmt.Errorf("kubetest: launcher dir: %w", err)
	}
	l := launcher{cleanup: func() { _ = os.RemoveAll(dir) }}
	for _, b := range []struct {
		dst  *string
		path string
	}{{&l.etcd, a.etcd}, {&l.apiServer, a.apiServer}} {
		// Keep the binary's own name: envtest names processes by base name
		// in its messages.
		*b.dst = filepath.Join(dir, filepath.Base(b.path))
		script := fmt.Sprintf("#!/bin/sh\nexec %s --pdeathsig KILL -- %s \"$@\"\n", shQuote(setpriv), shQuote(b.path))
		if err := os.WriteFile(*b.dst, []byte(script), 0o755); err != nil {
			l.cleanup()
			return launcher{}, fmt.Errorf("kubetest: launcher for %s: %w", b.path, err)
		}
	}
	return l, nil
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
