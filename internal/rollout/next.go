package rollout

import (
	"fmt"
	"math"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/evidence"
)

// Command is an operator's request, carried into Next by an Observation.
type Command string

const (
	CommandNone    Command = ""
	CommandPause   Command = "pause"   // keep the weights, stop deciding
	CommandResume  Command = "resume"  // continue after a pause
	CommandPromote Command = "promote" // canary to 100 now
	CommandAbort   Command = "abort"   // canary to 0 now (roll back)
)

// Commands lists the operator commands.
var Commands = []Command{CommandPause, CommandResume, CommandPromote, CommandAbort}

// Observation is everything Next knows about the world for one tick. A
// plain value; the shell fills it.
type Observation struct {
	Now time.Time
	// NewID names the rollout if State is zero (the first tick ever).
	NewID string
	// Weight is the canary weight read back from the VirtualService.
	Weight int32
	// TargetErr, when set, says the VirtualService could not be read as
	// our route (missing, hosts changed, malformed state annotation).
	TargetErr string
	// Drift, when set, says the managed weights were changed by someone
	// other than the router since its last write.
	Drift string
	// Evidence since State.StepStartedAt; nil when EvidenceErr is set.
	Evidence    *evidence.Evidence
	EvidenceErr string
	// Command is an operator command to apply on this observation.
	Command Command
}

// Action is what a Decision does.
type Action string

const (
	ActionNone     Action = "None"     // state unchanged or only counters moved
	ActionStart    Action = "Start"    // a new rollout at its first step
	ActionAdvance  Action = "Advance"  // next step
	ActionPromote  Action = "Promote"  // last step (100)
	ActionRollback Action = "Rollback" // canary to 0, terminal
	ActionHold     Action = "Hold"     // unknown: keep the weights
	ActionPause    Action = "Pause"
	ActionResume   Action = "Resume"
	ActionReject   Action = "Reject" // a command that does not apply
)

// Decision is Next's verdict with its reason.
type Decision struct {
	Action  Action `json:"action"`
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// Write says the new State (and Weight) must be written to the
	// VirtualService in one conditional update. False for decisions that
	// only change in-memory counters, and always false when the weights
	// drifted: the router never fights a human edit.
	Write  bool  `json:"write"`
	Weight int32 `json:"weight"`
}

// Next is the whole state machine: from the current State and one
// Observation to the next State and the Decision with its reason. It is
// pure (no I/O, no clock but obs.Now) and total: every input gives a
// decision. cfg must be defaulted and valid.
func Next(cfg Config, s State, obs Observation) (State, Decision) {
	if s.ID == "" {
		return start(cfg, obs)
	}
	if obs.Command != CommandNone {
		return command(cfg, s, obs)
	}
	if s.Phase.Terminal() {
		return s, Decision{Action: ActionNone, Reason: ReasonFinished, Weight: s.Weight,
			Message: fmt.Sprintf("rollout %s is %s", s.ID, s.Phase)}
	}
	switch {
	case obs.TargetErr != "":
		return hold(s, obs, ReasonTargetUnreadable, obs.TargetErr)
	case obs.Drift != "":
		return hold(s, obs, ReasonDrift, obs.Drift)
	case obs.Weight != s.Weight:
		return hold(s, obs, ReasonDrift, fmt.Sprintf("canary weight is %d, step %d wrote %d: restore it, or promote/abort", obs.Weight, s.Step, s.Weight))
	}
	if s.Phase == PhasePaused {
		return s, Decision{Action: ActionNone, Reason: ReasonPaused, Weight: s.Weight, Message: "paused by an operator"}
	}
	return judge(cfg, s, obs)
}

func start(cfg Config, obs Observation) (State, Decision) {
	s := State{ID: obs.NewID, Step: 0, Weight: cfg.Plan[0], StepStartedAt: obs.Now}
	s.Phase = phaseOf(cfg, 0)
	msg := fmt.Sprintf("rollout %s started at step 0 (canary %d%%), plan %v", s.ID, s.Weight, cfg.Plan)
	if obs.TargetErr != "" || obs.Drift != "" {
		// Do not claim a VirtualService we cannot read or that someone
		// else is changing; retry on the next tick.
		return State{}, Decision{Action: ActionHold, Reason: ReasonTargetUnreadable, Message: obs.TargetErr + obs.Drift}
	}
	return transition(s, obs.Now, ActionStart, ReasonStarted, msg)
}

func phaseOf(cfg Config, step int) Phase {
	if cfg.Plan[step] == 0 {
		return PhaseShadowing
	}
	return PhaseProgressing
}

