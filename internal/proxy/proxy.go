// Package proxy is shadowsplit's data plane: a transparent http.Handler that
// serves every request from the stable model, byte for byte, and hands a
// deterministic sample of inference requests to a fixed pool of shadow
// workers that call the canary and pass both answers to a Recorder.
//
// The client's path never waits for the canary, the comparison or the
// recorder: the shadow job is enqueued with a non-blocking send after stable
// has answered, and a full queue drops the sample (counted). The canary sits
// behind a circuit breaker and a detached, bounded context, so a slow or
// broken canary costs the client nothing.
//
// In tap mode (Config.Mode) the router is off the client path: Istio mirrors
// traffic to it, and it replays each sampled copy to both models itself,
// within a budget that protects stable.
package proxy

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Recorder receives each completed exchange on a shadow worker.
//
// Record must not block (hand the value to a bounded queue or aggregate in
// place) and must not retain the Exchange's byte slices after it returns:
// they are pooled and reused (copy what you keep). Record is called
// concurrently from several workers.
type Recorder interface {
	Record(models.Exchange)
}

// Handler is the router core. It is safe for concurrent use; ServeHTTP never
// blocks on shadow work. Create it with New and stop it with Close.
type Handler struct {
	cfg       Config
	rec       Recorder
	m         *metrics
	log       *slog.Logger
	transport http.RoundTripper
	owned     *http.Transport // closed by Close when we created it
	stable    *httputil.ReverseProxy
	breaker   *gobreaker.TwoStepCircuitBreaker[struct{}]
	limiter   *rate.Limiter // tap replay rate; nil = unlimited
	tracer    trace.Tracer
	tracing   bool
	prop      propagation.TraceContext

	total, picked atomic.Uint64 // deterministic sampling
	tapInFlight   atomic.Int64

	jobs      chan *flight
	quit      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	stopCtx   context.Context // cancelled when Close gives up waiting
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

var _ http.Handler = (*Handler)(nil)

// New validates cfg, starts cfg.Workers shadow workers and returns the
// handler. rec may be nil (exchanges are then built and discarded, useful to
// measure the proxy alone). Metrics are registered on reg unless it is nil;
// registering two Handlers on one registry fails. Errors name the invalid
// Config field and its value.
func New(cfg Config, rec Recorder, reg prometheus.Registerer) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, rec: rec, log: cfg.Logger, transport: cfg.Transport}
	if h.transport == nil {
		h.owned = newTransport()
		h.transport = h.owned
	}
	if cfg.TracerProvider != nil {
		h.tracer, h.tracing = cfg.TracerProvider.Tracer("github.com/shadowsplit/shadowsplit/internal/proxy"), true
	} else {
		h.tracer = noop.NewTracerProvider().Tracer("")
	}
	h.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "canary",
		MaxRequests: cfg.Breaker.HalfOpenRequests,
		Interval:    cfg.Breaker.Interval,
		Timeout:     cfg.Breaker.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.Breaker.ConsecutiveFailures
		},
		// Shutdown cancels in-flight canary calls; that says nothing
		// about the canary's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			h.log.Warn("canary breaker state changed", "from", from.String(), "to", to.String())
		},
	})
	if cfg.Mode == ModeTap && cfg.Tap.MaxReplayPerSecond > 0 {
		h.limiter = rate.NewLimiter(rate.Limit(cfg.Tap.MaxReplayPerSecond), max(1, int(cfg.Tap.MaxReplayPerSecond)))
	}
	h.jobs = make(chan *flight, cfg.QueueSize)
	h.quit = make(chan struct{})
	h.stopCtx, h.stop = context.WithCancel(context.Background())
	h.m, err = newMetrics(reg,
		func() float64 { return float64(len(h.jobs)) },
		func() float64 { return float64(h.breaker.State()) }) // gobreaker: 0 closed, 1 half-open, 2 open
	if err != nil {
		return nil, err
	}
	h.stable = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      stableTransport{next: h.transport},
		BufferPool:     copyBuffers{},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.proxyError,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	h.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go h.worker()
	}
	return h, nil
}

