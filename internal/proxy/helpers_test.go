package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// bound is how long any test waits for something that should happen; it is
// a safety net against hangs, never a timing assertion.
const bound = 10 * time.Second

// seen is one request as an upstream received it.
type seen struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
}

// upstream is a real HTTP server on 127.0.0.1 that records what it gets.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	hits atomic.Int64
}

func newUpstream(t testing.TB, fn http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), body})
		u.mu.Unlock()
		u.hits.Add(1)
		r.Body = io.NopCloser(bytes.NewReader(body)) // fn may read it again
		fn(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) url(t testing.TB) *url.URL {
	t.Helper()
	p, err := url.Parse(u.URL)
	require.NoError(t, err)
	return p
}

// jsonAnswer answers like a model server would.
func jsonAnswer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// chanRecorder copies each Exchange (the proxy reuses the slices) onto a
// buffered channel.
type chanRecorder struct{ ch chan models.Exchange }

func newChanRecorder() *chanRecorder { return &chanRecorder{ch: make(chan models.Exchange, 1024)} }

func (c *chanRecorder) Record(ex models.Exchange) {
	ex.Request = bytes.Clone(ex.Request)
	ex.Stable.Body = bytes.Clone(ex.Stable.Body)
	ex.Canary.Body = bytes.Clone(ex.Canary.Body)
	ex.Header = http.Header(ex.Header).Clone()
	c.ch <- ex
}

func (c *chanRecorder) next(t testing.TB) models.Exchange {
	t.Helper()
	select {
	case ex := <-c.ch:
		return ex
	case <-time.After(bound):
		t.Fatal("no exchange recorded")
		return models.Exchange{}
	}
}

// router starts a Handler behind a real server and stops both at cleanup.
type router struct {
	*Handler
	reg   *prometheus.Registry
	front *httptest.Server
}

func newRouter(t testing.TB, cfg Config, rec Recorder) *router {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := New(cfg, rec, reg)
	require.NoError(t, err)
	front := httptest.NewServer(h)
	t.Cleanup(func() {
		front.Close()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		_ = h.Close(ctx)
	})
	return &router{Handler: h, reg: reg, front: front}
}

// drain waits until every request has been handled (the handler enqueues
// after the client already has its answer) and every shadow job has run.
func (r *router) drain(t testing.TB) {
	t.Helper()
	r.front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	require.NoError(t, r.Close(ctx))
	require.Zero(t, liveFlights.Load(), "every flight went back to the pool")
}

func (r *router) shadow(why reason) int {
	return int(testutil.ToFloat64(r.m.shadow[why]))
}

func (r *router) requests(ro role, o outcome) int {
	return int(testutil.ToFloat64(r.m.requests[ro][o]))
}

// gauge reads a registered gauge by name, through the registry as a scrape would.
func (r *router) gauge(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

var client = &http.Client{Timeout: bound}

// do sends one request through the router and reads the whole answer.
func do(t testing.TB, method, u, body string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if h := hdr.Get("Host"); h != "" {
		req.Host = h
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, b
}

func postJSON(t testing.TB, u, body string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodPost, u, body, http.Header{"Content-Type": {"application/json"}})
}

const (
	v1Body = `{"instances":[[1.0,2.0,3.0,4.0]]}`
	v1Resp = `{"predictions":[1]}`
	v2Body = `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`
	v2Resp = `{"model_name":"iris","outputs":[{"name":"y","shape":[1],"datatype":"INT64","data":[1]}]}`
)

// closedURL is an address nobody listens on (connection refused).
func closedURL(t testing.TB) *url.URL {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	s.Close()
	return u
}

// eventually polls cond until it holds; the bound only guards against hangs.
func eventually(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type exchange = models.Exchange

// recorderFunc adapts a function to Recorder; it runs on the worker, so the
// Exchange's slices are valid inside it.
type recorderFunc func(models.Exchange)

func (f recorderFunc) Record(ex models.Exchange) { f(ex) }

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// observations is the sample count of the upstream latency histogram for role.
func (r *router) observations(t testing.TB, role string) uint64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "shadowsplit_upstream_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" && l.GetValue() == role {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
