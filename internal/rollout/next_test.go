package rollout

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testCfg() Config {
	return Config{Gates: Gates{MinPairs: 100, MinDwell: time.Minute, MaxFailedChecks: 3}}.WithDefaults()
}

// at is a State at step with the step started at t0.
func at(step int, phase Phase) State {
	cfg := testCfg()
	return State{ID: "r", Phase: phase, Step: step, Weight: cfg.Plan[step], StepStartedAt: t0, Reason: ReasonCollecting}
}

func good(n int64) *evidence.Evidence {
	return &evidence.Evidence{Exchanges: n, Pairs: n, Agreed: n,
		Latency: &evidence.Latency{Samples: n, StableP99: 20 * time.Millisecond, CanaryP99: 20 * time.Millisecond}}
}

func TestNextTable(t *testing.T) {
	cfg := testCfg()
	later := t0.Add(2 * time.Minute)
	cases := []struct {
		name   string
		s      State
		obs    Observation
		phase  Phase
		step   int
		action Action
		reason Reason
		write  bool
	}{
		{"first tick starts at step 0", State{}, Observation{Now: t0, NewID: "r"}, PhaseShadowing, 0, ActionStart, ReasonStarted, true},
		{"first tick on an unreadable target claims nothing", State{}, Observation{Now: t0, NewID: "r", TargetErr: "boom"}, "", 0, ActionHold, ReasonTargetUnreadable, false},
		{"enough good evidence advances", at(0, PhaseShadowing), Observation{Now: later, Evidence: good(2000)}, PhaseProgressing, 1, ActionAdvance, ReasonGatesPassed, true},
		{"the last gate promotes", at(4, PhaseProgressing), Observation{Now: later, Weight: 50, Evidence: good(2000)}, PhasePromoted, 5, ActionPromote, ReasonPromoted, true},
		{"good evidence before minDwell waits", at(1, PhaseProgressing), Observation{Now: t0.Add(30 * time.Second), Weight: 5, Evidence: good(2000)}, PhaseProgressing, 1, ActionNone, ReasonCollecting, false},
		{"too few pairs waits", at(1, PhaseProgressing), Observation{Now: later, Weight: 5, Evidence: good(50)}, PhaseProgressing, 1, ActionNone, ReasonCollecting, false},
		{"unknown latency never advances", at(1, PhaseProgressing), Observation{Now: later, Weight: 5, Evidence: &evidence.Evidence{Exchanges: 2000, Pairs: 2000, Agreed: 2000}}, PhaseProgressing, 1, ActionNone, ReasonCollecting, false},
		{"a failed evidence query holds", at(1, PhaseProgressing), Observation{Now: later, Weight: 5, EvidenceErr: "prometheus: connection refused"}, PhaseHolding, 1, ActionHold, ReasonEvidenceFailed, true},
		{"no data after minDwell holds", at(1, PhaseProgressing), Observation{Now: later, Weight: 5, Evidence: &evidence.Evidence{}}, PhaseHolding, 1, ActionHold, ReasonNoData, true},
		{"no data right after a step is expected", at(1, PhaseProgressing), Observation{Now: t0.Add(10 * time.Second), Weight: 5, Evidence: &evidence.Evidence{}}, PhaseProgressing, 1, ActionNone, ReasonCollecting, false},
		{"a failing stable holds", at(1, PhaseProgressing), Observation{Now: later, Weight: 5, Evidence: &evidence.Evidence{Exchanges: 100, StableFailures: 50, Pairs: 50, Agreed: 50}}, PhaseHolding, 1, ActionHold, ReasonStableFailing, true},
		{"drift holds and never writes", at(1, PhaseProgressing), Observation{Now: later, Weight: 30, Drift: "weights changed", Evidence: good(2000)}, PhaseHolding, 1, ActionHold, ReasonDrift, false},
		{"a weight that is not the step's holds", at(1, PhaseProgressing), Observation{Now: later, Weight: 30, Evidence: good(2000)}, PhaseHolding, 1, ActionHold, ReasonDrift, false},
		{"paused does nothing", at(1, PhasePaused), Observation{Now: later, Weight: 5, Evidence: good(2000)}, PhasePaused, 1, ActionNone, ReasonPaused, false},
		{"terminal does nothing", State{ID: "r", Phase: PhasePromoted, Step: 5, Weight: 100}, Observation{Now: later, Weight: 100}, PhasePromoted, 5, ActionNone, ReasonFinished, false},
		{"pause", at(2, PhaseProgressing), Observation{Now: later, Weight: 10, Command: CommandPause}, PhasePaused, 2, ActionPause, ReasonPaused, true},
		{"resume", at(2, PhasePaused), Observation{Now: later, Weight: 10, Command: CommandResume}, PhaseProgressing, 2, ActionResume, ReasonResumed, true},
		{"pause over a hand edit is rejected", at(2, PhaseHolding), Observation{Now: later, Weight: 30, Drift: "x", Command: CommandPause}, PhaseHolding, 2, ActionReject, ReasonRejected, false},
		{"resume over a hand edit is rejected", at(2, PhasePaused), Observation{Now: later, Weight: 30, Drift: "x", Command: CommandResume}, PhasePaused, 2, ActionReject, ReasonRejected, false},
		{"resume when not paused is rejected", at(2, PhaseProgressing), Observation{Now: later, Weight: 10, Command: CommandResume}, PhaseProgressing, 2, ActionReject, ReasonRejected, false},
		{"promote", at(2, PhaseHolding), Observation{Now: later, Weight: 10, Command: CommandPromote}, PhasePromoted, 5, ActionPromote, ReasonOperatorPromote, true},
		{"abort, even over a hand edit", at(2, PhaseHolding), Observation{Now: later, Weight: 30, Drift: "x", Command: CommandAbort}, PhaseRolledBack, 2, ActionRollback, ReasonOperatorAbort, true},
		{"abort when finished is rejected", State{ID: "r", Phase: PhaseRolledBack}, Observation{Now: later, Command: CommandAbort}, PhaseRolledBack, 0, ActionReject, ReasonRejected, false},
		{"disagreement shown above the threshold rolls back", at(2, PhaseProgressing), Observation{Now: later, Weight: 10, Evidence: &evidence.Evidence{Exchanges: 1000, Pairs: 1000, Agreed: 950}}, PhaseRolledBack, 2, ActionRollback, ReasonAgreementLow, true},
		{"canary errors roll back", at(2, PhaseProgressing), Observation{Now: later, Weight: 10, Evidence: &evidence.Evidence{Exchanges: 1000, CanaryFailures: 60, Pairs: 1000, Agreed: 940}}, PhaseRolledBack, 2, ActionRollback, ReasonCanaryErrors, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, d := Next(cfg, c.s, c.obs)
			assert.Equal(t, c.phase, next.Phase)
			assert.Equal(t, c.step, next.Step)
			assert.Equal(t, c.action, d.Action, d.Message)
			assert.Equal(t, c.reason, d.Reason, d.Message)
			assert.Equal(t, c.write, d.Write)
			if d.Write {
				assert.Equal(t, next.Weight, d.Weight)
				want := cfg.Plan[next.Step]
				if next.Phase == PhaseRolledBack {
					want = 0
				}
				assert.Equal(t, want, d.Weight, "the weight written is the step's (0 once rolled back)")
			}
			assert.NotEmpty(t, d.Message, "every decision says why")
		})
	}
}

