package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment variables read by Main to decide whether missing assets fail.
const (
	// EnvCI is set to "true" by GitHub Actions, GitLab CI and most others.
	EnvCI = "CI"
	// EnvRequire set to "1" makes missing assets a failure outside CI too.
	EnvRequire = "SHADOWSPLIT_REQUIRE_KUBE"
)

// mainStartTimeout bounds Start inside Main: 60 s per process plus CRDs is
// generous for a loaded 2-core machine and still ends a hung run.
const mainStartTimeout = 3 * time.Minute

// Main is the whole body of a TestMain for a package whose tests need the
// API server: it starts an Env, stores it in *env, runs the tests, stops the
// Env and returns the exit code for os.Exit:
//
//	var env *kubetest.Env
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }
//
// When the binaries or the CRD file are missing it never skips silently:
// with CI=true or SHADOWSPLIT_REQUIRE_KUBE=1 the test binary fails with a
// message saying to run `make kube-bin`; otherwise it prints that message
// in a banner, runs no test (so *env is never nil inside a test) and exits 0,
// which `go test` shows as "ok ... [no tests to run]". Any other start error
// fails. A Stop error fails an otherwise passing run.
//
// Main blocks for the whole test run; call it once per test binary.
func Main(m *testing.M, env **Env) int {
	return runMain(context.Background(), m.Run, env, os.Getenv, os.Stdout, os.Stderr)
}

func runMain(ctx context.Context, run func() int, env **Env, getenv func(string) string, stdout, stderr io.Writer) int {
	required := getenv(EnvCI) == "true" || getenv(EnvRequire) == "1"

	began := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, mainStartTimeout)
	e, err := StartWith(startCtx, OptionsFromEnv(getenv))
	cancel()
	switch {
	case errors.Is(err, ErrAssetsMissing) && !required:
		banner(stderr, "SKIPPING every test in this package (no real API server)", err,
			"In CI (CI=true) or with SHADOWSPLIT_REQUIRE_KUBE=1 this is a failure.")
		// go test looks for this exact line and appends "[no tests to run]"
		// to the package's "ok" line, so the skip shows without -v.
		fmt.Fprintln(stdout, "testing: warning: no tests to run")
		return 0
	case errors.Is(err, ErrAssetsMissing):
		banner(stderr, "FAIL: the real API server is required here", err,
			fmt.Sprintf("(%s=true or %s=1 is set, so missing assets fail instead of skipping.)", EnvCI, EnvRequire))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "FAIL: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "kubetest: etcd + kube-apiserver at %s with %d CRDs up in %s\n",
		e.cfg.Host, len(e.crds), time.Since(began).Round(100*time.Millisecond))

	*env = e
	code := run()

	began = time.Now()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(stderr, "FAIL: %v\n", err)
		if code == 0 {
			code = 1
		}
	} else {
		fmt.Fprintf(stderr, "kubetest: stopped in %s\n", time.Since(began).Round(100*time.Millisecond))
	}
	return code
}

func banner(w io.Writer, title string, err error, note string) {
	line := strings.Repeat("=", 78)
	fmt.Fprintf(w, "%s\nkubetest: %s\n\n%v\n\n%s\n%s\n", line, title, err, note, line)
}
