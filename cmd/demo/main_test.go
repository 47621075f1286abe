package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoRunsEndToEndAndCleansUp runs `make demo`'s program on real
// binaries for a few seconds: it must print live lines with the rollout,
// leave the VirtualService, the diff database and the offline report in
// its folder, and leave no child process running.
func TestDemoRunsEndToEndAndCleansUp(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []struct{ name, pkg string }{{"router", "../router"}, {"modelserver", "../modelserver"}} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, b.name), b.pkg).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	dir := filepath.Join(t.TempDir(), "demo")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"--bin", bin, "--dir", dir, "--duration", "4s", "--every", "1s", "--rate", "150"}, &out)
	require.NoError(t, err, out.String())

	text := out.String()
	assert.Contains(t, text, "agreement")
	assert.Contains(t, text, "rollout:")
	assert.Contains(t, text, "report (offline, self-contained)")
	for _, f := range []string{"virtualservice.yaml", "diffs.db", "report.html", "router.yaml"} {
		_, err := os.Stat(filepath.Join(dir, f))
		assert.NoError(t, err, f)
	}
	vs, err := os.ReadFile(filepath.Join(dir, "virtualservice.yaml"))
	require.NoError(t, err)
	assert.Contains(t, string(vs), "shadowsplit.io/rollout", "the router wrote its state next to the weights")
	report, err := os.ReadFile(filepath.Join(dir, "report.html"))
	require.NoError(t, err)
	assert.Contains(t, string(report), "<svg", "the offline report carries its charts inline")

	// Nothing the demo started is still running (read /proc: no ps needed).
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended while we looked
		}
		assert.NotContains(t, strings.ReplaceAll(string(b), "\x00", " "), bin, "a demo child process outlived the demo")
	}
}