// Close stops accepting shadow jobs, lets the workers finish the queued
// ones and waits for them. If ctx ends first it cancels in-flight canary
// calls, drops what is left (counted as shutdown), waits for the workers and
// returns ctx's error. Call it after the HTTP server using h has shut down;
// requests served after Close still reach stable but are not shadowed.
func (h *Handler) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		close(h.quit)
	})
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		h.stop()
		<-done
		err = fmt.Errorf("proxy: close: shadow queue not drained: %w", ctx.Err())
	}
	// A job enqueued while Close ran (a request still being served) may
	// have missed the workers: count it and give its flight back.
	for drained := false; !drained; {
		select {
		case f := <-h.jobs:
			h.m.shadow[reasonShutdown].Inc()
			if f.tap {
				h.tapInFlight.Add(-1)
			}
			f.release()
		default:
			drained = true
		}
	}
	h.stop()
	if h.owned != nil {
		h.owned.CloseIdleConnections()
	}
	return err
}

// ServeHTTP serves r from stable (inline mode) or accepts it as a mirrored
// copy to replay (tap mode). It never waits for shadow work.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Mode == ModeTap {
		h.serveTap(w, r)
		return
	}
	h.serveInline(w, r)
}

func (h *Handler) serveInline(w http.ResponseWriter, r *http.Request) {
	f := getFlight(h, time.Now())
	defer f.release() // also on http.ErrAbortHandler panics from ReverseProxy
	// Runs first: no transport Read may touch the buffer once it is recycled.
	defer func() {
		if f.reqBody != nil {
			f.reqBody.Close()
		}
	}()
	f.requestID = r.Header.Get(HeaderRequestID)
	if f.requestID == "" {
		f.requestID = newRequestID()
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d", r.ContentLength, h.cfg.MaxBodyBytes), f.requestID)
		return
	}

	proto, model, version, ok := models.ParsePath(r.URL.Path)
	switch {
	case !ok || r.Method != http.MethodPost:
		h.m.shadow[reasonNotInference].Inc()
	case isShadow(r):
		h.m.shadow[reasonAlreadyShadow].Inc()
	case h.sample():
		if r.ContentLength > h.cfg.MaxShadowBodyBytes {
			// Known too large to shadow: stream it to stable instead of
			// buffering a body nobody will compare.
			h.m.shadow[reasonBodyTooLarge].Inc()
		} else {
			f.shadow = true
		}
	default:
		h.m.shadow[reasonNotSampled].Inc()
	}

	ctx := context.WithValue(r.Context(), flightKey{}, f)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.StableTimeout)
	defer cancel()
	out := r.WithContext(ctx)
	f.stable.limit, f.stable.keep = h.cfg.MaxCaptureBytes, f.shadow

	if f.shadow {
		// Buffer the body: it goes to stable now and to the canary later.
		tooLarge, err := f.readBody(r.Body, r.ContentLength, h.cfg.MaxBodyBytes)
		switch {
		case tooLarge:
			h.m.shadow[reasonBodyTooLarge].Inc()
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", h.cfg.MaxBodyBytes), f.requestID)
			return
		case err != nil:
			h.m.shadow[reasonBodyError].Inc()
			writeError(w, http.StatusBadRequest, "reading request body: "+err.Error(), f.requestID)
			return
		}
		if int64(len(f.reqBuf)) > h.cfg.MaxShadowBodyBytes {
			f.shadow, f.stable.keep = false, false
			h.m.shadow[reasonBodyTooLarge].Inc()
		}
		f.proto, f.model, f.version = proto, model, version
		out.ContentLength = int64(len(f.reqBuf))
		out.TransferEncoding = nil
		if len(f.reqBuf) == 0 {
			out.Body = http.NoBody
		} else {
			f.reqBody = &bodyReader{buf: f.reqBuf}
			out.Body = f.reqBody
		}
	} else if r.ContentLength < 0 {
		// Streamed body of unknown length: enforce the hard limit as it
		// flows; proxyError turns the overflow into a 413.
		out.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	}

	if h.tracing {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			// No server span around us (cmd/router adds one): continue
			// the caller's trace from its headers.
			ctx = h.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
			f.parent = trace.SpanContextFromContext(ctx)
		}
		ctx, f.span = h.tracer.Start(ctx, "stable", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("shadowsplit.role", "stable")))
		out = out.WithContext(ctx)
	}

	defer h.countAbort(f)
	h.stable.ServeHTTP(w, out)

	st, span := &f.stable, f.span
	if !f.routerAnswer {
		h.m.requests[roleStable][st.outcome].Inc()
		if st.failure == models.FailureNone && st.status >= 200 { // not a 101 upgrade
			h.m.duration[roleStable].Observe(st.latency.Seconds())
		}
	}
	if span != nil {
		if st.failure != models.FailureNone || st.status >= 500 {
			span.SetStatus(codes.Error, outcomeNames[st.outcome])
		}
		if st.status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", st.status))
		}
		span.End()
	}
	if !f.shadow {
		return
	}
	if st.failure != models.FailureNone || f.routerAnswer {
		h.m.shadow[reasonStableFailed].Inc()
		return
	}
	// The client has its whole answer once it is flushed; everything below
	// happens after that and never blocks.
	_ = http.NewResponseController(w).Flush()
	f.path, f.rawQuery = r.URL.Path, r.URL.RawQuery
	f.contentType = r.Header.Get("Content-Type")
	f.header = r.Header.Clone()
	f.ctx = context.WithoutCancel(r.Context())
	if !f.parent.IsValid() {
		f.parent = trace.SpanContextFromContext(r.Context())
	}
	h.enqueue(f)
}

