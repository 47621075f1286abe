package proxy

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Tap-mode answers. Envoy discards the answer to a mirrored request, so the
// router answers at once, before any replay, and says what it did for
// whoever debugs with curl. The body is one of these fixed strings.
var (
	tapAccepted = []byte(`{"status":"accepted"}` + "\n")
	tapSkipped  [numReasons][]byte
)

func init() {
	for r := range numReasons {
		tapSkipped[r] = []byte(`{"status":"` + r.result() + `","reason":"` + reasonNames[r] + `"}` + "\n")
	}
}

// serveTap accepts one mirrored copy: it decides (sample, budget, size)
// and answers 202 immediately; the replay to stable and canary runs on the
// worker pool. Nothing about the copy is ever forwarded synchronously, so a
// slow model cannot back up Envoy's mirror.
func (h *Handler) serveTap(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.ContentLength > h.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds the limit", r.Header.Get(HeaderRequestID))
		return
	}
	proto, model, version, ok := models.ParsePath(r.URL.Path)
	switch {
	case !ok || r.Method != http.MethodPost:
		h.tapAnswer(w, reasonNotInference)
		return
	case r.Header.Get(HeaderShadow) != "":
		// A replay of ours came back (misrouted): never replay it again.
		// The -shadow Host, by contrast, is what every tap copy carries.
		h.tapAnswer(w, reasonAlreadyShadow)
		return
	case !h.sample():
		h.tapAnswer(w, reasonNotSampled)
		return
	}
	if h.tapInFlight.Add(1) > int64(h.cfg.Tap.MaxInFlight) {
		h.tapInFlight.Add(-1)
		h.tapAnswer(w, reasonTapInFlight)
		return
	}
	if h.limiter != nil && !h.limiter.Allow() {
		h.tapInFlight.Add(-1)
		h.tapAnswer(w, reasonTapRate)
		return
	}
	queued := false
	defer func() {
		if !queued {
			h.tapInFlight.Add(-1)
		}
	}()

	f := getFlight(h, start)
	defer f.release()
	f.requestID = r.Header.Get(HeaderRequestID)
	if f.requestID == "" {
		f.requestID = newRequestID()
	}
	if r.ContentLength > h.cfg.MaxShadowBodyBytes && r.ContentLength <= h.cfg.MaxBodyBytes {
		// Known too large to replay: answer before reading it.
		h.tapAnswer(w, reasonBodyTooLarge)
		return
	}
	tooLarge, err := f.readBody(r.Body, r.ContentLength, h.cfg.MaxBodyBytes)
	switch {
	case tooLarge:
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds the limit", f.requestID)
		return
	case err != nil:
		h.m.shadow[reasonBodyError].Inc()
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error(), f.requestID)
		return
	case int64(len(f.reqBuf)) > h.cfg.MaxShadowBodyBytes:
		h.tapAnswer(w, reasonBodyTooLarge)
		return
	}
	f.tap = true
	f.proto, f.model, f.version = proto, model, version
	f.path, f.rawQuery = r.URL.Path, r.URL.RawQuery
	f.contentType = r.Header.Get("Content-Type")
	f.header = r.Header.Clone()
	f.ctx = context.WithoutCancel(r.Context())
	f.parent = trace.SpanContextFromContext(r.Context())
	if !h.enqueue(f) { // counted by enqueue
		tapWrite(w, reasonQueueFull)
		return
	}
	queued = true // the worker now owns the in-flight slot
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(tapAccepted)
}

// tapAnswer counts a copy that will not be replayed and says why.
func (h *Handler) tapAnswer(w http.ResponseWriter, r reason) {
	h.m.shadow[r].Inc()
	tapWrite(w, r)
}

func tapWrite(w http.ResponseWriter, r reason) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(tapSkipped[r])
}
