package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// errCanary5xx makes a canary 5xx answer count as a breaker failure.
var errCanary5xx = errors.New("canary answered 5xx")

// worker runs shadow jobs until Close; then it drains what is queued.
func (h *Handler) worker() {
	defer h.wg.Done()
	for {
		select {
		case f := <-h.jobs:
			h.runJob(f)
		case <-h.quit:
			for {
				select {
				case f := <-h.jobs:
					h.runJob(f)
				default:
					return
				}
			}
		}
	}
}

func (h *Handler) runJob(f *flight) {
	defer f.release()
	if f.tap {
		defer h.tapInFlight.Add(-1)
	}
	defer func() {
		// A panicking Recorder is a bug, but it must not kill the worker:
		// a shrinking pool would silently turn every sample into a drop.
		if p := recover(); p != nil {
			h.log.Error("shadow job panicked", "request_id", f.requestID, "panic", p)
		}
	}()
	if h.stopCtx.Err() != nil {
		h.m.shadow[reasonShutdown].Inc()
		return
	}
	if !f.parent.IsValid() {
		// No server span around us: continue the caller's trace, if any.
		f.parent = trace.SpanContextFromContext(h.prop.Extract(context.Background(), propagation.HeaderCarrier(f.header)))
	}
	if r := checkRequest(f); r != reasonSent {
		h.m.shadow[r].Inc()
		return
	}
	done, err := h.breaker.Allow()
	if err != nil { // open, or half-open with its probes already out
		h.m.shadow[reasonBreakerOpen].Inc()
		return
	}
	if f.tap {
		// Both replays run at once so their latencies are comparable.
		stableDone := make(chan struct{})
		go func() {
			defer close(stableDone)
			h.replay(f, roleStable, h.cfg.StableTimeout)
		}()
		done(h.replay(f, roleCanary, h.cfg.CanaryTimeout))
		<-stableDone
	} else {
		done(h.replay(f, roleCanary, h.cfg.CanaryTimeout))
	}
	if h.stopCtx.Err() != nil && (f.canary.outcome == codeCanceled || f.stable.outcome == codeCanceled) {
		h.m.shadow[reasonShutdown].Inc()
		return
	}
	h.m.shadow[reasonSent].Inc()
	h.record(f)
}

// checkRequest decides on the worker, off the client's path, whether the
// request can be compared at all.
func checkRequest(f *flight) reason {
	if f.header.Get(HeaderBinaryTensor) != "" {
		return reasonBinaryTensor
	}
	if !isJSON(f.contentType) {
		return reasonContentType
	}
	// One rule set with the comparer: a body models cannot read as this
	// protocol's request is not worth a canary call.
	switch err := models.CheckRequest(f.proto, f.reqBuf); {
	case err == nil:
		return reasonSent
	case errors.Is(err, models.ErrBinaryTensor):
		return reasonBinaryTensor
	default: // malformed JSON, or no instances/inputs
		return reasonMalformedJSON
	}
}

// isJSON accepts application/json, any +json type, and a missing
// Content-Type (many inference clients send none; the JSON check follows).
func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// replay sends the buffered request to one upstream (the canary, or stable
// in tap mode) on a context detached from the client, bounded by timeout
// and by Close. Its span is a new root linked to the request's span, so it
// never holds the client's trace open. The returned error is what the
// breaker judges: transport errors, timeouts and 5xx are failures.
func (h *Handler) replay(f *flight, r role, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(f.ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(h.stopCtx, cancel)
	defer stop()

	base, path, c := h.cfg.Canary, models.RewriteModel(f.path, h.cfg.CanaryModel), &f.canary
	if r == roleStable {
		base, path, c = h.cfg.Stable, f.path, &f.stable
	}
	// The transport may still read the body after RoundTrip returns (an
	// upstream that answers before reading it all): closing our reader
	// before the flight is released keeps those reads off the pooled
	// buffer.
	body := &bodyReader{buf: f.reqBuf}
	defer body.Close()
	// Built field by field: the target is the configured base URL, never
	// a string that came from the request.
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Scheme: base.Scheme, Host: base.Host, Path: joinPath(base.Path, path), RawQuery: f.rawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.replayHeader(f.header, f.requestID),
		Body:          body,
		ContentLength: int64(len(f.reqBuf)),
		Host:          base.Host,
	}).WithContext(ctx)

	parent := f.parent
	var span trace.Span
	if h.tracing {
		opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("shadowsplit.role", roleNames[r]), attribute.String("shadowsplit.request_id", f.requestID))}
		if parent.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: parent}))
		}
		ctx, span = h.tracer.Start(ctx, roleNames[r], opts...)
		req = req.WithContext(ctx)
		defer span.End()
	}
	switch {
	case span != nil && span.SpanContext().IsValid():
		h.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	case parent.IsValid():
		h.prop.Inject(trace.ContextWithSpanContext(ctx, parent), propagation.HeaderCarrier(req.Header))
	}

	err := h.call(req, r, c)
	if err == nil && c.status >= 500 {
		err = errCanary5xx
	}
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, outcomeNames[c.outcome])
		}
		if c.status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", c.status))
		}
	}
	return err
}

// record builds the Exchange and hands it to the Recorder. The slices it
// carries stay valid until Record returns (the flight is released after).
func (h *Handler) record(f *flight) {
	if h.rec == nil {
		return
	}
	parent := f.parent
	ex := models.Exchange{
		RequestID:   f.requestID,
		Protocol:    f.proto,
		Model:       f.model,
		CanaryModel: f.model,
		Version:     f.version,
		Path:        f.path,
		ContentType: f.contentType,
		Request:     f.reqBuf,
		Header:      f.header,
		Stable:      h.decoded(&f.stable),
		Canary:      h.decoded(&f.canary),
		Start:       f.start,
	}
	if h.cfg.CanaryModel != "" {
		ex.CanaryModel = h.cfg.CanaryModel
	}
	if parent.IsValid() {
		ex.TraceID = parent.TraceID().String()
	}
	h.rec.Record(ex)
}

// decoded returns the captured answer, gunzipped when stable compressed it
// for a client that asked so (the client got the compressed bytes; the
// comparison needs the JSON). A body that cannot be inflated is passed on
// as captured; the comparer will see it as garbage.
func (h *Handler) decoded(c *capture) models.Response {
	resp := c.response(true)
	if !strings.EqualFold(c.encoding, "gzip") || c.truncated || resp.Failure != models.FailureNone {
		return resp
	}
	zr, err := gzip.NewReader(bytes.NewReader(c.buf))
	if err != nil {
		return resp
	}
	plain, err := io.ReadAll(io.LimitReader(zr, h.cfg.MaxCaptureBytes+1))
	if err != nil {
		return resp
	}
	if int64(len(plain)) > h.cfg.MaxCaptureBytes {
		plain, resp.Truncated = plain[:h.cfg.MaxCaptureBytes], true
	}
	resp.Body = plain
	return resp
}

func joinPath(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
}