// transition finishes a state change: reason, history, write decision.
func transition(next State, now time.Time, a Action, r Reason, msg string) (State, Decision) {
	next.Reason, next.Message = r, msg
	next.Transitions++
	next.History = appendHistory(next.History, Record{At: now, To: next.Phase, Step: next.Step, Weight: next.Weight, Reason: r, Message: msg})
	return next, Decision{Action: a, Reason: r, Message: msg, Write: true, Weight: next.Weight}
}

func appendHistory(h []Record, r Record) []Record {
	if n := len(h); n > 0 {
		r.From = h[n-1].To
	}
	out := make([]Record, 0, historyLen)
	if len(h) >= historyLen {
		h = h[len(h)-historyLen+1:]
	}
	out = append(out, h...)
	return append(out, r)
}

// hold keeps the weights because something is unknown about the target.
// It never writes: a write could overwrite what someone else did.
func hold(s State, _ Observation, r Reason, msg string) (State, Decision) {
	next := s
	if next.Phase != PhasePaused {
		next.Phase = PhaseHolding
	}
	next.Reason, next.Message = r, msg
	return next, Decision{Action: ActionHold, Reason: r, Message: msg, Weight: s.Weight}
}

func command(cfg Config, s State, obs Observation) (State, Decision) {
	reject := func(msg string) (State, Decision) {
		return s, Decision{Action: ActionReject, Reason: ReasonRejected, Weight: s.Weight, Message: msg}
	}
	if s.Phase.Terminal() {
		return reject(fmt.Sprintf("%s: rollout %s is already %s", obs.Command, s.ID, s.Phase))
	}
	if obs.TargetErr != "" {
		return reject(fmt.Sprintf("%s: %s", obs.Command, obs.TargetErr))
	}
	if obs.Drift != "" && (obs.Command == CommandPause || obs.Command == CommandResume) {
		// Pausing or resuming would write the state over someone else's
		// weights; promote and abort are the explicit ways to take over.
		return reject(fmt.Sprintf("%s: the VirtualService was edited by someone else (%s): restore the weights, or promote or abort to take them over", obs.Command, obs.Drift))
	}
	next := s
	next.FailedChecks, next.LatencyFailures = 0, 0
	switch obs.Command {
	case CommandPause:
		if s.Phase == PhasePaused {
			return reject("pause: already paused")
		}
		next.Phase = PhasePaused
		return transition(next, obs.Now, ActionPause, ReasonPaused, fmt.Sprintf("paused at step %d (canary %d%%)", s.Step, s.Weight))
	case CommandResume:
		if s.Phase != PhasePaused {
			return reject(fmt.Sprintf("resume: not paused (%s)", s.Phase))
		}
		next.Phase = phaseOf(cfg, s.Step)
		return transition(next, obs.Now, ActionResume, ReasonResumed, fmt.Sprintf("resumed at step %d (canary %d%%)", s.Step, s.Weight))
	case CommandPromote:
		next.Phase, next.Step, next.Weight, next.StepStartedAt = PhasePromoted, len(cfg.Plan)-1, 100, obs.Now
		return transition(next, obs.Now, ActionPromote, ReasonOperatorPromote, fmt.Sprintf("promoted by an operator from step %d (canary %d%%)", s.Step, obs.Weight))
	case CommandAbort:
		next.Phase, next.Weight, next.StepStartedAt = PhaseRolledBack, 0, obs.Now
		return transition(next, obs.Now, ActionRollback, ReasonOperatorAbort, fmt.Sprintf("aborted by an operator at step %d (canary %d%%)", s.Step, obs.Weight))
	}
	return reject(fmt.Sprintf("unknown command %q", obs.Command))
}

// unknown counts a check that could not judge; after MaxFailedChecks in a
// row it rolls back, otherwise it holds. Holding here may write (the
// weights are ours), so the phase is visible on the VirtualService.
func unknown(cfg Config, s State, obs Observation, r Reason, msg string) (State, Decision) {
	next := s
	next.FailedChecks++
	if next.FailedChecks >= cfg.Gates.MaxFailedChecks {
		return rollback(next, obs, ReasonFailedChecks, fmt.Sprintf("%d consecutive checks could not judge the canary; last: %s", next.FailedChecks, msg))
	}
	next.Phase = PhaseHolding
	next.Reason, next.Message = r, fmt.Sprintf("%s (check %d of %d before rollback)", msg, next.FailedChecks, cfg.Gates.MaxFailedChecks)
	if s.Phase != PhaseHolding {
		next.Transitions++
		next.History = appendHistory(next.History, Record{At: obs.Now, To: next.Phase, Step: next.Step, Weight: next.Weight, Reason: r, Message: next.Message})
	}
	return next, Decision{Action: ActionHold, Reason: r, Message: next.Message, Weight: s.Weight, Write: !SameMaterial(s, next)}
}