func TestConsecutiveUnknownChecksRollBackButDriftNever(t *testing.T) {
	cfg := testCfg()
	s := at(1, PhaseProgressing)
	now := t0.Add(2 * time.Minute)
	var d Decision
	for i := 1; i <= cfg.Gates.MaxFailedChecks; i++ {
		s, d = Next(cfg, s, Observation{Now: now, Weight: 5, EvidenceErr: "timeout"})
		now = now.Add(time.Minute)
	}
	assert.Equal(t, PhaseRolledBack, s.Phase)
	assert.Equal(t, ReasonFailedChecks, d.Reason)
	assert.Contains(t, d.Message, "3 consecutive checks")

	// Known evidence in between resets the count.
	s = at(1, PhaseProgressing)
	s, _ = Next(cfg, s, Observation{Now: now, Weight: 5, EvidenceErr: "x"})
	s, _ = Next(cfg, s, Observation{Now: now, Weight: 5, EvidenceErr: "x"})
	s, _ = Next(cfg, s, Observation{Now: now, Weight: 5, Evidence: good(10)})
	assert.Zero(t, s.FailedChecks)
	assert.Equal(t, PhaseProgressing, s.Phase, "back from Holding once evidence is known")

	s = at(1, PhaseProgressing)
	for range 10 {
		s, d = Next(cfg, s, Observation{Now: now, Weight: 40, Drift: "hand edit"})
	}
	assert.Equal(t, PhaseHolding, s.Phase, "a human edit is never fought, however long")
	assert.False(t, d.Write)
}

