package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Duration is a time.Duration that reads "250ms" / "2s" from YAML and JSON,
// so the config file stays readable.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string ("2s") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a value such as 250ms, 2s or 1m", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"2s\" or a number of seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration in Go's notation.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the router's whole configuration. Every field has a default (see
// defaultConfig); the YAML file and the flags override it in that order.
type Config struct {
	// Mode is "inline" (the router is on the client path) or "tap" (Istio
	// mirrors copies to the router, which replays them to both models).
	Mode        string `json:"mode"`
	Listen      string `json:"listen"`
	AdminListen string `json:"adminListen"`

	Stable Upstream `json:"stable"`
	Canary Upstream `json:"canary"`

	Shadow  ShadowConfig  `json:"shadow"`
	Limits  LimitsConfig  `json:"limits"`
	Breaker BreakerConfig `json:"breaker"`
	Tap     TapConfig     `json:"tap"`
	Compare CompareConfig `json:"compare"`

	Store     StoreConfig     `json:"store"`
	Rollout   RolloutConfig   `json:"rollout"`
	Admin     AdminConfig     `json:"admin"`
	Telemetry TelemetryConfig `json:"telemetry"`
	// ShutdownDrain is how long /readyz reports not-ready before the
	// servers stop, so Kubernetes and Envoy stop sending new requests first.
	ShutdownDrain Duration `json:"shutdownDrain"`
}

// Upstream is one model Service. URL is the only place an upstream address
// comes from: nothing in a request can change it.
type Upstream struct {
	URL string `json:"url"`
	// Model, on the canary, is the model name the canary serves when it
	// differs from stable's; the shadow path rewrites it.
	Model   string   `json:"model"`
	Timeout Duration `json:"timeout"`
}

// ShadowConfig controls which requests are copied to the canary.
type ShadowConfig struct {
	Percent            float64 `json:"percent"`
	Workers            int     `json:"workers"`
	QueueSize          int     `json:"queueSize"`
	MaxBodyBytes       int64   `json:"maxBodyBytes"`
	ForwardCredentials bool    `json:"forwardCredentials"`
}

// LimitsConfig bounds what the client path accepts and captures.
type LimitsConfig struct {
	MaxBodyBytes    int64 `json:"maxBodyBytes"`
	MaxCaptureBytes int64 `json:"maxCaptureBytes"`
}

// BreakerConfig tunes the circuit breaker on the canary path.
type BreakerConfig struct {
	ConsecutiveFailures uint32   `json:"consecutiveFailures"`
	OpenFor             Duration `json:"openFor"`
	HalfOpenRequests    uint32   `json:"halfOpenRequests"`
}

// TapConfig is the budget that protects stable from replays in tap mode.
type TapConfig struct {
	MaxInFlight        int     `json:"maxInFlight"`
	MaxReplayPerSecond float64 `json:"maxReplayPerSecond"`
}

// CompareConfig picks the comparison per model; Models keys are stable's
// model names as they appear in request paths.
type CompareConfig struct {
	Window  Duration                `json:"window"`
	Default ModelCompare            `json:"default"`
	Models  map[string]ModelCompare `json:"models"`
}

// ModelCompare mirrors compare.Options in the file's vocabulary.
type ModelCompare struct {
	Mode        string   `json:"mode"`
	Output      string   `json:"output"`
	AbsTol      float64  `json:"absTol"`
	RelTol      float64  `json:"relTol"`
	TopK        int      `json:"topK"`
	NaN         string   `json:"nan"`
	IgnorePaths []string `json:"ignorePaths"`
	// MaxJS, when positive, also requires probability vectors to be within
	// this Jensen-Shannon divergence (base 2, 0..1) to agree.
	MaxJS float64 `json:"maxJS"`
	// LabelNames maps class indices to names, so an index from one model
	// can agree with a name from the other, and reports name classes.
	LabelNames []string `json:"labelNames"`
}

