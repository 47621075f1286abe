package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// The stable side: the hooks of the one httputil.ReverseProxy built in New.
// They find the request's flight in its context, so none of them allocates
// per request beyond what httputil itself does.

// rewrite aims the outgoing request at stable. Only the configured URL is
// used; nothing in the request can choose the upstream.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.cfg.Stable)
	// Transparent hop: keep the X-Forwarded-* a mesh or edge already set
	// (Rewrite strips them from Out by default).
	for _, k := range [...]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
	if f := flightFrom(pr.In.Context()); f != nil && pr.In.Header.Get(HeaderRequestID) == "" {
		pr.Out.Header.Set(HeaderRequestID, f.requestID)
	}
	if h.tracing {
		h.prop.Inject(pr.Out.Context(), propagation.HeaderCarrier(pr.Out.Header))
	}
}

// modifyResponse records stable's status and tees its body into the
// flight's bounded capture while ReverseProxy streams it to the client.
func (h *Handler) modifyResponse(res *http.Response) error {
	f := flightFrom(res.Request.Context())
	if f == nil {
		return nil
	}
	c := &f.stable
	c.status = res.StatusCode
	if res.StatusCode == http.StatusSwitchingProtocols {
		// httputil needs the raw io.ReadWriteCloser body to splice the
		// upgraded connection; a WebSocket is never compared anyway.
		c.outcome, c.finished = code1xx, true
		return nil
	}
	c.outcome = statusOutcome(res.StatusCode)
	c.contentType = res.Header.Get("Content-Type")
	c.encoding = res.Header.Get("Content-Encoding")
	f.tee = teeBody{rc: res.Body, c: c}
	res.Body = &f.tee
	return nil
}

// proxyError is the one place that maps a failed stable call to the
// client's answer: 504 on our timeout, 413 when a streamed body overflows,
// 502 for everything else, each with a JSON body.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	f := flightFrom(r.Context())
	id := ""
	if f != nil {
		id = f.requestID
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		if f != nil {
			f.routerAnswer = true
		}
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", tooLarge.Limit), id)
		return
	}
	failure, o := classify(err)
	if f != nil {
		f.stable.failure, f.stable.outcome, f.stable.status = failure, o, 0
	}
	h.log.Debug("stable upstream failed", "request_id", id, "path", r.URL.Path, "failure", outcomeNames[o], "error", err)
	switch o {
	case codeTimeout:
		writeError(w, http.StatusGatewayTimeout, "stable upstream timed out", id)
	case codeCanceled:
		writeError(w, http.StatusBadGateway, "request cancelled before stable answered", id)
	default:
		writeError(w, http.StatusBadGateway, "stable upstream unavailable: "+outcomeNames[o], id)
	}
}

// stableTransport stamps the start of the stable call on the flight; the
// tee stamps its end, so latency covers the whole answer.
type stableTransport struct{ next http.RoundTripper }

func (t stableTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f := flightFrom(r.Context()); f != nil {
		f.stable.start = time.Now()
	}
	return t.next.RoundTrip(r)
}

// copyBuffers is ReverseProxy's BufferPool: 32 KiB arrays recycled without
// the per-Put allocation of a *[]byte.
type copyBuffers struct{}

const copyBufferSize = 32 << 10

var copyPool = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (copyBuffers) Get() []byte { return copyPool.Get().(*[copyBufferSize]byte)[:] }
func (copyBuffers) Put(b []byte) {
	if len(b) == copyBufferSize {
		copyPool.Put((*[copyBufferSize]byte)(b))
	}
}