func rollback(s State, obs Observation, r Reason, msg string) (State, Decision) {
	s.Phase, s.Weight, s.StepStartedAt = PhaseRolledBack, 0, obs.Now
	return transition(s, obs.Now, ActionRollback, r, msg)
}

// judge applies the gates to the evidence of the current step.
func judge(cfg Config, s State, obs Observation) (State, Decision) {
	g := cfg.Gates
	if obs.EvidenceErr != "" || obs.Evidence == nil {
		return unknown(cfg, s, obs, ReasonEvidenceFailed, "evidence: "+obs.EvidenceErr)
	}
	ev := *obs.Evidence
	if ev.Exchanges <= 0 {
		// Right after a step starts, no data is expected (scrapes and
		// traffic lag): it only counts as unknown once MinDwell passed.
		// Either way nothing can advance without data.
		if obs.Now.Sub(s.StepStartedAt) < g.MinDwell {
			next := s
			next.Phase = phaseOf(cfg, s.Step)
			next.Reason, next.Message = ReasonCollecting, fmt.Sprintf("step %d (canary %d%%): no comparisons yet", s.Step, s.Weight)
			return next, Decision{Action: ActionNone, Reason: ReasonCollecting, Message: next.Message, Weight: s.Weight, Write: !SameMaterial(s, next)}
		}
		return unknown(cfg, s, obs, ReasonNoData, fmt.Sprintf("no comparisons since %s", s.StepStartedAt.UTC().Format(time.RFC3339)))
	}
	if rate := float64(ev.StableFailures) / float64(ev.Exchanges); rate > g.MaxStableErrorRate {
		return unknown(cfg, s, obs, ReasonStableFailing, fmt.Sprintf("stable failed %d of %d exchanges (%.2f%% > %.2f%%): the canary cannot be judged",
			ev.StableFailures, ev.Exchanges, 100*rate, 100*g.MaxStableErrorRate))
	}
	next := s
	next.FailedChecks = 0
	alphaR := cfg.rollbackAlphaPerTest()

	// Canary errors: roll back once the rate is shown above the maximum.
	if n := ev.CanaryErrorDenominator(); n > 0 {
		if la := mixtureLogLR(n, ev.CanaryFailures, g.MaxCanaryErrorRate, false); la >= -math.Log(alphaR) {
			return rollback(next, obs, ReasonCanaryErrors, fmt.Sprintf("canary failed %d of %d exchanges (%.2f%%), shown above %.2f%% (log LR %.1f >= %.1f)",
				ev.CanaryFailures, n, 100*float64(ev.CanaryFailures)/float64(n), 100*g.MaxCanaryErrorRate, la, -math.Log(alphaR)))
		}
	}

	// Agreement, against the threshold (plus the model's own noise).
	p0Promote, p0Rollback, noiseNote := thresholds(g, ev.Noise)
	dis := ev.Pairs - ev.Agreed
	agreeOK := false
	var lb float64
	if ev.Pairs > 0 {
		la := mixtureLogLR(ev.Pairs, dis, p0Rollback, false)
		lb = mixtureLogLR(ev.Pairs, dis, p0Promote, true)
		if la >= -math.Log(alphaR) {
			return rollback(next, obs, ReasonAgreementLow, fmt.Sprintf("agreement %.4f over %d pairs is shown below %.4f%s (always-valid test, log LR %.1f >= %.1f)",
				float64(ev.Agreed)/float64(ev.Pairs), ev.Pairs, 1-p0Rollback, noiseNote, la, -math.Log(alphaR)))
		}
		agreeOK = lb >= -math.Log(g.PromoteAlpha)
	}

	// Latency: consecutive failures roll back; unknown keeps the count.
	lat, latMsg := latencyCheck(g, ev.Latency)
	switch lat {
	case gateFail:
		next.LatencyFailures++
		if next.LatencyFailures >= g.LatencyFailTicks {
			return rollback(next, obs, ReasonLatency, fmt.Sprintf("%s, %d checks in a row", latMsg, next.LatencyFailures))
		}
	case gatePass:
		next.LatencyFailures = 0
	}

	dwell := obs.Now.Sub(s.StepStartedAt)
	agreement := 0.0
	if ev.Pairs > 0 {
		agreement = float64(ev.Agreed) / float64(ev.Pairs)
	}
	status := fmt.Sprintf("step %d (canary %d%%): %d pairs, agreement %.4f (threshold %.4f%s, promote log LR %.1f of %.1f), %s, dwell %s of %s",
		s.Step, s.Weight, ev.Pairs, agreement, 1-p0Promote, noiseNote, lb, -math.Log(g.PromoteAlpha), latMsg, dwell.Round(time.Second), g.MinDwell)
	if agreeOK && lat == gatePass && ev.Pairs >= g.MinPairs && dwell >= g.MinDwell {
		return advance(cfg, next, obs, status)
	}
	if g.MaxDwell > 0 && dwell >= g.MaxDwell {
		return rollback(next, obs, ReasonInconclusive, "not shown safe within maxDwell "+g.MaxDwell.String()+": "+status)
	}
	next.Phase = phaseOf(cfg, s.Step)
	next.Reason, next.Message = ReasonCollecting, status
	if s.Phase != next.Phase {
		next.Transitions++
		next.History = appendHistory(next.History, Record{At: obs.Now, To: next.Phase, Step: next.Step, Weight: next.Weight, Reason: ReasonCollecting, Message: status})
	}
	return next, Decision{Action: ActionNone, Reason: ReasonCollecting, Message: status, Weight: s.Weight, Write: !SameMaterial(s, next)}
}

