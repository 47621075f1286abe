package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
	"github.com/shadowsplit/shadowsplit/internal/modelserver"
	"github.com/shadowsplit/shadowsplit/internal/pipeline"
)

// syncBuffer is an io.Writer the test can read while the router writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// modelServer starts the repo's real demo model server on 127.0.0.1 and
// records the headers of each request it receives.
func modelServer(t *testing.T, variant, name string) (*httptest.Server, *headerLog) {
	t.Helper()
	m, err := demomodel.Load(variant)
	require.NoError(t, err)
	h, err := modelserver.NewHandler(modelserver.Config{Model: m, ModelName: name})
	require.NoError(t, err)
	log := &headerLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

type headerLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *headerLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, &http.Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Host: r.Host})
}

func (l *headerLog) all() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request(nil), l.reqs...)
}

type runningRouter struct {
	data, admin string
	stdout      *syncBuffer
	stderr      *syncBuffer
	done        chan error
	cancel      context.CancelFunc
}

var addrLine = regexp.MustCompile(`data=(\S+) admin=(\S+)`)

// startRouter runs the real `router serve` code path in-process on free
// loopback ports and stops it when the test ends.
func startRouter(t *testing.T, args ...string) *runningRouter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningRouter{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1), cancel: cancel}
	full := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, args...)
	go func() { r.done <- run(ctx, full, func(string) string { return "" }, r.stdout, r.stderr) }()
	deadline := time.After(20 * time.Second)
	for {
		if m := addrLine.FindStringSubmatch(r.stdout.String()); m != nil {
			r.data, r.admin = "http://"+m[1], "http://"+m[2]
			break
		}
		select {
		case err := <-r.done:
			t.Fatalf("router exited before listening: %v\nstderr: %s", err, r.stderr.String())
		case <-deadline:
			t.Fatalf("router did not start\nstderr: %s", r.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runningRouter) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // let a second stop return at once
	case <-time.After(20 * time.Second):
		t.Fatal("router did not stop within 20s of cancellation")
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func summary(t *testing.T, admin string) pipeline.SummaryJSON {
	t.Helper()
	resp, err := client.Get(admin + "/api/v1/summary")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var s pipeline.SummaryJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// waitExchanges polls until the router has compared n exchanges: shadows
// complete after the client's answer, by design.
func waitExchanges(t *testing.T, admin string, n int64) pipeline.SummaryJSON {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := summary(t, admin)
		if s.Exchanges >= n || time.Now().After(deadline) {
			require.Equal(t, n, s.Exchanges, "compared exchanges")
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := client.Get(admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestServeEndToEnd drives the router binary's code path between the repo's
// real stable and canary model servers: clients get stable's bytes, every
// request is shadowed to the canary under its own model name, and the
// disagreements counted are exactly the rows the canary was trained to flip.
func TestServeEndToEnd(t *testing.T) {
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	canary, canaryLog := modelServer(t, demomodel.VariantCanary, "demo-v2")
	r := startRouter(t, "--stable", stable.URL, "--canary", canary.URL, "--canary-model", "demo-v2", "--shadow-percent", "100")

	stableModel, err := demomodel.Load(demomodel.VariantStable)
	require.NoError(t, err)
	canaryModel, err := demomodel.Load(demomodel.VariantCanary)
	require.NoError(t, err)

	const n = 300
	gen := demomodel.NewGenerator(7)
	wantDisagree := 0
	for i := 0; i < n; i++ {
		f := gen.Next()
		if stableModel.Label(f) != canaryModel.Label(f) {
			wantDisagree++
		}
		body := string(modelserver.EncodeV1([]demomodel.Features{f}))
		viaRouter, got := post(t, r.data+"/v1/models/demo:predict", body)
		direct, want := post(t, stable.URL+"/v1/models/demo:predict", body)
		require.Equal(t, direct.StatusCode, viaRouter.StatusCode)
		require.Equal(t, string(want), string(got), "the client gets stable's answer byte for byte")
		require.Equal(t, direct.Header.Get("Content-Type"), viaRouter.Header.Get("Content-Type"))
	}
	require.Positive(t, wantDisagree, "the seed must hit the canary's slice")

	s := waitExchanges(t, r.admin, n)
	assert.Equal(t, int64(wantDisagree), s.Outcomes["disagree"])
	assert.Equal(t, int64(n-wantDisagree), s.Outcomes["agree"])
	require.NotNil(t, s.Agreement)
	assert.InDelta(t, float64(n-wantDisagree)/n, s.Agreement.Rate, 1e-9)
	assert.Less(t, s.Agreement.Lower, s.Agreement.Rate)
	assert.Greater(t, s.Agreement.Upper, s.Agreement.Rate)

	for _, req := range canaryLog.all() {
		assert.Equal(t, "/v1/models/demo-v2:predict", req.URL.Path, "the canary is called under its own model name")
		assert.Equal(t, "1", req.Header.Get("X-Shadowsplit-Shadow"))
	}
	assert.Len(t, canaryLog.all(), n)

	m := metricsText(t, r.admin)
	assert.Contains(t, m, `shadowsplit_comparisons_total{outcome="disagree"} `+itoa(wantDisagree))
	assert.Contains(t, m, `shadowsplit_shadow_total{reason="none",result="sent"} `+itoa(n))
	assert.Contains(t, m, `shadowsplit_agreement_ratio{bound="lower"}`)
	assert.Contains(t, m, `shadowsplit_upstream_duration_seconds_bucket{role="canary"`)
}

func itoa(i int) string { return strconv.Itoa(i) }

func rows(seed uint64, n int) []demomodel.Features {
	g := demomodel.NewGenerator(seed)
	out := make([]demomodel.Features, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestServeTransparentForOtherPathsAndV2(t *testing.T) {
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	canary, canaryLog := modelServer(t, demomodel.VariantCanary, "demo")
	r := startRouter(t, "--stable", stable.URL, "--canary", canary.URL, "--shadow-percent", "100")

	for _, path := range []string{"/v2/health/ready", "/v2/models/demo", "/v1/models/demo", "/no/such/path", "/v2/models/unknown/infer"} {
		got, err := client.Get(r.data + path)
		require.NoError(t, err)
		gotBody, _ := io.ReadAll(got.Body)
		got.Body.Close()
		want, err := client.Get(stable.URL + path)
		require.NoError(t, err)
		wantBody, _ := io.ReadAll(want.Body)
		want.Body.Close()
		assert.Equal(t, want.StatusCode, got.StatusCode, path)
		assert.Equal(t, string(wantBody), string(gotBody), path)
	}
	body := string(modelserver.EncodeV2(rows(3, 4)))
	resp, got := post(t, r.data+"/v2/models/demo/infer", body)
	_, want := post(t, stable.URL+"/v2/models/demo/infer", body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, string(want), string(got))
	s := waitExchanges(t, r.admin, 1)
	assert.Equal(t, int64(4), s.Instances, "a V2 batch is compared per instance")
	// Only the one inference POST was shadowed: GETs are passed through.
	assert.Len(t, canaryLog.all(), 1)
}

func TestServeHealthAndGracefulStop(t *testing.T) {
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	r := startRouter(t, "--stable", stable.URL)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := client.Get(r.admin + p)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	r.stop(t)
	_, err := client.Get(r.data + "/v2/health/ready")
	assert.Error(t, err, "the data port is closed after stop")
}

func TestServeRejectsBadConfigNamingTheField(t *testing.T) {
	var stderr syncBuffer
	err := run(context.Background(), []string{"serve", "--stable", "http://127.0.0.1:1", "--shadow-percent", "101", "--canary", "http://127.0.0.1:2"},
		func(string) string { return "" }, io.Discard, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `shadow.percent: "101"`)
}

// TestServeTracesLinkCanaryToClientTrace checks the W3C trace context:
// stable is called inside the client's trace; the canary call is its own
// trace (so it never holds the client's span open) whose root links back to
// the client's span; both are exported.
func TestServeTracesLinkCanaryToClientTrace(t *testing.T) {
	stable, stableLog := modelServer(t, demomodel.VariantStable, "demo")
	canary, canaryLog := modelServer(t, demomodel.VariantCanary, "demo")
	r := startRouter(t, "--stable", stable.URL, "--canary", canary.URL, "--shadow-percent", "100", "--traces", "stdout")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := string(modelserver.EncodeV1(rows(1, 1)))
	resp, _ := post(t, r.data+"/v1/models/demo:predict", body, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitExchanges(t, r.admin, 1)
	require.Len(t, canaryLog.all(), 1)
	canaryTP := canaryLog.all()[0].Header.Get("traceparent")
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, canaryTP)
	canaryTrace := strings.Split(canaryTP, "-")[1]
	assert.NotEqual(t, traceID, canaryTrace, "the canary span is a new root, linked rather than parented")
	require.Len(t, stableLog.all(), 1)
	assert.Contains(t, stableLog.all()[0].Header.Get("traceparent"), traceID)
	r.stop(t) // flushes the batch exporter
	out := r.stdout.String()
	assert.Contains(t, out, traceID, "spans of the client's trace are exported")
	assert.Contains(t, out, canaryTrace, "the canary span is exported")
	// The canary span's link carries the client's trace id: find the span
	// of the canary trace and check its Links.
	dec := json.NewDecoder(strings.NewReader(out[strings.Index(out, "{"):]))
	linked := false
	for dec.More() {
		var span struct {
			SpanContext struct{ TraceID string }
			Links       []struct{ SpanContext struct{ TraceID string } }
		}
		if dec.Decode(&span) != nil {
			break
		}
		if span.SpanContext.TraceID == canaryTrace {
			for _, l := range span.Links {
				linked = linked || l.SpanContext.TraceID == traceID
			}
		}
	}
	assert.True(t, linked, "the canary span links to the client's trace")
}

func TestAdminTokenProtectsTheAPI(t *testing.T) {
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	tokenPath := writeFile(t, "s3cret\n")
	r := startRouter(t, "--stable", stable.URL, "--admin-token-file", tokenPath)
	get := func(path, auth string) int {
		req, err := http.NewRequest(http.MethodGet, r.admin+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, get("/api/v1/summary", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/api/v1/summary", "Bearer wrong"))
	assert.Equal(t, http.StatusOK, get("/api/v1/summary", "Bearer s3cret"))
	assert.Equal(t, http.StatusOK, get("/metrics", ""), "Prometheus scrapes without the token")
	assert.Equal(t, http.StatusOK, get("/readyz", ""), "probes need no token")

	empty := writeFile(t, "  \n")
	err := run(context.Background(), []string{"serve", "--stable", stable.URL, "--admin-token-file", empty}, func(string) string { return "" }, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admin.tokenFile")
}

func TestPprofIsOptIn(t *testing.T) {
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	off := startRouter(t, "--stable", stable.URL)
	resp, err := client.Get(off.admin + "/debug/pprof/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	cfg := writeFile(t, "admin: {pprof: true}\n")
	on := startRouter(t, "--stable", stable.URL, "--config", cfg)
	resp, err = client.Get(on.admin + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(b), "heap profile")
}
