// Package models holds the inference protocols shadowsplit speaks (KServe V1
// and the Open Inference Protocol V2 REST) as plain types and codecs, plus the
// Exchange value that carries one stable/canary pair from the proxy to the
// comparer. It does no I/O and imports only the standard library, so every
// other package can depend on it.
package models

import "time"

// Protocol names the inference protocol a request was recognised as.
type Protocol string

const (
	// ProtocolUnknown is any path the router does not recognise; such
	// requests are proxied to stable unchanged and never compared.
	ProtocolUnknown Protocol = ""
	// ProtocolV1 is KServe V1: POST /v1/models/{name}:predict.
	ProtocolV1 Protocol = "v1"
	// ProtocolV2 is the Open Inference Protocol V2 REST:
	// POST /v2/models/{name}[/versions/{v}]/infer.
	ProtocolV2 Protocol = "v2"
)

// Failure classifies why an upstream call produced no usable HTTP answer.
// The empty value means the call returned a response (of any status).
type Failure string

const (
	FailureNone    Failure = ""
	FailureTimeout Failure = "timeout" // our per-call deadline expired
	FailureRefused Failure = "refused" // connection refused / no listener
	FailureReset   Failure = "reset"   // connection reset or closed mid-answer
	FailureError   Failure = "error"   // any other transport error
)

// Response is one upstream's answer as captured by the proxy.
type Response struct {
	// Status is the HTTP status code, or 0 when Failure is set.
	Status int
	// ContentType is the upstream's Content-Type header.
	ContentType string
	// Body is the captured response body. It may be truncated to the
	// proxy's capture limit; Truncated says so.
	Body      []byte
	Truncated bool
	// Latency is measured from just before the request was written to the
	// upstream until its body was fully read.
	Latency time.Duration
	Failure Failure
}

// OK reports whether the upstream answered with a 2xx status.
func (r Response) OK() bool { return r.Failure == FailureNone && r.Status >= 200 && r.Status < 300 }

// Exchange is one request seen by the router together with the stable and
// canary answers to it. The proxy builds it on a shadow worker, never on the
// client's path.
//
// Ownership: the byte slices (Request, Stable.Body, Canary.Body) belong to
// the proxy and may be reused after the Recorder that received the Exchange
// returns. A consumer that keeps any of them must copy.
type Exchange struct {
	// RequestID is the request's X-Request-Id (generated if absent).
	RequestID string
	// TraceID is the W3C trace id (32 hex chars), empty without tracing.
	TraceID string
	// Protocol and Model come from the request path; Model is the stable
	// model name. CanaryModel is the name used on the canary call (it may
	// be rewritten from configuration).
	Protocol    Protocol
	Model       string
	CanaryModel string
	// Version is the V2 model version from the path, if any.
	Version string
	// Path is the request path as received (query not included).
	Path string
	// ContentType is the request's Content-Type header.
	ContentType string
	// Request is the request body as sent to both models.
	Request []byte
	// Header is the request's header as received (canonical keys). The
	// diff store keeps only the headers on its allow-list, as slice
	// values; like the byte slices, it is only valid during Record.
	Header map[string][]string
	// Stable and Canary are the two answers.
	Stable Response
	Canary Response
	// Start is when the router received the request.
	Start time.Time
}
