package compare

import "time"

// Outcome is the verdict on one exchange. Only OutcomeAgree is agreement;
// every failure outcome counts against it (see Result.Instances).
type Outcome string

const (
	// OutcomeAgree: both answered, and every instance agrees.
	OutcomeAgree Outcome = "agree"
	// OutcomeDisagree: both answered comparably, and at least one instance
	// disagrees.
	OutcomeDisagree Outcome = "disagree"
	// OutcomeSchemaMismatch: both answered readable bodies that cannot be
	// compared: a missing output, shape/datatype errors, different batch
	// sizes, different kinds of prediction, vectors of different lengths.
	OutcomeSchemaMismatch Outcome = "schema_mismatch"
	// OutcomeStableError: stable failed (transport error or non-2xx) and
	// the canary did not.
	OutcomeStableError Outcome = "stable_error"
	// OutcomeCanaryError: stable answered 2xx, the canary failed (non-2xx,
	// refused, reset, transport error).
	OutcomeCanaryError Outcome = "canary_error"
	// OutcomeCanaryTimeout: stable answered 2xx, the canary hit the
	// shadow deadline.
	OutcomeCanaryTimeout Outcome = "canary_timeout"
	// OutcomeBothFailed: neither answered 2xx.
	OutcomeBothFailed Outcome = "both_failed"
	// OutcomeUnparseable: a 2xx body could not be read (malformed JSON,
	// binary tensor extension, truncated capture, unknown protocol).
	OutcomeUnparseable Outcome = "unparseable"
)

// Outcomes lists every Outcome, in a stable order (for metrics and reports).
var Outcomes = []Outcome{
	OutcomeAgree, OutcomeDisagree, OutcomeSchemaMismatch, OutcomeStableError,
	OutcomeCanaryError, OutcomeCanaryTimeout, OutcomeBothFailed, OutcomeUnparseable,
}

func (o Outcome) index() int {
	for i, x := range Outcomes {
		if x == o {
			return i
		}
	}
	return -1
}

// Side says which answer a failure outcome is about.
type Side string

const (
	SideNone   Side = ""
	SideStable Side = "stable"
	SideCanary Side = "canary"
	SideBoth   Side = "both"
)

// Reason refines a non-agree Outcome. The set is small and fixed, fit for
// a metric label.
type Reason string

const (
	ReasonNone          Reason = ""
	ReasonStatus        Reason = "status"         // non-2xx HTTP status
	ReasonTimeout       Reason = "timeout"        // deadline expired
	ReasonRefused       Reason = "refused"        // connection refused
	ReasonReset         Reason = "reset"          // connection reset
	ReasonTransport     Reason = "transport"      // other transport error
	ReasonMalformedJSON Reason = "malformed_json" // body is not the protocol's JSON
	ReasonBinaryTensor  Reason = "binary_tensor"  // binary tensor extension
	ReasonTruncated     Reason = "truncated"      // body over the capture limit
	ReasonProtocol      Reason = "protocol"       // exchange of an unknown protocol
	ReasonMissingOutput Reason = "missing_output" // no predictions / configured output
	ReasonShape         Reason = "shape"          // V2 shape invalid or not matching data
	ReasonDatatype      Reason = "datatype"       // V2 datatype unknown or not matching data
	ReasonBatchSize     Reason = "batch_size"     // different number of instances
	ReasonKind          Reason = "kind"           // different kinds of prediction, or a kind the mode cannot compare
	ReasonLength        Reason = "length"         // vectors of different lengths
)

// Reasons lists every non-empty Reason, in a stable order (for metrics
// that resolve their label children once).
var Reasons = []Reason{
	ReasonStatus, ReasonTimeout, ReasonRefused, ReasonReset, ReasonTransport,
	ReasonMalformedJSON, ReasonBinaryTensor, ReasonTruncated, ReasonProtocol,
	ReasonMissingOutput, ReasonShape, ReasonDatatype, ReasonBatchSize, ReasonKind, ReasonLength,
}

// Label is a class label. Index is the class index (an integer label, an
// argmax, a Triton class index), or -1 when the label is only a name. Name
// is a string label, a Triton label, or Options.LabelNames[Index]; it may
// be empty.
type Label struct {
	Index int64
	Name  string
}

// InstanceDiff is the comparison of one instance of the batch.
type InstanceDiff struct {
	// Agree is the verdict for this instance.
	Agree bool
	// Mode is the mode applied to this instance (ModeAuto resolved).
	Mode Mode
	// HasLabels says Stable and Canary are set (classification and
	// probabilities).
	HasLabels      bool
	Stable, Canary Label
	// MaxAbsDiff is the largest absolute element difference (regression,
	// and probabilities after normalisation); NaN if a NaN was involved.
	MaxAbsDiff float64
	// JS is the Jensen-Shannon divergence (base 2, in [0,1]) and
	// TopKOverlap the fraction of shared top-k classes (probabilities
	// only; both NaN otherwise, and JS NaN when a NaN was involved).
	JS          float64
	TopKOverlap float64
}

// Result is the comparison of one Exchange.
type Result struct {
	Outcome Outcome
	// Side and Reason say which answer failed and why, for every outcome
	// but agree and disagree.
	Side   Side
	Reason Reason
	// Detail is a human-readable explanation for failures (the decode
	// error, the status code); it never quotes payload values.
	Detail string
	// Mode is the configured mode (ModeAuto when unconfigured).
	Mode Mode
	// Instances is the number of trials this exchange contributes to the
	// agreement rate, and Agreed how many of them agreed. Whenever stable
	// answered a usable batch (2xx, decodable), Instances is its batch
	// size, whatever the canary did: a canary error, timeout, unreadable
	// or mismatched answer counts as that many disagreements. When stable
	// failed or was unreadable the exchange says nothing about the canary
	// and Instances is 0.
	Instances int
	Agreed    int
	// Diffs holds one entry per instance for agree and disagree outcomes
	// (nil otherwise).
	Diffs []InstanceDiff
	// Latencies as measured by the proxy. StableAnswered/CanaryAnswered
	// say whether that side returned an HTTP response (any status);
	// LatencyDelta = CanaryLatency - StableLatency is meaningful when
	// Paired, i.e. when both answered 2xx.
	StableLatency, CanaryLatency, LatencyDelta time.Duration
	StableAnswered, CanaryAnswered, Paired     bool
}