func TestLatencyRollsBackOnlyAfterConsecutiveFailures(t *testing.T) {
	cfg := testCfg()
	slow := func() *evidence.Evidence {
		e := good(50) // too few pairs to decide agreement
		e.Latency = &evidence.Latency{Samples: 500, StableP99: 20 * time.Millisecond, CanaryP99: 60 * time.Millisecond}
		return e
	}
	s := at(1, PhaseProgressing)
	var d Decision
	s, d = Next(cfg, s, Observation{Now: t0, Weight: 5, Evidence: slow()})
	assert.Equal(t, 1, s.LatencyFailures)
	assert.Equal(t, ActionNone, d.Action)
	s, _ = Next(cfg, s, Observation{Now: t0, Weight: 5, Evidence: good(50)})
	assert.Zero(t, s.LatencyFailures, "a passing check resets the count")
	for range cfg.Gates.LatencyFailTicks {
		s, d = Next(cfg, s, Observation{Now: t0, Weight: 5, Evidence: slow()})
	}
	assert.Equal(t, PhaseRolledBack, s.Phase)
	assert.Equal(t, ReasonLatency, d.Reason)

	// The paired delta alone can fail the gate.
	e := good(50)
	e.Latency = &evidence.Latency{Samples: 500, StableP99: 20 * time.Millisecond, CanaryP99: 20 * time.Millisecond, DeltaP99: 30 * time.Millisecond, HasDelta: true}
	r, _ := latencyCheck(cfg.Gates, e.Latency)
	assert.Equal(t, gateFail, r)
}

func TestNoiseBaselineJudgesExcessDisagreement(t *testing.T) {
	cfg := Config{Gates: Gates{MinPairs: 100, MinDwell: time.Minute, NoiseBaseline: true}}.WithDefaults()
	// The canary disagrees on 3%, but stable disagrees with itself on 3%
	// too: without the baseline this is a rollback, with it an advance.
	ev := &evidence.Evidence{Exchanges: 20000, Pairs: 20000, Agreed: 19400, Noise: &evidence.Noise{Pairs: 20000, Disagreed: 600},
		Latency: &evidence.Latency{Samples: 500, StableP99: 20 * time.Millisecond, CanaryP99: 20 * time.Millisecond}}
	s, d := Next(cfg, at(0, PhaseShadowing), Observation{Now: t0.Add(2 * time.Minute), Evidence: ev})
	assert.Equal(t, ActionAdvance, d.Action, d.Message)
	assert.Equal(t, 1, s.Step)
	assert.Contains(t, d.Message, "after noise")

	cfg.Gates.NoiseBaseline = false
	_, d = Next(cfg, at(0, PhaseShadowing), Observation{Now: t0.Add(2 * time.Minute), Evidence: ev})
	assert.Equal(t, ActionRollback, d.Action)
}

func TestMaxDwellRollsBackAnUndecidedStep(t *testing.T) {
	cfg := Config{Gates: Gates{MinPairs: 100, MinDwell: time.Minute, MaxDwell: 10 * time.Minute}}.WithDefaults()
	ev := &evidence.Evidence{Exchanges: 300, Pairs: 300, Agreed: 297, Latency: good(1).Latency}
	ev.Latency.Samples = 500
	_, d := Next(cfg, at(1, PhaseProgressing), Observation{Now: t0.Add(11 * time.Minute), Weight: 5, Evidence: ev})
	assert.Equal(t, ReasonInconclusive, d.Reason, d.Message)
}

func TestStateRoundTripsThroughTheAnnotation(t *testing.T) {
	s, _ := Next(testCfg(), State{}, Observation{Now: t0, NewID: "r"})
	v, err := s.Encode()
	require.NoError(t, err)
	back, err := DecodeState(v)
	require.NoError(t, err)
	assert.True(t, SameMaterial(s, back))
	assert.Equal(t, s.History[0].Reason, back.History[0].Reason)
	_, err = DecodeState(`{"id":"r","phase":"Dancing"}`)
	assert.ErrorContains(t, err, "Dancing")
	_, err = DecodeState(`not json`)
	assert.Error(t, err)
}

func TestHistoryIsBounded(t *testing.T) {
	var h []Record
	for i := range 20 {
		h = appendHistory(h, Record{Step: i, To: PhaseProgressing})
	}
	require.Len(t, h, historyLen)
	assert.Equal(t, 19, h[len(h)-1].Step)
}

func TestConfigValidateNamesFields(t *testing.T) {
	err := Config{Plan: []int32{0, 50, 40}, Gates: Gates{AgreementThreshold: 2}}.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plan[2] 40")
	assert.Contains(t, err.Error(), "last step must be 100")
	assert.Contains(t, err.Error(), "agreementThreshold 2")
	require.NoError(t, Config{}.WithDefaults().Validate())
}
