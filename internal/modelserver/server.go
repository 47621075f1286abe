// Package modelserver serves a demomodel.Model over HTTP the way a KServe
// model server does: KServe V1 (/v1/models/{m}:predict) and the Open
// Inference Protocol V2 REST (/v2/models/{m}[/versions/{v}]/infer, plus the
// health and metadata endpoints). It is the upstream the demo and the
// benchmarks put behind the router, and the embedded stand-in for a real
// model server in tests; it is deliberately a plain net/http handler so it
// starts anywhere an httptest.Server does.
//
// Errors are JSON bodies {"error": "..."} with 400 (bad request), 404
// (unknown path or model), 405, 413 (body too large), or 500 (injected
// failure), as KServe servers answer.
package modelserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

// V1Output selects what a V1 prediction is.
type V1Output string

const (
	// V1Probabilities answers each instance with its probability vector.
	V1Probabilities V1Output = "probabilities"
	// V1Label answers each instance with its class index (an integer).
	V1Label V1Output = "label"
)

// DefaultModelName is the model name served when Config.ModelName is empty.
const DefaultModelName = "demo"

// ModelVersion is the only V2 model version served.
const ModelVersion = "1"

// Config configures a Handler. Zero values are documented per field.
type Config struct {
	// Model is the model to serve. Required.
	Model *demomodel.Model
	// ModelName is the name in the paths; "" means DefaultModelName.
	// Requests for any other name get 404.
	ModelName string
	// Delay is added before every predict/infer answer (not health or
	// metadata), to simulate a slower model; 0 means none. The delay ends
	// early if the client goes away.
	Delay time.Duration
	// FailRate is the exact share of predict/infer requests answered with
	// 500, spread evenly (deterministic, not random); 0 means none, 1 all.
	FailRate float64
	// V1Output selects V1 predictions; "" means V1Probabilities.
	V1Output V1Output
	// MaxBodyBytes caps request bodies (413 beyond); 0 means 4 MiB.
	MaxBodyBytes int64
	// Logger receives one line per failed request; nil means none.
	Logger *slog.Logger
}

// Handler is the model server. It is safe for concurrent use; ServeHTTP
// blocks only for Config.Delay.
type Handler struct {
	cfg      Config
	requests atomic.Uint64 // predict/infer calls, for FailRate
}

var _ http.Handler = (*Handler)(nil)

// NewHandler validates cfg and returns the handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Model == nil {
		return nil, errors.New("modelserver: config Model is nil: load one with demomodel.Load")
	}
	if cfg.ModelName == "" {
		cfg.ModelName = DefaultModelName
	}
	if strings.ContainsAny(cfg.ModelName, "/:") {
		return nil, fmt.Errorf("modelserver: config ModelName %q: must not contain '/' or ':'", cfg.ModelName)
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 || math.IsNaN(cfg.FailRate) {
		return nil, fmt.Errorf("modelserver: config FailRate %v: want a value in [0, 1]", cfg.FailRate)
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("modelserver: config Delay %v: must not be negative", cfg.Delay)
	}
	switch cfg.V1Output {
	case "":
		cfg.V1Output = V1Probabilities
	case V1Probabilities, V1Label:
	default:
		return nil, fmt.Errorf("modelserver: config V1Output %q: want %q or %q", cfg.V1Output, V1Probabilities, V1Label)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}, nil
}

// ServeHTTP routes by hand: the V1 verb follows a colon inside the last
// segment ("{name}:predict"), which http.ServeMux patterns cannot express.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2/health/live" || p == "/v2/health/ready":
		if !allow(w, r, http.MethodGet) {
			return
		}
		key := strings.TrimPrefix(p, "/v2/health/")
		writeJSON(w, http.StatusOK, map[string]bool{key: true})
	case p == "/v2" || p == "/v2/":
		if !allow(w, r, http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"name": "shadowsplit-demo-modelserver", "version": "1", "extensions": []string{},
		})
	case strings.HasPrefix(p, "/v2/models/"):
		h.serveV2Model(w, r, strings.TrimPrefix(p, "/v2/models/"))
	case strings.HasPrefix(p, "/v1/models/"):
		h.serveV1Model(w, r, strings.TrimPrefix(p, "/v1/models/"))
	default:
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("path %q: not served (use /v1/models/%s:predict or /v2/models/%s/infer)", p, h.cfg.ModelName, h.cfg.ModelName))
	}
}

func (h *Handler) serveV1Model(w http.ResponseWriter, r *http.Request, rest string) {
	name, verb, hasVerb := strings.Cut(rest, ":")
	if name != h.cfg.ModelName {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("model %q not found (this server serves %q)", name, h.cfg.ModelName))
		return
	}
	switch {
	case !hasVerb:
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
		}
	case verb == "predict":
		if allow(w, r, http.MethodPost) {
			h.predictV1(w, r)
		}
	default:
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("V1 verb %q: only :predict is served", verb))
	}
}

func (h *Handler) serveV2Model(w http.ResponseWriter, r *http.Request, rest string) {
	segs := strings.Split(rest, "/")
	if segs[0] != h.cfg.ModelName {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("model %q not found (this server serves %q)", segs[0], h.cfg.ModelName))
		return
	}
	segs = segs[1:]
	if len(segs) >= 2 && segs[0] == "versions" {
		if segs[1] != ModelVersion {
			h.fail(w, r, http.StatusNotFound, fmt.Errorf("model %q version %q not found (served: %q)", h.cfg.ModelName, segs[1], ModelVersion))
			return
		}
		segs = segs[2:]
	}
	switch {
	case len(segs) == 0 || (len(segs) == 1 && segs[0] == ""):
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, h.v2Metadata())
		}
	case len(segs) == 1 && segs[0] == "ready":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string]any{"name": h.cfg.ModelName, "ready": true})
		}
	case len(segs) == 1 && segs[0] == "infer":
		if allow(w, r, http.MethodPost) {
			h.inferV2(w, r)
		}
	default:
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("path %q: not a V2 model endpoint", r.URL.Path))
	}
}

// begin applies the simulated delay and failure rate and reads the body. It
// reports false when it has already answered.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if h.cfg.Delay > 0 {
		t := time.NewTimer(h.cfg.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, false // client gone; nobody reads an answer
		}
	}
	if h.cfg.FailRate > 0 {
		// Request n fails when the running quota floor(n*rate) steps up:
		// an exact, evenly spread share, reproducible in tests.
		n := h.requests.Add(1)
		if math.Floor(float64(n)*h.cfg.FailRate) > math.Floor(float64(n-1)*h.cfg.FailRate) {
			h.fail(w, r, http.StatusInternalServerError, errors.New("injected failure (--fail-rate)"))
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", tooBig.Limit))
		} else {
			h.fail(w, r, http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		}
		return nil, false
	}
	return body, true
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", method)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s not allowed on %s (use %s)", r.Method, r.URL.Path, method)})
	return false
}

type errorBody struct {
	Error string `json:"error"`
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request failed",
		slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("error", err.Error()))
	writeJSON(w, status, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
