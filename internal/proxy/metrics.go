package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// role indexes the two upstreams in metric arrays.
type role int

const (
	roleStable role = iota
	roleCanary
	numRoles
)

var roleNames = [numRoles]string{"stable", "canary"}

// outcome is the bounded "code" label of shadowsplit_requests_total: the
// status class of an answer, or why there was none.
type outcome int

const (
	code1xx outcome = iota
	code2xx
	code3xx
	code4xx
	code5xx
	codeTimeout
	codeRefused
	codeReset
	codeError
	codeCanceled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"1xx", "2xx", "3xx", "4xx", "5xx", "timeout", "refused", "reset", "error", "canceled"}

func statusOutcome(status int) outcome {
	switch {
	case status < 200:
		return code1xx
	case status < 300:
		return code2xx
	case status < 400:
		return code3xx
	case status < 500:
		return code4xx
	}
	return code5xx
}

// reason is the bounded "reason" label of shadowsplit_shadow_total. Each
// reason belongs to exactly one result, so the pair is one resolved child.
type reason int

const (
	reasonSent          reason = iota // result="sent": the canary was called
	reasonNotSampled                  // not picked by ShadowPercent
	reasonNotInference                // not POST to an inference path
	reasonAlreadyShadow               // X-Shadowsplit-Shadow set or Host ends in -shadow (inline)
	reasonBodyTooLarge                // body over MaxShadowBodyBytes
	reasonContentType                 // request Content-Type not JSON
	reasonBinaryTensor                // V2 binary tensor extension
	reasonMalformedJSON               // request body is not valid JSON
	reasonBodyError                   // the client's body could not be read (the client got a 400)
	reasonBreakerOpen                 // canary breaker open (or half-open and busy)
	reasonStableFailed                // stable gave no answer (down, timeout, reset, client gone)
	reasonQueueFull                   // shadow queue full
	reasonTapInFlight                 // tap budget: too many copies in flight
	reasonTapRate                     // tap budget: replay rate exceeded
	reasonShutdown                    // Close gave up on the job
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "not_sampled", "not_inference", "already_shadow", "body_too_large", "content_type",
	"binary_tensor", "malformed_json", "body_error", "breaker_open", "stable_failed", "queue_full",
	"tap_inflight", "tap_rate", "shutdown",
}

func (r reason) result() string {
	switch r {
	case reasonSent:
		return "sent"
	case reasonQueueFull, reasonTapInFlight, reasonTapRate, reasonShutdown:
		return "dropped"
	}
	return "skipped"
}

// metrics holds every child resolved once at construction, so the hot path
// only increments (no label hashing, no map lookups).
type metrics struct {
	requests [numRoles][numOutcomes]prometheus.Counter
	duration [numRoles]prometheus.Observer
	shadow   [numReasons]prometheus.Counter
}

// newMetrics creates and registers the proxy's collectors on reg (nil: not
// registered). queueDepth and breakerState are read at scrape time.
//
// Metrics (all prefixed shadowsplit_, durations in seconds):
//
//   - shadowsplit_requests_total{role="stable|canary",code}: upstream calls
//     by outcome; code is the status class ("2xx".."5xx", "1xx") or, when
//     there was no answer, "timeout", "refused", "reset", "error" or
//     "canceled" (the client went away). Router-made answers (413) are not
//     upstream calls and are not counted here.
//   - shadowsplit_upstream_duration_seconds{role}: histogram of upstream
//     latency, from just before the request is written until the answer's
//     body is fully read; only calls that returned an answer.
//   - shadowsplit_shadow_total{result="sent|skipped|dropped",reason}: what
//     happened to each inference request's shadow. result="sent" has
//     reason="none"; "skipped" means deliberately not compared
//     (not_sampled, not_inference, already_shadow, body_too_large,
//     content_type, binary_tensor, malformed_json, body_error, breaker_open,
//     stable_failed); "dropped" means lost to a bound (queue_full,
//     tap_inflight, tap_rate — the tap budget drops — and shutdown).
//   - shadowsplit_shadow_queue_depth: jobs waiting in the shadow queue.
//   - shadowsplit_breaker_state: canary breaker, 0 closed, 1 half-open, 2 open.
func newMetrics(reg prometheus.Registerer, queueDepth, breakerState func() float64) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowsplit_requests_total",
		Help: "Upstream calls by role (stable, canary) and outcome (status class, or timeout/refused/reset/error/canceled).",
	}, []string{"role", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shadowsplit_upstream_duration_seconds",
		Help:    "Upstream latency from request write to the end of the answer's body, by role.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"role"})
	shadow := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowsplit_shadow_total",
		Help: "Shadow outcome of each inference request: sent, skipped (with reason) or dropped (with reason).",
	}, []string{"result", "reason"})
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowsplit_shadow_queue_depth",
		Help: "Shadow jobs waiting in the bounded queue.",
	}, queueDepth)
	state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowsplit_breaker_state",
		Help: "Canary circuit breaker state: 0 closed, 1 half-open, 2 open.",
	}, breakerState)

	m := &metrics{}
	for r := range numRoles {
		for o := range numOutcomes {
			m.requests[r][o] = requests.WithLabelValues(roleNames[r], outcomeNames[o])
		}
		m.duration[r] = duration.WithLabelValues(roleNames[r])
	}
	for r := range numReasons {
		m.shadow[r] = shadow.WithLabelValues(r.result(), reasonNames[r])
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{requests, duration, shadow, depth, state} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, fmt.Errorf("proxy metrics: %w (one Handler per registry)", err)
				}
				return nil, fmt.Errorf("proxy metrics: %w", err)
			}
		}
	}
	return m, nil
}
