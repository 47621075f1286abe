package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

func TestCanaryModelIsRewritten(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v2Resp))
	canary := newUpstream(t, jsonAnswer(v2Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, CanaryModel: "iris-v2"}, rec)

	for _, tt := range []struct{ path, stablePath, canaryPath string }{
		{"/v1/models/iris:predict", "/v1/models/iris:predict", "/v1/models/iris-v2:predict"},
		{"/v2/models/iris/infer", "/v2/models/iris/infer", "/v2/models/iris-v2/infer"},
		{"/v2/models/iris/versions/3/infer?x=1", "/v2/models/iris/versions/3/infer", "/v2/models/iris-v2/versions/3/infer"},
	} {
		postJSON(t, rt.front.URL+tt.path, v2Body)
		ex := rec.next(t)
		assert.Equal(t, "iris", ex.Model)
		assert.Equal(t, "iris-v2", ex.CanaryModel)
		s, c := stable.requests(), canary.requests()
		assert.Equal(t, tt.stablePath, s[len(s)-1].Path)
		assert.Equal(t, tt.canaryPath, c[len(c)-1].Path)
		assert.Equal(t, s[len(s)-1].RawQuery, c[len(c)-1].RawQuery)
	}
}

func TestExchangeCarriesBothAnswers(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v2Resp))
	canary := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"outputs":[]}`)
	})
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, rec)
	do(t, http.MethodPost, rt.front.URL+"/v2/models/iris/versions/3/infer", v2Body,
		http.Header{"Content-Type": {"application/json"}, HeaderRequestID: {"rid-1"}})
	ex := rec.next(t)
	assert.Equal(t, "rid-1", ex.RequestID)
	assert.Equal(t, models.ProtocolV2, ex.Protocol)
	assert.Equal(t, "iris", ex.Model)
	assert.Equal(t, "3", ex.Version)
	assert.Equal(t, "/v2/models/iris/versions/3/infer", ex.Path)
	assert.Equal(t, "application/json", ex.ContentType)
	assert.Equal(t, v2Body, string(ex.Request))
	assert.Equal(t, models.Response{Status: 200, ContentType: "application/json", Body: []byte(v2Resp), Latency: ex.Stable.Latency}, ex.Stable)
	assert.Equal(t, models.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"outputs":[]}`), Latency: ex.Canary.Latency}, ex.Canary)
	assert.Positive(t, ex.Stable.Latency)
	assert.Positive(t, ex.Canary.Latency)
	assert.False(t, ex.Start.IsZero())
}

func TestCaptureIsBoundedButClientGetsAll(t *testing.T) {
	long := `{"predictions":[` + string(bytes.Repeat([]byte("1,"), 500)) + `1]}`
	stable := newUpstream(t, jsonAnswer(long))
	canary := newUpstream(t, jsonAnswer(long))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, MaxCaptureBytes: 64}, rec)
	_, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	assert.Equal(t, long, string(body))
	ex := rec.next(t)
	assert.True(t, ex.Stable.Truncated)
	assert.True(t, ex.Canary.Truncated)
	assert.Equal(t, long[:64], string(ex.Stable.Body))
	assert.Equal(t, long[:64], string(ex.Canary.Body))
}

func TestShadowRequestHeaders(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(map[bool]string{false: "credentials stripped", true: "credentials forwarded"}[forward], func(t *testing.T) {
			stable := newUpstream(t, jsonAnswer(v1Resp))
			canary := newUpstream(t, jsonAnswer(v1Resp))
			rec := newChanRecorder()
			rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, ForwardCredentials: forward}, rec)
			const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			do(t, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", v1Body, http.Header{
				"Content-Type":  {"application/json"},
				"Authorization": {"Bearer secret"},
				"Cookie":        {"session=secret"},
				"X-Custom":      {"kept"},
				"Connection":    {"X-Hop"},
				"X-Hop":         {"dropped"},
				"Traceparent":   {parent},
			})
			ex := rec.next(t)
			s, c := stable.requests()[0].Header, canary.requests()[0].Header

			assert.Equal(t, "1", c.Get(HeaderShadow))
			assert.Empty(t, s.Get(HeaderShadow), "stable gets the client's request, unmarked")
			assert.Len(t, s.Get(HeaderRequestID), 32)
			assert.Equal(t, s.Get(HeaderRequestID), c.Get(HeaderRequestID))
			assert.Equal(t, ex.RequestID, c.Get(HeaderRequestID))
			assert.Equal(t, "kept", c.Get("X-Custom"))
			assert.Empty(t, c.Get("X-Hop"))
			assert.Equal(t, parent, c.Get("Traceparent"), "W3C trace context reaches the canary")
			assert.Equal(t, parent, s.Get("Traceparent"))
			assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", ex.TraceID)
			assert.Equal(t, "kept", http.Header(ex.Header).Get("X-Custom"), "the Exchange carries the request's header for slicing")
			assert.Equal(t, "Bearer secret", s.Get("Authorization"), "stable always gets the client's credentials")
			if forward {
				assert.Equal(t, "Bearer secret", c.Get("Authorization"))
				assert.Equal(t, "session=secret", c.Get("Cookie"))
			} else {
				assert.Empty(t, c.Get("Authorization"))
				assert.Empty(t, c.Get("Cookie"))
			}
		})
	}
}