// countAbort still counts the stable call when ReverseProxy aborts with
// http.ErrAbortHandler (stable's body broke mid-stream, or the client stopped
// reading), then lets the panic continue to the server.
func (h *Handler) countAbort(f *flight) {
	p := recover()
	if p == nil {
		return
	}
	h.m.requests[roleStable][f.stable.outcome].Inc()
	if f.shadow {
		h.m.shadow[reasonStableFailed].Inc()
	}
	if f.span != nil {
		f.span.SetStatus(codes.Error, "aborted")
		f.span.End()
	}
	panic(p)
}

// enqueue hands f to the workers without ever blocking the caller.
func (h *Handler) enqueue(f *flight) bool {
	if h.closed.Load() {
		h.m.shadow[reasonShutdown].Inc()
		return false
	}
	f.refs.Add(1)
	select {
	case h.jobs <- f:
		return true
	default:
		f.refs.Add(-1) // cannot reach zero: the caller still holds its reference
		h.m.shadow[reasonQueueFull].Inc()
		return false
	}
}

// isShadow reports a request that is already a shadow copy: marked by a
// router, or mirrored by Istio (Envoy appends -shadow to the Host).
func isShadow(r *http.Request) bool {
	if r.Header.Get(HeaderShadow) != "" {
		return true
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.HasSuffix(host, "-shadow")
}

// sample is the deterministic sampler: the n-th eligible request is picked
// iff picked*100 < n*percent, so N sequential requests pick exactly
// ceil(N*percent/100). The CAS keeps the count exact under concurrency.
func (h *Handler) sample() bool {
	p := uint64(h.cfg.ShadowPercent)
	if p == 0 {
		return false
	}
	n := h.total.Add(1)
	for {
		c := h.picked.Load()
		if c*100 >= n*p {
			return false
		}
		if h.picked.CompareAndSwap(c, c+1) {
			return true
		}
	}
}

func newRequestID() string {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}
