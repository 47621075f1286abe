package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Header names the router reads or sets.
const (
	// HeaderShadow marks a request as a shadow (or tap replay) so that no
	// router shadows it again, and so upstreams can tell it apart.
	HeaderShadow = "X-Shadowsplit-Shadow"
	// HeaderRequestID carries the request id to both upstreams; the router
	// generates one when the client sent none.
	HeaderRequestID = "X-Request-Id"
	// HeaderBinaryTensor is the V2 binary tensor extension's header; such
	// bodies are JSON followed by raw bytes and are not compared.
	HeaderBinaryTensor = "Inference-Header-Content-Length"
)

// newTransport is the shared default: one connection pool for both
// upstreams, sized for a busy sidecar-local hop. Compression is off so
// stable's bytes reach the client exactly as stable sent them (an
// Accept-Encoding the client chose is still forwarded as is).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // upstreams are cluster Services; never an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// classify maps a transport or body error to the Exchange's failure kind and
// the requests_total outcome.
func classify(err error) (models.Failure, outcome) {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return models.FailureError, codeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return models.FailureTimeout, codeTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return models.FailureRefused, codeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return models.FailureReset, codeReset
	}
	return models.FailureError, codeError
}

// errorBody is the JSON the router writes when it, not stable, answers.
type errorBody struct {
	Error     string `json:"error"`
	Status    int    `json:"status"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError is the one place that turns a router-side failure into an
// HTTP answer: always JSON, never a payload echo.
func writeError(w http.ResponseWriter, status int, msg, requestID string) {
	b, _ := json.Marshal(errorBody{Error: msg, Status: status, RequestID: requestID})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// hopHeaders are dropped from replayed requests, as httputil does for
// proxied ones (RFC 9110 section 7.6.1), plus the headers the transport
// must compute itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Expect": true,
	// Let the transport negotiate, so the captured answer is plain bytes.
	"Accept-Encoding": true,
}

// replayHeader builds the headers of a shadow or tap replay from the cloned
// request headers: hop-by-hop removed, credentials removed unless
// configured, marked as a shadow, with the request id.
func (h *Handler) replayHeader(src http.Header, requestID string) http.Header {
	dst := make(http.Header, len(src)+2)
	var named []string
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, vv := range src {
		if hopHeaders[k] || (!h.cfg.ForwardCredentials && (k == "Authorization" || k == "Cookie")) {
			continue
		}
		skip := false
		for _, n := range named {
			skip = skip || n == k
		}
		if !skip {
			dst[k] = vv
		}
	}
	dst.Set(HeaderShadow, "1")
	dst.Set(HeaderRequestID, requestID)
	return dst
}

// call performs one replay (canary, or stable in tap mode) and reads the
// answer into c, bounded by MaxCaptureBytes; the rest of a long answer is
// drained so the connection can be reused. It returns the transport or body
// error, if any.
func (h *Handler) call(req *http.Request, r role, c *capture) error {
	c.limit, c.keep = h.cfg.MaxCaptureBytes, true
	c.start = time.Now()
	res, err := h.transport.RoundTrip(req)
	if err != nil {
		c.fail(err)
		h.m.requests[r][c.outcome].Inc()
		return err
	}
	c.status = res.StatusCode
	c.contentType = res.Header.Get("Content-Type")
	c.encoding = res.Header.Get("Content-Encoding")
	tee := teeBody{rc: res.Body, c: c}
	_, err = io.Copy(io.Discard, &tee)
	_ = res.Body.Close()
	c.finish()
	if err != nil {
		h.m.requests[r][c.outcome].Inc()
		return err
	}
	c.outcome = statusOutcome(c.status)
	h.m.requests[r][c.outcome].Inc()
	h.m.duration[r].Observe(c.latency.Seconds())
	return nil
}