func TestTracingCanarySpanIsLinkedRoot(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, TracerProvider: tp}, rec)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	do(t, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", v1Body, http.Header{
		"Content-Type": {"application/json"}, "Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})
	ex := rec.next(t)
	rt.drain(t)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
	}
	require.Contains(t, byName, "stable")
	require.Contains(t, byName, "canary")
	st, ca := byName["stable"], byName["canary"]
	assert.Equal(t, trace.SpanKindClient, st.SpanKind())
	assert.Equal(t, traceID, st.SpanContext().TraceID().String())
	assert.Equal(t, parentID, st.Parent().SpanID().String())
	assert.NotEqual(t, traceID, ca.SpanContext().TraceID().String(), "the canary span is a new root")
	assert.False(t, ca.Parent().IsValid())
	require.Len(t, ca.Links(), 1)
	assert.Equal(t, traceID, ca.Links()[0].SpanContext.TraceID().String())
	assert.Equal(t, parentID, ca.Links()[0].SpanContext.SpanID().String())
	assert.Equal(t, traceID, ex.TraceID)
	assert.Contains(t, stable.requests()[0].Header.Get("Traceparent"), st.SpanContext().SpanID().String())
	assert.Contains(t, canary.requests()[0].Header.Get("Traceparent"), ca.SpanContext().TraceID().String())
}

