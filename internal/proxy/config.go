package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/models"
	"go.opentelemetry.io/otel/trace"
)

// Mode says where the router sits relative to the client's path.
type Mode string

const (
	// ModeInline (the default) puts the router in the stable path: it
	// forwards each request to stable, answers the client with stable's
	// answer, and shadows a sample to the canary afterwards.
	ModeInline Mode = "inline"
	// ModeTap takes the router off the client path: Istio mirrors traffic to
	// it (Host "<svc>-shadow", answer dropped by Envoy), and the router
	// replays each sampled copy to stable and canary itself, within TapBudget.
	ModeTap Mode = "tap"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultWorkers            = 64
	DefaultQueueSize          = 1024
	DefaultCanaryTimeout      = 5 * time.Second
	DefaultStableTimeout      = 30 * time.Second
	DefaultMaxBodyBytes       = 8 << 20
	DefaultMaxShadowBodyBytes = 1 << 20
	DefaultMaxCaptureBytes    = 1 << 20
	DefaultBreakerFailures    = 5
	DefaultBreakerOpenTimeout = 30 * time.Second
	DefaultTapMaxInFlight     = 64
)

// Config configures a Handler. It is read once by New; changing it afterwards
// has no effect. Every zero value is usable and documented.
type Config struct {
	// Stable is the base URL of the stable model Service (scheme http or
	// https, a host, optionally a path prefix). Required. Upstreams come
	// only from here, never from the request, so the router cannot be
	// steered to another host (no SSRF).
	Stable *url.URL
	// Canary is the base URL of the canary model Service. Required when
	// ShadowPercent > 0 or Mode is ModeTap; nil disables shadowing.
	Canary *url.URL
	// CanaryModel renames the model on the canary call, for a canary that
	// serves the model under another name. "" keeps the request's name.
	CanaryModel string
	// ShadowPercent is the share (0..100) of eligible inference requests
	// that are shadowed (inline) or replayed (tap). Sampling is
	// deterministic: the n-th eligible request is picked when
	// picked*100 < n*ShadowPercent, so N requests yield exactly
	// ceil(N*ShadowPercent/100) samples (the first request is always
	// picked when ShadowPercent > 0). Eligible means a POST to an inference
	// path that is not already a shadow. 0 shadows nothing.
	ShadowPercent int
	// Workers is the number of shadow workers; 0 means DefaultWorkers. It
	// bounds concurrent canary calls (and tap replays).
	Workers int
	// QueueSize is the capacity of the shadow queue; 0 means
	// DefaultQueueSize. A sample that finds the queue full is dropped and
	// counted, never waited for.
	QueueSize int
	// CanaryTimeout bounds one canary call, headers and body; 0 means
	// DefaultCanaryTimeout. It runs on a context detached from the client's.
	CanaryTimeout time.Duration
	// StableTimeout bounds the stable call; on expiry the client gets a 504
	// JSON error. 0 means DefaultStableTimeout.
	StableTimeout time.Duration
	// MaxBodyBytes is the hard limit on a request body; beyond it the
	// client gets a 413 JSON error. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxShadowBodyBytes is the largest request body that is shadowed;
	// larger ones are served but not shadowed (counted as body_too_large).
	// 0 means min(DefaultMaxShadowBodyBytes, MaxBodyBytes).
	MaxShadowBodyBytes int64
	// MaxCaptureBytes bounds the copy kept of each upstream answer for the
	// comparison; a longer answer is still served whole to the client but
	// the Exchange marks it Truncated. 0 means DefaultMaxCaptureBytes.
	MaxCaptureBytes int64
	// ForwardCredentials sends Authorization and Cookie on shadow calls
	// (and, in tap mode, on the stable replay). false strips them, so a
	// canary never sees a user's credentials unless asked to.
	ForwardCredentials bool
	// Breaker configures the circuit breaker on the canary path.
	Breaker BreakerConfig
	// Mode is ModeInline or ModeTap; "" means ModeInline.
	Mode Mode
	// Tap bounds the extra load tap mode puts on stable. Ignored inline.
	Tap TapBudget
	// Transport carries both upstream calls. nil means a tuned
	// *http.Transport owned by the Handler (keep-alives, large idle pool,
	// compression off so stable's bytes pass through unchanged). A custom
	// *http.Transport should also set DisableCompression, or a client that
	// did not ask for gzip may get a decompressed copy of a gzip answer.
	// cmd/router may wrap it (e.g. otelhttp); it must be safe for
	// concurrent use.
	Transport http.RoundTripper
	// TracerProvider creates the client spans for stable and canary. nil
	// disables tracing (incoming trace headers are still propagated).
	TracerProvider trace.TracerProvider
	// Logger receives operational logs (never payloads). nil discards them.
	Logger *slog.Logger
}

