package compare

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// scratch holds the reusable decode buffers of one Compare call. Pooled,
// so steady-state decoding of both answers does not allocate.
type scratch struct {
	stable, canary models.Predictions
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledScratch bounds the decode buffers a pooled scratch may keep:
// enough for batches of thousands of small predictions.
const maxPooledScratch = 1 << 20

// Compare scores one exchange with the given options: failures first (see
// the Outcome constants), then both bodies decoded with the protocol's
// codec and compared per instance. It reads the exchange's byte slices
// only during the call and the Result holds no reference to them, so it
// may be called from a Recorder before the proxy reuses its buffers. Pure
// and safe for concurrent use.
func Compare(ex models.Exchange, opts Options) Result {
	var r Result
	CompareInto(ex, opts, &r)
	return r
}

// CompareInto is Compare writing into r and reusing r.Diffs' storage, for
// callers that keep one Result per worker. r must not be shared between
// concurrent calls.
func CompareInto(ex models.Exchange, opts Options, r *Result) {
	diffs := r.Diffs[:0]
	*r = Result{
		Mode:           opts.Mode,
		StableLatency:  ex.Stable.Latency,
		CanaryLatency:  ex.Canary.Latency,
		StableAnswered: ex.Stable.Failure == models.FailureNone,
		CanaryAnswered: ex.Canary.Failure == models.FailureNone,
	}
	sOK, cOK := ex.Stable.OK(), ex.Canary.OK()
	if sOK && cOK {
		r.Paired = true
		r.LatencyDelta = ex.Canary.Latency - ex.Stable.Latency
	}
	switch {
	case !sOK && !cOK:
		r.fail(OutcomeBothFailed, SideBoth, upstreamReason(ex.Stable), "stable: "+describe(ex.Stable)+"; canary: "+describe(ex.Canary))
		return
	case !sOK:
		r.fail(OutcomeStableError, SideStable, upstreamReason(ex.Stable), "stable: "+describe(ex.Stable))
		return
	}
	if ex.Protocol != models.ProtocolV1 && ex.Protocol != models.ProtocolV2 {
		r.fail(OutcomeUnparseable, SideBoth, ReasonProtocol, fmt.Sprintf("protocol %q is not compared", ex.Protocol))
		return
	}
	o := resolve(opts)
	if o.Mode == ModeExact {
		compareExact(ex, &o, r, diffs)
		return
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		// Drop references to the exchange's bodies before pooling, and
		// do not keep the buffers of one unusually large answer alive.
		sc.stable.Reset()
		sc.canary.Reset()
		if sc.stable.Retained()+sc.canary.Retained() <= maxPooledScratch {
			scratchPool.Put(sc)
		}
	}()
	sErr := models.DecodeResponse(ex.Protocol, ex.Stable, o.Output, &sc.stable)
	n := 0
	if sErr == nil {
		n = len(sc.stable.Values)
	}
	if r.canaryFailed(ex.Canary, n) {
		return
	}
	if sErr != nil {
		r.decodeFailed(SideStable, sErr, 0)
		return
	}
	err := models.DecodeResponse(ex.Protocol, ex.Canary, o.Output, &sc.canary)
	if err == nil && o.Output == "" && !bytes.Equal(sc.stable.Output, sc.canary.Output) {
		// Unconfigured V2: compare the output stable answered first, even
		// if the canary lists its outputs in another order.
		err = models.DecodeResponse(ex.Protocol, ex.Canary, string(sc.stable.Output), &sc.canary)
	}
	if err != nil {
		r.decodeFailed(SideCanary, err, n)
		return
	}
	if m := len(sc.canary.Values); m != n {
		r.fail(OutcomeSchemaMismatch, SideBoth, ReasonBatchSize, fmt.Sprintf("stable answered %d instances, canary %d", n, m))
		r.Instances = n
		return
	}
	if cap(diffs) < n {
		diffs = make([]InstanceDiff, n)
	}
	diffs = diffs[:n]
	for i := range n {
		s, c := &sc.stable.Values[i], &sc.canary.Values[i]
		reason := compareValue(s, c, &o, &diffs[i])
		if reason != ReasonNone {
			r.fail(OutcomeSchemaMismatch, SideBoth, reason,
				fmt.Sprintf("instance %d: stable %v, canary %v: not comparable in mode %q", i, describeValue(s), describeValue(c), modeName(o.Mode)))
			r.Instances = n
			return
		}
	}
	r.finish(diffs)
}

// finish sets the outcome of a compared batch from its instance diffs.
func (r *Result) finish(diffs []InstanceDiff) {
	r.Instances, r.Diffs = len(diffs), diffs
	for i := range diffs {
		if diffs[i].Agree {
			r.Agreed++
		}
	}
	r.Outcome = OutcomeDisagree
	if r.Agreed == r.Instances {
		r.Outcome = OutcomeAgree
	}
}

func (r *Result) fail(o Outcome, side Side, reason Reason, detail string) {
	r.Outcome, r.Side, r.Reason, r.Detail = o, side, reason, detail
}

// canaryFailed records a canary transport error, timeout or non-2xx answer;
// stableInstances is the trial count (stable's batch size, 0 if unknown).
func (r *Result) canaryFailed(c models.Response, stableInstances int) bool {
	if c.OK() {
		return false
	}
	o := OutcomeCanaryError
	if c.Failure == models.FailureTimeout {
		o = OutcomeCanaryTimeout
	}
	r.fail(o, SideCanary, upstreamReason(c), "canary: "+describe(c))
	r.Instances = stableInstances
	return true
}

// decodeFailed records a body that could not be decoded.
func (r *Result) decodeFailed(side Side, err error, instances int) {
	reason := decodeReason(err)
	o := OutcomeSchemaMismatch
	if models.Unparseable(err) {
		o = OutcomeUnparseable
	}
	r.fail(o, side, reason, string(side)+": "+err.Error())
	r.Instances = instances
}

func decodeReason(err error) Reason {
	switch {
	case errors.Is(err, models.ErrBinaryTensor):
		return ReasonBinaryTensor
	case errors.Is(err, models.ErrTruncated):
		return ReasonTruncated
	case errors.Is(err, models.ErrMissingOutput):
		return ReasonMissingOutput
	case errors.Is(err, models.ErrShape):
		return ReasonShape
	case errors.Is(err, models.ErrDatatype):
		return ReasonDatatype
	}
	return ReasonMalformedJSON
}

func upstreamReason(r models.Response) Reason {
	switch r.Failure {
	case models.FailureNone:
		return ReasonStatus
	case models.FailureTimeout:
		return ReasonTimeout
	case models.FailureRefused:
		return ReasonRefused
	case models.FailureReset:
		return ReasonReset
	}
	return ReasonTransport
}

func describe(r models.Response) string {
	if r.Failure != models.FailureNone {
		return string(r.Failure)
	}
	return fmt.Sprintf("HTTP %d", r.Status)
}

// describeValue names a value's kind and size, never its content.
func describeValue(v *models.Value) string {
	switch v.Kind {
	case models.KindNumbers:
		return fmt.Sprintf("%d numbers", len(v.Nums))
	case models.KindStrings:
		return fmt.Sprintf("%d strings", len(v.Strs))
	}
	return v.Kind.String()
}

func modeName(m Mode) string {
	if m == ModeAuto {
		return "auto"
	}
	return string(m)
}