func TestUncomparableRequestsAreServedAndCounted(t *testing.T) {
	tests := []struct {
		name string
		hdr  http.Header
		body string
		want reason
	}{
		{"malformed json", http.Header{"Content-Type": {"application/json"}}, `{"instances":[1,`, reasonMalformedJSON},
		{"wrong content type", http.Header{"Content-Type": {"text/csv"}}, "1,2,3,4", reasonContentType},
		{"binary tensor extension", http.Header{"Content-Type": {"application/octet-stream"}, HeaderBinaryTensor: {"10"}}, `{"inputs":[]}` + "\x00\x01\x02", reasonBinaryTensor},
		{"binary input announced in the JSON", http.Header{"Content-Type": {"application/json"}}, `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, reasonBinaryTensor},
		{"valid JSON without inputs", http.Header{"Content-Type": {"application/json"}}, `{"data":[1,2]}`, reasonMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stable := newUpstream(t, jsonAnswer(v2Resp))
			canary := newUpstream(t, jsonAnswer(v2Resp))
			rec := newChanRecorder()
			rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, rec)
			res, body := do(t, http.MethodPost, rt.front.URL+"/v2/models/iris/infer", tt.body, tt.hdr)
			assert.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, v2Resp, string(body))
			assert.Equal(t, tt.body, string(stable.requests()[0].Body), "stable gets the request unchanged")
			rt.drain(t)
			assert.Equal(t, 1, rt.shadow(tt.want))
			assert.Zero(t, rt.shadow(reasonSent))
			assert.Zero(t, canary.hits.Load())
			assert.Empty(t, rec.ch)
		})
	}
}

// blockingRecorder stalls the worker inside Record until released, which
// is how the tests fill the queue deterministically.
type blockingRecorder struct {
	entered chan struct{}
	release chan struct{}
	got     chan models.Exchange
}

func newBlockingRecorder() *blockingRecorder {
	return &blockingRecorder{entered: make(chan struct{}, 16), release: make(chan struct{}), got: make(chan models.Exchange, 16)}
}

func (b *blockingRecorder) Record(ex models.Exchange) {
	b.entered <- struct{}{}
	<-b.release
	b.got <- ex
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rec := newBlockingRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 1, QueueSize: 1}, rec)
	u := rt.front.URL + "/v1/models/iris:predict"

	postJSON(t, u, v1Body)
	waitFor(t, rec.entered, "worker busy in Record") // the only worker is now stuck
	postJSON(t, u, v1Body)                           // fills the queue
	eventually(t, func() bool { return rt.gauge(t, "shadowsplit_shadow_queue_depth") == 1 }, "queue holds one job")
	for range 3 {
		res, body := postJSON(t, u, v1Body) // queue full: served, sample dropped
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, v1Resp, string(body))
	}
	// The handler enqueues after the client has its answer: wait for the
	// three drops before the worker is let go.
	eventually(t, func() bool { return rt.shadow(reasonQueueFull) == 3 }, "three samples dropped")
	close(rec.release)
	rt.drain(t)
	assert.Equal(t, 3, rt.shadow(reasonQueueFull))
	assert.Len(t, rec.got, 2)
	assert.Equal(t, 2, rt.shadow(reasonSent))
	assert.Equal(t, 0.0, rt.gauge(t, "shadowsplit_shadow_queue_depth"))
}

func TestClientUnaffectedByHangingCanary(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	canary := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	stable := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, CanaryTimeout: bound}, nil)
	u := rt.front.URL + "/v1/models/iris:predict"

	res, body := postJSON(t, u, v1Body)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, v1Resp, string(body))
	waitFor(t, entered, "canary called")
	// The canary is now provably blocked; more clients are served anyway.
	for range 3 {
		res, body := postJSON(t, u, v1Body)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, v1Resp, string(body))
	}
	// Nothing can have returned yet: release is still open. The proof is
	// that the posts above completed at all (postJSON fails on its client
	// timeout if an answer waited for the canary).
	close(release)
	rt.drain(t)
	assert.Equal(t, 4, rt.requests(roleCanary, code2xx))
}

func TestCloseDrainsQueuedShadows(t *testing.T) {
	release := make(chan struct{})
	canary := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		jsonAnswer(v1Resp)(w, r)
	})
	stable := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 1, CanaryTimeout: bound}, rec)
	for range 3 {
		postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	}
	// One job is at the canary, two wait in the queue.
	eventually(t, func() bool { return rt.gauge(t, "shadowsplit_shadow_queue_depth") == 2 }, "two jobs queued")
	closed := make(chan error, 1)
	go func() { closed <- rt.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a shadow was still in flight", err)
	default:
	}
	close(release)
	require.NoError(t, <-closed)
	assert.Len(t, rec.ch, 3)
	assert.Equal(t, 3, rt.shadow(reasonSent))

	// After Close the router still serves, without shadowing.
	res, _ := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	rt.front.Close()
	assert.Equal(t, 1, rt.shadow(reasonShutdown))
}

func TestCloseGivesUpWhenContextEnds(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 4)
	canary := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	stable := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 1, CanaryTimeout: bound}, rec)
	for range 3 {
		postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	}
	waitFor(t, entered, "canary called")
	rt.front.Close() // every handler has enqueued
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := rt.Close(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 3, rt.shadow(reasonShutdown), "the in-flight call is cancelled and the queued ones dropped")
	assert.Empty(t, rec.ch)
	assert.Equal(t, 0.0, rt.gauge(t, "shadowsplit_breaker_state"), "shutdown is not a canary failure")
}

func TestGzippedStableAnswerIsComparedDecoded(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = io.WriteString(zw, v1Resp)
	require.NoError(t, zw.Close())
	stable := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(zipped.Bytes())
	})
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, rec)
	res, body := do(t, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", v1Body,
		http.Header{"Content-Type": {"application/json"}, "Accept-Encoding": {"gzip"}})
	assert.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	assert.Equal(t, zipped.Bytes(), body, "the client gets stable's compressed bytes unchanged")
	ex := rec.next(t)
	assert.Equal(t, v1Resp, string(ex.Stable.Body))
	assert.Empty(t, canary.requests()[0].Header.Get("Accept-Encoding"))
}

func TestPanickingRecorderDoesNotKillWorkers(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	calls := make(chan struct{}, 8)
	rec := recorderFunc(func(models.Exchange) { calls <- struct{}{}; panic("recorder bug") })
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 1}, rec)
	for range 3 {
		res, _ := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		waitFor(t, calls, "the single worker is still alive")
	}
	rt.drain(t)
}