// BreakerConfig configures the sony/gobreaker breaker that guards the canary
// path (stable is never behind a breaker: a bad canary must not change how
// stable is served). Transport errors, timeouts, resets and 5xx answers are
// failures; calls cancelled by the router's shutdown are excluded.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker; 0 means DefaultBreakerFailures.
	ConsecutiveFailures uint32
	// OpenTimeout is how long the breaker stays open before letting a
	// probe through (half-open); 0 means DefaultBreakerOpenTimeout.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes pass while half-open; 0 means 1.
	HalfOpenRequests uint32
	// Interval clears the failure counts periodically while closed; 0
	// never clears them (only a success resets consecutive failures).
	Interval time.Duration
}

// TapBudget protects stable from the replays of tap mode. A copy over budget
// is dropped and counted (tap_inflight, tap_rate), never queued.
type TapBudget struct {
	// MaxInFlight bounds copies accepted but not yet finished (queued or
	// replaying); 0 means DefaultTapMaxInFlight.
	MaxInFlight int
	// MaxReplayPerSecond bounds replays to stable with a token bucket
	// (burst = max(1, rate)); 0 means no rate limit.
	MaxReplayPerSecond float64
}

// withDefaults returns cfg with zero values replaced, or an error naming the
// first invalid field and its value.
func (cfg Config) withDefaults() (Config, error) {
	if err := checkUpstream("Stable", cfg.Stable, true); err != nil {
		return cfg, err
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeInline
	}
	if cfg.Mode != ModeInline && cfg.Mode != ModeTap {
		return cfg, fmt.Errorf("proxy config: Mode %q: want %q or %q", cfg.Mode, ModeInline, ModeTap)
	}
	if cfg.ShadowPercent < 0 || cfg.ShadowPercent > 100 {
		return cfg, fmt.Errorf("proxy config: ShadowPercent %d: want 0..100", cfg.ShadowPercent)
	}
	needCanary := cfg.ShadowPercent > 0 || cfg.Mode == ModeTap
	if err := checkUpstream("Canary", cfg.Canary, needCanary); err != nil {
		return cfg, err
	}
	if cfg.CanaryModel != "" && !validModelName(cfg.CanaryModel) {
		return cfg, fmt.Errorf("proxy config: CanaryModel %q: want a single path segment", cfg.CanaryModel)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"Workers", &cfg.Workers, DefaultWorkers}, {"QueueSize", &cfg.QueueSize, DefaultQueueSize}, {"Tap.MaxInFlight", &cfg.Tap.MaxInFlight, DefaultTapMaxInFlight}} {
		if *f.v < 0 {
			return cfg, fmt.Errorf("proxy config: %s %d: must not be negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"CanaryTimeout", &cfg.CanaryTimeout, DefaultCanaryTimeout}, {"StableTimeout", &cfg.StableTimeout, DefaultStableTimeout}, {"Breaker.OpenTimeout", &cfg.Breaker.OpenTimeout, DefaultBreakerOpenTimeout}} {
		if *f.v < 0 {
			return cfg, fmt.Errorf("proxy config: %s %s: must not be negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if cfg.Breaker.Interval < 0 {
		return cfg, fmt.Errorf("proxy config: Breaker.Interval %s: must not be negative", cfg.Breaker.Interval)
	}
	for _, f := range []struct {
		name string
		v    *int64
		def  int64
	}{{"MaxBodyBytes", &cfg.MaxBodyBytes, DefaultMaxBodyBytes}, {"MaxShadowBodyBytes", &cfg.MaxShadowBodyBytes, min(DefaultMaxShadowBodyBytes, max(cfg.MaxBodyBytes, 0))}, {"MaxCaptureBytes", &cfg.MaxCaptureBytes, DefaultMaxCaptureBytes}} {
		if *f.v < 0 {
			return cfg, fmt.Errorf("proxy config: %s %d: must not be negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if cfg.MaxShadowBodyBytes == 0 { // MaxBodyBytes was 0 when the default was computed
		cfg.MaxShadowBodyBytes = min(DefaultMaxShadowBodyBytes, cfg.MaxBodyBytes)
	}
	if cfg.MaxShadowBodyBytes > cfg.MaxBodyBytes {
		return cfg, fmt.Errorf("proxy config: MaxShadowBodyBytes %d: must not exceed MaxBodyBytes %d", cfg.MaxShadowBodyBytes, cfg.MaxBodyBytes)
	}
	if cfg.Breaker.ConsecutiveFailures == 0 {
		cfg.Breaker.ConsecutiveFailures = DefaultBreakerFailures
	}
	if cfg.Tap.MaxReplayPerSecond < 0 {
		return cfg, fmt.Errorf("proxy config: Tap.MaxReplayPerSecond %g: must not be negative", cfg.Tap.MaxReplayPerSecond)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func checkUpstream(field string, u *url.URL, required bool) error {
	if u == nil {
		if required {
			return fmt.Errorf("proxy config: %s: required", field)
		}
		return nil
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("proxy config: %s %q: scheme must be http or https", field, u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("proxy config: %s %q: host is empty", field, u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("proxy config: %s %q: credentials in the URL are not supported", field, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("proxy config: %s %q: query and fragment are not supported", field, u.Redacted())
	}
	return nil
}

func validModelName(s string) bool { return models.ValidModelName(s) }
