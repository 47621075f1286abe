package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestResolveServeConfigFlagsOverrideFile(t *testing.T) {
	path := writeFile(t, `
listen: 127.0.0.1:7000
stable: {url: "http://stable.file:8080", timeout: 3s}
canary: {url: "http://canary.file:8080", model: iris-v2}
shadow: {percent: 25, workers: 4}
compare:
  models:
    iris: {mode: probabilities, output: probabilities, topK: 3}
`)
	cfg, err := resolveServeConfig([]string{"--config", path, "--stable", "http://stable.flag:8080", "--shadow-percent", "100"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://stable.flag:8080", cfg.Stable.URL, "a flag beats the file")
	assert.Equal(t, 100.0, cfg.Shadow.Percent)
	assert.Equal(t, "http://canary.file:8080", cfg.Canary.URL, "an unset flag must not erase the file's value")
	assert.Equal(t, "127.0.0.1:7000", cfg.Listen)
	assert.Equal(t, 3*time.Second, time.Duration(cfg.Stable.Timeout))
	assert.Equal(t, 4, cfg.Shadow.Workers)
	assert.Equal(t, 1024, cfg.Shadow.QueueSize, "defaults survive a partial file")
	assert.Equal(t, "probabilities", cfg.Compare.Models["iris"].Mode)
}

func TestResolveServeConfigMinimalFlags(t *testing.T) {
	cfg, err := resolveServeConfig([]string{"--stable", "http://127.0.0.1:1", "--canary", "http://127.0.0.1:2", "--shadow-percent", "100"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "inline", cfg.Mode)
	assert.Equal(t, ":8080", cfg.Listen)
	assert.Equal(t, ":9090", cfg.AdminListen)
}

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	cases := []struct {
		name string
		args []string
		file string
		want []string
	}{
		{name: "missing stable", args: []string{}, want: []string{"stable.url", "is required"}},
		{name: "bad scheme", args: []string{"--stable", "ftp://x"}, want: []string{"stable.url", `"ftp://x"`, "http or https"}},
		{name: "percent out of range", args: []string{"--stable", "http://s", "--canary", "http://c", "--shadow-percent", "150"}, want: []string{"shadow.percent", `"150"`}},
		{name: "canary needed when shadowing", args: []string{"--stable", "http://s", "--shadow-percent", "5"}, want: []string{"canary.url", "is required"}},
		{name: "bad mode", args: []string{"--stable", "http://s", "--mode", "sidecar"}, want: []string{"mode", `"sidecar"`, "inline or tap"}},
		{name: "same ports", args: []string{"--stable", "http://s", "--listen", ":1", "--admin-listen", ":1"}, want: []string{"adminListen", "must differ"}},
		{name: "unknown key is an error", file: "stabel: {url: http://s}\n", want: []string{"unknown field", "stabel"}},
		{name: "bad duration", file: "stable: {url: http://s, timeout: soon}\n", want: []string{"soon"}},
		{name: "bad compare mode", file: "stable: {url: http://s}\ncompare: {models: {iris: {mode: fuzzy}}}\n", want: []string{"compare.models.iris.mode", `"fuzzy"`}},
		{name: "shadow limit above hard limit", file: "stable: {url: http://s}\nshadow: {maxBodyBytes: 100}\nlimits: {maxBodyBytes: 10}\n", want: []string{"shadow.maxBodyBytes"}},
		{name: "otlp needs endpoint", file: "stable: {url: http://s}\ntelemetry: {traces: otlp}\n", want: []string{"telemetry.otlpEndpoint"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, err := resolveServeConfig(args, io.Discard)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := resolveServeConfig([]string{"--stable", "nope", "--shadow-percent", "-1", "--mode", "x"}, io.Discard)
	require.Error(t, err)
	for _, field := range []string{"stable.url", "shadow.percent", "mode"} {
		assert.Contains(t, err.Error(), field)
	}
}
