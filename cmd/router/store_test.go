package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
	"github.com/shadowsplit/shadowsplit/internal/modelserver"
	"github.com/shadowsplit/shadowsplit/internal/report"
)

func TestStoreConfigErrorsNameTheField(t *testing.T) {
	idx := -1
	cases := []struct {
		name  string
		store StoreConfig
		want  string
	}{
		{"driver", StoreConfig{Driver: "mysql", SQLite: SQLiteConfig{Path: "x"}}, `store.driver: "mysql": must be sqlite or postgres`},
		{"postgres without dsn", StoreConfig{Driver: "postgres"}, "store.postgres.dsnFile"},
		{"sample", StoreConfig{SQLite: SQLiteConfig{Path: "x"}, AgreementSample: 2}, `store.agreementSample: "2"`},
		{"retention", StoreConfig{SQLite: SQLiteConfig{Path: "x"}, Retention: RetentionConfig{MaxBytes: -1}}, "store.retention.maxBytes"},
		{"field index", StoreConfig{SQLite: SQLiteConfig{Path: "x"}, Inputs: InputsConfig{Fields: []InputField{{Name: "a", Index: &idx}}}}, "inputs.fields[0].index"},
		{"buckets", StoreConfig{SQLite: SQLiteConfig{Path: "x"}, Inputs: InputsConfig{Fields: []InputField{{Name: "a", Buckets: []float64{2, 1}}}}}, "inputs.fields[0].buckets"},
		{"trace url", StoreConfig{SQLite: SQLiteConfig{Path: "x"}, Report: ReportConfig{TraceURL: "jaeger/{trace_id}"}}, "store.report.traceURL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.store.validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	assert.NoError(t, (&StoreConfig{}).validate(), "the zero value (store off) is valid")
	// The YAML key is store:, camelCase inside; unknown keys are errors.
	cfg := defaultConfig()
	p := writeFile(t, "store:\n  sqlite: {path: /tmp/x.db}\n  agreementSample: 0.5\n  inputs: {fields: [{name: region, index: 6}]}\n")
	require.NoError(t, loadConfigFile(&cfg, p))
	assert.Equal(t, 0.5, cfg.Store.AgreementSample)
	assert.Equal(t, 6, *cfg.Store.Inputs.Fields[0].Index)
	p = writeFile(t, "store:\n  sqlite: {file: /tmp/x.db}\n")
	assert.ErrorContains(t, loadConfigFile(&cfg, p), "file")
}

func TestStoreOffSaysHowToTurnItOn(t *testing.T) {
	stable, _ := modelServer(t, "stable", "demo")
	r := startRouter(t, "--stable", stable.URL)
	resp, err := client.Get(r.admin + "/reports")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(b), "store.sqlite.path")
}

// knownRows is a traffic mix with a known answer: rows inside the slice
// the demo canary was corrupted on, and rows outside it. Features are
// rounded to float32 as EncodeV1 sends them, so the labels computed here
// are the ones the model servers compute.
func knownRows(t *testing.T, in, out int) (rows []demomodel.Features, disagree int) {
	t.Helper()
	st, err := demomodel.Load("stable")
	require.NoError(t, err)
	ca, err := demomodel.Load("canary")
	require.NoError(t, err)
	g := demomodel.NewGenerator(42)
	total := in + out
	for len(rows) < total {
		f := g.Next()
		for i := range f.X {
			f.X[i] = float64(float32(f.X[i]))
		}
		if demomodel.InSlice(f) {
			if in == 0 {
				continue
			}
			in--
		} else {
			if out == 0 {
				continue
			}
			out--
		}
		rows = append(rows, f)
		if st.Label(f) != ca.Label(f) {
			disagree++
		}
	}
	return rows, disagree
}

// TestReportFromARunningRouter is the data scientist's path end to end:
// a real router between the real demo model servers, known traffic, the
// SQLite store, the report page behind the admin token (read by headless
// Chromium through an authenticating proxy), the JSON summary, the export
// API and the `router report` command.
func TestReportFromARunningRouter(t *testing.T) {
	stable, _ := modelServer(t, "stable", "demo")
	canary, _ := modelServer(t, "canary", "demo")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "diffs.db")
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("s3cret-token\n"), 0o600))
	key := filepath.Join(dir, "fp.key")
	require.NoError(t, os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600))
	cfgPath := filepath.Join(dir, "router.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
stable: {url: %q}
canary: {url: %q}
shadow: {percent: 100}
admin: {tokenFile: %q}
compare:
  models:
    demo: {mode: probabilities}
store:
  sqlite: {path: %q}
  agreementSample: 1
  flushInterval: 50ms
  inputs:
    fingerprintKeyFile: %q
    fields:
    - {name: region, index: 6}
    - {name: x0, index: 0, buckets: [-1, 0, 1, 2]}
  report: {minSliceCount: 5, traceURL: "http://127.0.0.1:16686/trace/{trace_id}"}
`, stable.URL, canary.URL, token, dbPath, key)), 0o600))
	r := startRouter(t, "--config", cfgPath)

	rows, wantDis := knownRows(t, 30, 90)
	require.Positive(t, wantDis)
	for i, f := range rows {
		resp, body := post(t, r.data+"/v1/models/demo:predict", string(modelserver.EncodeV1([]demomodel.Features{f})),
			"X-Request-Id", fmt.Sprintf("known-%03d", i))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	}
	auth := func(req *http.Request) { req.Header.Set("Authorization", "Bearer s3cret-token") }
	get := func(path string) (int, []byte) {
		req, err := http.NewRequest(http.MethodGet, r.admin+path, nil)
		require.NoError(t, err)
		auth(req)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	// Shadows and store writes finish after the client's answer: poll.
	var sum report.Summary
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := get("/api/v1/reports/summary")
		require.Equal(t, http.StatusOK, code, string(b))
		require.NoError(t, json.Unmarshal(b, &sum))
		if sum.Records >= int64(len(rows)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.EqualValues(t, len(rows), sum.Records)

	// The summary against the known traffic.
	outcomes := map[string]float64{}
	for _, o := range sum.Outcomes {
		outcomes[o.Outcome] = o.Pairs
	}
	assert.Equal(t, float64(wantDis), outcomes["disagree"])
	assert.Equal(t, float64(len(rows)-wantDis), outcomes["agree"])
	require.NotNil(t, sum.Agreement)
	assert.InDelta(t, float64(len(rows)-wantDis)/float64(len(rows)), sum.Agreement.Rate, 1e-12)
	require.NotNil(t, sum.Flip)
	require.NotNil(t, sum.Kappa)
	require.NotNil(t, sum.Divergence)
	var north *report.Slice
	for i := range sum.Slices {
		if sum.Slices[i].Field == "region" && sum.Slices[i].Value == "north" {
			north = &sum.Slices[i]
		}
	}
	require.NotNil(t, north, "the corrupted region shows as a slice")
	for _, sl := range sum.Slices {
		if sl.Field == "region" && sl.Value != "north" {
			assert.Greater(t, north.Rate.Rate, sl.Rate.Rate, "north disagrees most among regions")
		}
	}
	require.NotEmpty(t, sum.Examples)
	assert.Regexp(t, `^known-\d{3}$`, sum.Examples[0].RequestID)

	// Without the token: nothing.
	for _, p := range []string{"/reports", "/api/v1/reports/summary", "/api/v1/diffs"} {
		resp, err := client.Get(r.admin + p)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, p)
	}

	// The export API streams the documented schema.
	code, b := get("/api/v1/diffs?format=jsonl&outcome=disagree")
	require.Equal(t, http.StatusOK, code, string(b))
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		assert.Equal(t, "disagree", row["outcome"])
		assert.NotContains(t, row["inputs"], "x0\":0.", "x0 is bucketed")
		lines++
	}
	assert.Equal(t, wantDis, lines)
	code, b = get("/api/v1/diffs?format=parquet")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "PAR1", string(b[:4]))
	code, _ = get("/api/v1/diffs?format=xml")
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = get("/api/v1/diffs?since=yesterday")
	assert.Equal(t, http.StatusBadRequest, code)

	// `router report` reads the same store from the config file.
	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"report", "export", "--config", cfgPath, "--format", "csv", "--outcome", "disagree", "--since", "1h"},
		func(string) string { return "" }, &out, &errb), errb.String())
	assert.Equal(t, wantDis+1, strings.Count(out.String(), "\n"), "header + one line per disagreement")
	htmlPath := filepath.Join(dir, "report.html")
	require.NoError(t, run(context.Background(), []string{"report", "html", "--config", cfgPath, "--out", htmlPath},
		func(string) string { return "" }, &out, &errb), errb.String())
	page, err := os.ReadFile(htmlPath)
	require.NoError(t, err)
	assert.Contains(t, string(page), "<svg")
	assert.NotContains(t, string(page), "<script")
	assert.NotContains(t, string(page), "<form", "a static file has nowhere to submit a form to")
	code, b = get("/reports?rollout=no-such-rollout")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(b), "No compared pairs yet")
	assert.Contains(t, string(b), `name="rollout" value="no-such-rollout"`)
	err = run(context.Background(), []string{"report", "export", "--config", cfgPath, "--format", "xlsx"}, func(string) string { return "" }, &out, &errb)
	assert.ErrorContains(t, err, `"xlsx"`)

	// Headless Chromium loads the page as a person would, through a proxy
	// that adds the bearer token (as an authenticating proxy in front of
	// the admin port does).
	target, err := url.Parse(r.admin)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { auth(req); rp.ServeHTTP(w, req) }))
	t.Cleanup(proxy.Close)
	dom := chromium(t, "--dump-dom", proxy.URL+"/reports")
	text := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `">([^<]*)<`).FindStringSubmatch(dom)
		require.NotNil(t, m, "element #%s on the page", id)
		return m[1]
	}
	// Numbers on the page = numbers in the store = the known traffic.
	assert.Equal(t, fmt.Sprint(len(rows)), text("pairs"))
	assert.Equal(t, fmt.Sprintf("%.1f%%", 100*float64(len(rows)-wantDis)/float64(len(rows))), text("agreement"))
	assert.Equal(t, fmt.Sprintf("%.3f", *sum.Kappa), text("kappa"))
	m := regexp.MustCompile(`data-outcome="disagree"><td class="l">disagree</td><td class="n">(\d+)<`).FindStringSubmatch(dom)
	require.NotNil(t, m)
	assert.Equal(t, fmt.Sprint(wantDis), m[1])
	flips := 0
	for _, c := range regexp.MustCompile(`data-stable="(\d+)" data-canary="(\d+)">(\d+)<`).FindAllStringSubmatch(dom, -1) {
		if c[1] != c[2] {
			var n int
			fmt.Sscan(c[3], &n)
			flips += n
		}
	}
	assert.Equal(t, wantDis, flips, "the flip matrix's off-diagonal cells add up to the disagreements")
	assert.Contains(t, dom, `data-slice="region=north"`)

	shot := screenshotPath(t)
	chromium(t, "--screenshot="+shot, "--window-size=1200,3800", "--hide-scrollbars", proxy.URL+"/reports")
	st, err := os.Stat(shot)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(20_000), "a screenshot with content")
	t.Logf("report screenshot: %s", shot)
}

// screenshotPath keeps the screenshot where a person can look at it:
// out/ at the repository root (git-ignored).
func screenshotPath(t *testing.T) string {
	dir, err := filepath.Abs("../../out")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return filepath.Join(dir, "report-screenshot.png")
}

// chromium runs Debian's headless Chromium with the flags that work as
// root on these machines, bounded in time, and returns its stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is required in CI (hack/deps.sh installs it)")
		}
		t.Skip("SKIPPING: chromium not installed (run hack/deps.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	require.NoError(t, ctx.Err(), "chromium did not finish in 90s")
	return stdout.String()
}
