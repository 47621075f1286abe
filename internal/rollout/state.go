package rollout

import (
	"encoding/json"
	"fmt"
	"time"
)

// AnnotationState holds the JSON State on the managed VirtualService.
const AnnotationState = "shadowsplit.io/rollout"

// Phase is where a rollout is.
type Phase string

const (
	// PhaseShadowing: the canary takes no live traffic (a 0% step); the
	// router shadows it and evidence accumulates.
	PhaseShadowing Phase = "Shadowing"
	// PhaseProgressing: the canary takes the live share of the current
	// step while evidence accumulates for the next.
	PhaseProgressing Phase = "Progressing"
	// PhaseHolding: something needed to judge is unknown (no data, a failed
	// evidence query, a failing stable, weights changed by someone else).
	// The weights stay; nothing advances. Unknown is never healthy.
	PhaseHolding Phase = "Holding"
	// PhasePaused: an operator paused the rollout; weights stay until resume.
	PhasePaused Phase = "Paused"
	// PhasePromoted: terminal; the canary takes 100%.
	PhasePromoted Phase = "Promoted"
	// PhaseRolledBack: terminal; the canary takes 0%.
	PhaseRolledBack Phase = "RolledBack"
)

// Phases lists every Phase (for the phase metric).
var Phases = []Phase{PhaseShadowing, PhaseProgressing, PhaseHolding, PhasePaused, PhasePromoted, PhaseRolledBack}

// Terminal reports whether no further automatic transition happens.
func (p Phase) Terminal() bool { return p == PhasePromoted || p == PhaseRolledBack }

// Reason is why the last decision was taken: a small fixed set, fit for a
// metric label. The Decision's Message carries the figures.
type Reason string

const (
	ReasonStarted          Reason = "Started"          // first tick created the state
	ReasonCollecting       Reason = "Collecting"       // gates not decided yet
	ReasonGatesPassed      Reason = "GatesPassed"      // advanced one step
	ReasonPromoted         Reason = "GatesPassedFinal" // advanced to the last step
	ReasonAgreementLow     Reason = "AgreementBelowThreshold"
	ReasonLatency          Reason = "LatencyTooHigh"
	ReasonCanaryErrors     Reason = "CanaryErrors"
	ReasonInconclusive     Reason = "Inconclusive" // MaxDwell passed without a decision
	ReasonNoData           Reason = "NoData"
	ReasonEvidenceFailed   Reason = "EvidenceUnavailable"
	ReasonStableFailing    Reason = "StableFailing"
	ReasonDrift            Reason = "HeldOnDrift" // istio emits its own WeightsDrifted Event
	ReasonTargetUnreadable Reason = "TargetUnreadable"
	ReasonFailedChecks     Reason = "TooManyFailedChecks" // rolled back after N unknown ticks
	ReasonPaused           Reason = "OperatorPaused"
	ReasonResumed          Reason = "OperatorResumed"
	ReasonOperatorPromote  Reason = "OperatorPromoted"
	ReasonOperatorAbort    Reason = "OperatorAborted"
	ReasonRejected         Reason = "CommandRejected"
	ReasonFinished         Reason = "Finished" // terminal, nothing to do
)

// Record is one past transition, kept in the state for operators.
type Record struct {
	At      time.Time `json:"at"`
	From    Phase     `json:"from"`
	To      Phase     `json:"to"`
	Step    int       `json:"step"`
	Weight  int32     `json:"weight"`
	Reason  Reason    `json:"reason"`
	Message string    `json:"message"`
}

// historyLen bounds State.History: the annotation must stay small.
const historyLen = 8

// State is a rollout's durable state, stored as JSON in AnnotationState.
// A plain value: safe to copy (History is replaced, never appended in place
// by Next) and compare with Equal.
type State struct {
	// ID names this rollout (one canary's journey); Events and logs carry it.
	ID    string `json:"id"`
	Phase Phase  `json:"phase"`
	// Step indexes the Plan; Weight is the canary weight written with this
	// state (the plan's weight, or 0/100 once terminal).
	Step   int   `json:"step"`
	Weight int32 `json:"weight"`
	// StepStartedAt is when the current step began: evidence is counted
	// from here, and the dwell time measured.
	StepStartedAt time.Time `json:"stepStartedAt"`
	// FailedChecks counts consecutive ticks with unknown evidence;
	// LatencyFailures consecutive ticks with the latency gate failing.
	FailedChecks    int `json:"failedChecks,omitempty"`
	LatencyFailures int `json:"latencyFailures,omitempty"`
	// Transitions counts phase/step changes in this rollout.
	Transitions int `json:"transitions"`
	// Reason and Message are the last decision's.
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// History holds the last transitions, newest last.
	History []Record `json:"history,omitempty"`
}

// material is the part of a State whose change must be written: a change of
// only counters, the reason or the message is kept in memory until the next write, so
// an idle rollout does not update the VirtualService on every tick.
func (s State) material() material {
	return material{s.ID, s.Phase, s.Step, s.Weight, s.StepStartedAt.UnixNano()}
}

type material struct {
	id      string
	phase   Phase
	step    int
	weight  int32
	started int64
}

// SameMaterial reports whether a and b differ only in what need not be
// written (counters, message).
func SameMaterial(a, b State) bool { return a.material() == b.material() }

// Encode returns the annotation value.
func (s State) Encode() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("rollout state: encode: %w", err)
	}
	return string(b), nil
}

// DecodeState parses an annotation value. A malformed value is an error: a
// rollout that cannot read its own state must not guess a step.
func DecodeState(v string) (State, error) {
	var s State
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return State{}, fmt.Errorf("annotation %s: %w", AnnotationState, err)
	}
	switch s.Phase {
	case PhaseShadowing, PhaseProgressing, PhaseHolding, PhasePaused, PhasePromoted, PhaseRolledBack:
	default:
		return State{}, fmt.Errorf("annotation %s: phase %q: unknown", AnnotationState, s.Phase)
	}
	if s.ID == "" {
		return State{}, fmt.Errorf("annotation %s: id: empty", AnnotationState)
	}
	return s, nil
}