func advance(cfg Config, s State, obs Observation, status string) (State, Decision) {
	s.Step++
	s.Weight = cfg.Plan[s.Step]
	s.StepStartedAt = obs.Now
	s.LatencyFailures, s.FailedChecks = 0, 0
	if s.Step == len(cfg.Plan)-1 {
		s.Phase = PhasePromoted
		return transition(s, obs.Now, ActionPromote, ReasonPromoted, "promoted: "+status)
	}
	s.Phase = phaseOf(cfg, s.Step)
	return transition(s, obs.Now, ActionAdvance, ReasonGatesPassed, fmt.Sprintf("advanced to step %d (canary %d%%): %s", s.Step, s.Weight, status))
}

// thresholds returns the disagreement rates the promote and rollback tests
// use. With a noise baseline the canary is allowed the model's own
// disagreement on top: the promote test takes the noise's lower 95% bound
// and the rollback test its upper bound, each the cautious side.
func thresholds(g Gates, n *evidence.Noise) (promote, rollback float64, note string) {
	p0 := 1 - g.AgreementThreshold
	if !g.NoiseBaseline || n == nil || n.Pairs <= 0 {
		return p0, p0, ""
	}
	// Wilson on the agreement of the noise sample; its bounds flip.
	lo, hi := compare.Wilson(n.Pairs-n.Disagreed, n.Pairs, compare.Z95)
	nLo, nHi := 1-hi, 1-lo
	cap1 := func(v float64) float64 { return math.Min(v, 0.999999) }
	return cap1(p0 + nLo), cap1(p0 + nHi), fmt.Sprintf(" after noise %.4f..%.4f", nLo, nHi)
}

type gateResult int

const (
	gateUnknown gateResult = iota
	gatePass
	gateFail
)

// latencyCheck compares the canary's p99 (and the paired delta's) with
// stable's.
func latencyCheck(g Gates, l *evidence.Latency) (gateResult, string) {
	if l == nil || l.Samples < g.MinLatencySamples {
		n := int64(0)
		if l != nil {
			n = l.Samples
		}
		return gateUnknown, fmt.Sprintf("latency undecided (%d of %d canary samples)", n, g.MinLatencySamples)
	}
	maxP99 := time.Duration(g.LatencyP99Ratio*float64(l.StableP99)) + g.LatencySlack
	if l.CanaryP99 > maxP99 {
		return gateFail, fmt.Sprintf("canary p99 %s > %.2f x stable p99 %s + %s", l.CanaryP99, g.LatencyP99Ratio, l.StableP99, g.LatencySlack)
	}
	if l.HasDelta {
		maxDelta := time.Duration((g.LatencyP99Ratio-1)*float64(l.StableP99)) + g.LatencySlack
		if l.DeltaP99 > maxDelta {
			return gateFail, fmt.Sprintf("paired delta p99 %s > %s", l.DeltaP99, maxDelta)
		}
	}
	return gatePass, fmt.Sprintf("latency ok (canary p99 %s, stable p99 %s)", l.CanaryP99, l.StableP99)
}