// AdminConfig protects the admin API.
type AdminConfig struct {
	// TokenFile holds the bearer token the API and report require. Empty:
	// no token, and control endpoints that change state stay disabled.
	TokenFile string `json:"tokenFile"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin port
	// (behind the token when one is set). Off by default: profiles reveal
	// internals and cost CPU while taken.
	Pprof bool `json:"pprof"`
}

// TelemetryConfig selects the trace exporter and the log level.
type TelemetryConfig struct {
	// Traces is "none", "stdout" or "otlp".
	Traces       string  `json:"traces"`
	OTLPEndpoint string  `json:"otlpEndpoint"`
	SampleRatio  float64 `json:"sampleRatio"`
	LogLevel     string  `json:"logLevel"`
}

func defaultConfig() Config {
	return Config{
		Mode:        "inline",
		Listen:      ":8080",
		AdminListen: ":9090",
		Stable:      Upstream{Timeout: Duration(30 * time.Second)},
		Canary:      Upstream{Timeout: Duration(5 * time.Second)},
		Shadow: ShadowConfig{
			Percent:      0,
			Workers:      64,
			QueueSize:    1024,
			MaxBodyBytes: 1 << 20,
		},
		Limits: LimitsConfig{
			MaxBodyBytes:    8 << 20,
			MaxCaptureBytes: 1 << 20,
		},
		Breaker: BreakerConfig{
			ConsecutiveFailures: 5,
			OpenFor:             Duration(30 * time.Second),
			HalfOpenRequests:    1,
		},
		Tap: TapConfig{MaxInFlight: 64, MaxReplayPerSecond: 100},
		Compare: CompareConfig{
			Window: Duration(5 * time.Minute),
		},
		Telemetry:     TelemetryConfig{Traces: "none", SampleRatio: 1, LogLevel: "info"},
		ShutdownDrain: Duration(0),
	}
}

// loadConfigFile overlays the YAML file at path onto cfg. Unknown fields are
// errors: a typo in a config key must not silently fall back to a default.
func loadConfigFile(cfg *Config, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("config: %s is not valid YAML: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// fieldError names the config field and the offending value, so the message
// alone tells the user what to fix.
type fieldError struct {
	Field string
	Value any
	Msg   string
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("config: %s: %v: %s", e.Field, e.Value, e.Msg)
}

// Validate checks the whole configuration and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, value any, msg string) {
		errs = append(errs, &fieldError{Field: field, Value: fmt.Sprintf("%q", fmt.Sprint(value)), Msg: msg})
	}
	switch c.Mode {
	case "inline", "tap":
	default:
		bad("mode", c.Mode, "must be inline or tap")
	}
	if c.Listen == "" {
		bad("listen", c.Listen, "must be an address such as :8080")
	}
	if c.AdminListen == "" {
		bad("adminListen", c.AdminListen, "must be an address such as :9090")
	}
	if c.Listen != "" && c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		bad("adminListen", c.AdminListen, "must differ from listen: the admin port is separate from the data port")
	}
	checkURL := func(field, raw string, required bool) {
		if raw == "" {
			if required {
				bad(field, raw, "is required (the model Service URL, e.g. http://model-stable.models.svc:8080)")
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(field, raw, "must be an absolute http or https URL")
			return
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad(field, raw, "must not carry a query, fragment or credentials")
		}
	}
	checkURL("stable.url", c.Stable.URL, true)
	// The canary is optional only when nothing is shadowed.
	checkURL("canary.url", c.Canary.URL, c.Shadow.Percent > 0 || c.Mode == "tap")
	if c.Stable.Timeout <= 0 {
		bad("stable.timeout", time.Duration(c.Stable.Timeout), "must be positive")
	}
	if c.Canary.Timeout <= 0 {
		bad("canary.timeout", time.Duration(c.Canary.Timeout), "must be positive")
	}
	if c.Canary.Model != "" && strings.ContainsAny(c.Canary.Model, "/?#: ") {
		bad("canary.model", c.Canary.Model, "must be a bare model name")
	}
	if c.Shadow.Percent < 0 || c.Shadow.Percent > 100 {
		bad("shadow.percent", c.Shadow.Percent, "must be between 0 and 100")
	} else if c.Shadow.Percent != float64(int(c.Shadow.Percent)) {
		bad("shadow.percent", c.Shadow.Percent, "must be a whole number")
	}
	if c.Shadow.Workers < 1 {
		bad("shadow.workers", c.Shadow.Workers, "must be at least 1")
	}
	if c.Shadow.QueueSize < 1 {
		bad("shadow.queueSize", c.Shadow.QueueSize, "must be at least 1")
	}
	if c.Limits.MaxBodyBytes < 1 {
		bad("limits.maxBodyBytes", c.Limits.MaxBodyBytes, "must be positive")
	}
	if c.Shadow.MaxBodyBytes < 1 || c.Shadow.MaxBodyBytes > c.Limits.MaxBodyBytes {
		bad("shadow.maxBodyBytes", c.Shadow.MaxBodyBytes, fmt.Sprintf("must be between 1 and limits.maxBodyBytes (%d)", c.Limits.MaxBodyBytes))
	}
	if c.Limits.MaxCaptureBytes < 1 {
		bad("limits.maxCaptureBytes", c.Limits.MaxCaptureBytes, "must be positive")
	}
	if c.Breaker.ConsecutiveFailures < 1 {
		bad("breaker.consecutiveFailures", c.Breaker.ConsecutiveFailures, "must be at least 1")
	}
	if c.Breaker.OpenFor <= 0 {
		bad("breaker.openFor", time.Duration(c.Breaker.OpenFor), "must be positive")
	}
	if c.Breaker.HalfOpenRequests < 1 {
		bad("breaker.halfOpenRequests", c.Breaker.HalfOpenRequests, "must be at least 1")
	}
	if c.Tap.MaxInFlight < 1 {
		bad("tap.maxInFlight", c.Tap.MaxInFlight, "must be at least 1")
	}
	if c.Tap.MaxReplayPerSecond <= 0 {
		bad("tap.maxReplayPerSecond", c.Tap.MaxReplayPerSecond, "must be positive")
	}
	if c.Compare.Window < Duration(10*time.Second) {
		bad("compare.window", time.Duration(c.Compare.Window), "must be at least 10s")
	}
	validateModelCompare("compare.default", c.Compare.Default, bad)
	names := make([]string, 0, len(c.Compare.Models))
	for name := range c.Compare.Models {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		validateModelCompare("compare.models."+name, c.Compare.Models[name], bad)
	}
	switch c.Telemetry.Traces {
	case "none", "stdout":
	case "otlp":
		if c.Telemetry.OTLPEndpoint == "" {
			bad("telemetry.otlpEndpoint", "", "is required when telemetry.traces is otlp (e.g. otel-collector.observability:4318)")
		}
	default:
		bad("telemetry.traces", c.Telemetry.Traces, "must be none, stdout or otlp")
	}
	if c.Telemetry.SampleRatio < 0 || c.Telemetry.SampleRatio > 1 {
		bad("telemetry.sampleRatio", c.Telemetry.SampleRatio, "must be between 0 and 1")
	}
	switch c.Telemetry.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("telemetry.logLevel", c.Telemetry.LogLevel, "must be debug, info, warn or error")
	}
	errs = append(errs, c.Rollout.validate(c.Mode)...)
	if err := c.Store.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownDrain < 0 {
		bad("shutdownDrain", time.Duration(c.ShutdownDrain), "must not be negative")
	}
	return errors.Join(errs...)
}

func validateModelCompare(prefix string, m ModelCompare, bad func(string, any, string)) {
	switch m.Mode {
	case "", "auto", "classification", "regression", "probabilities", "exact":
	default:
		bad(prefix+".mode", m.Mode, "must be classification, regression, probabilities, exact or empty for the protocol default")
	}
	if m.AbsTol < 0 {
		bad(prefix+".absTol", m.AbsTol, "must not be negative")
	}
	if m.RelTol < 0 {
		bad(prefix+".relTol", m.RelTol, "must not be negative")
	}
	if m.MaxJS < 0 || m.MaxJS > 1 {
		bad(prefix+".maxJS", m.MaxJS, "must be between 0 and 1")
	}
	if m.TopK < 0 {
		bad(prefix+".topK", m.TopK, "must not be negative")
	}
	switch m.NaN {
	case "", "equal", "disagree":
	default:
		bad(prefix+".nan", m.NaN, "must be equal or disagree")
	}
}
