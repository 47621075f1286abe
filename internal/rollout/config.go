package rollout

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// DefaultPlan is shadow only, then 5, 10, 25, 50 and 100 percent.
var DefaultPlan = []int32{0, 5, 10, 25, 50, 100}

// Gates are the thresholds of every step. Zero values take the documented
// defaults (see WithDefaults); docs/rollout.md explains each.
type Gates struct {
	// AgreementThreshold is the agreement rate the canary must be shown to
	// reach (default 0.99): advance when the always-valid lower bound is at
	// or above it, roll back when the upper bound is below it.
	AgreementThreshold float64
	// PromoteAlpha bounds the chance of advancing a canary whose true
	// agreement is below the threshold (default 0.05), per step.
	PromoteAlpha float64
	// RollbackAlpha bounds the chance of rolling back a canary whose true
	// agreement (or error rate) is within its threshold (default 0.05),
	// over the whole rollout: each step's tests get RollbackAlpha divided
	// by the number of steps and gates (Bonferroni).
	RollbackAlpha float64
	// MinPairs is the agreement trials a step needs before it may advance
	// (default 200).
	MinPairs int64
	// MinDwell is how long a step lasts at least before it may advance
	// (default 2m).
	MinDwell time.Duration
	// MaxDwell, when positive, rolls back a step that stays undecided that
	// long ("not shown safe in time"). Zero (default) keeps collecting.
	MaxDwell time.Duration
	// MaxCanaryErrorRate is the share of exchanges (where stable answered)
	// on which the canary may fail or time out (default 0.01); a rate shown
	// above it by the sequential test rolls back.
	MaxCanaryErrorRate float64
	// MaxStableErrorRate: above this share of stable failures the canary
	// cannot be judged and the rollout holds (default 0.05).
	MaxStableErrorRate float64
	// LatencyP99Ratio: the canary's p99 must be at most this times stable's
	// p99 plus LatencySlack, and the paired delta p99 at most (ratio-1)
	// times stable's p99 plus LatencySlack (default 1.2).
	LatencyP99Ratio float64
	// LatencySlack is an absolute allowance so sub-millisecond models do not
	// flap on noise (default 5ms). Negative means none.
	LatencySlack time.Duration
	// MinLatencySamples is the canary calls the latency gate needs
	// (default 50); fewer means the gate is undecided.
	MinLatencySamples int64
	// LatencyFailTicks is how many consecutive failing latency checks roll
	// back (default 3): quantiles are noisy, one bad tick is not proof.
	LatencyFailTicks int
	// MaxFailedChecks is how many consecutive ticks with unknown evidence
	// (no data, failed query, stable failing) roll back (default 30).
	// Drift never counts: the router does not fight a human.
	MaxFailedChecks int
	// NoiseBaseline, when true and the evidence carries a stable-vs-stable
	// sample, judges the canary's disagreement in excess of that noise.
	NoiseBaseline bool
}

// Config is a rollout's plan and gates.
type Config struct {
	// Plan is the canary weight of each step, strictly increasing, ending
	// at 100. Nil means DefaultPlan. A leading 0 is the shadow-only step.
	Plan  []int32
	Gates Gates
}

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	if c.Plan == nil {
		c.Plan = append([]int32(nil), DefaultPlan...)
	}
	g := &c.Gates
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&g.AgreementThreshold, 0.99)
	def(&g.PromoteAlpha, 0.05)
	def(&g.RollbackAlpha, 0.05)
	def(&g.MaxCanaryErrorRate, 0.01)
	def(&g.MaxStableErrorRate, 0.05)
	def(&g.LatencyP99Ratio, 1.2)
	if g.MinPairs == 0 {
		g.MinPairs = 200
	}
	if g.MinDwell == 0 {
		g.MinDwell = 2 * time.Minute
	}
	if g.LatencySlack == 0 {
		g.LatencySlack = 5 * time.Millisecond
	} else if g.LatencySlack < 0 {
		g.LatencySlack = 0
	}
	if g.MinLatencySamples == 0 {
		g.MinLatencySamples = 50
	}
	if g.LatencyFailTicks == 0 {
		g.LatencyFailTicks = 3
	}
	if g.MaxFailedChecks == 0 {
		g.MaxFailedChecks = 30
	}
	return c
}

// Validate checks a defaulted Config; the error names every bad field.
func (c Config) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(c.Plan) < 2 {
		bad("plan %v: want at least two steps (e.g. [0, 100])", c.Plan)
	}
	for i, w := range c.Plan {
		if w < 0 || w > 100 {
			bad("plan[%d] %d: want 0..100", i, w)
		}
		if i > 0 && w <= c.Plan[i-1] {
			bad("plan[%d] %d: want strictly increasing weights", i, w)
		}
	}
	if n := len(c.Plan); n > 0 && c.Plan[n-1] != 100 {
		bad("plan[%d] %d: the last step must be 100 (promoted)", n-1, c.Plan[n-1])
	}
	g := c.Gates
	open01 := func(name string, v float64) {
		if math.IsNaN(v) || v <= 0 || v >= 1 {
			bad("%s %v: want a number strictly between 0 and 1", name, v)
		}
	}
	open01("agreementThreshold", g.AgreementThreshold)
	open01("promoteAlpha", g.PromoteAlpha)
	open01("rollbackAlpha", g.RollbackAlpha)
	open01("maxCanaryErrorRate", g.MaxCanaryErrorRate)
	open01("maxStableErrorRate", g.MaxStableErrorRate)
	if math.IsNaN(g.LatencyP99Ratio) || g.LatencyP99Ratio < 1 {
		bad("latencyP99Ratio %v: want 1 or more", g.LatencyP99Ratio)
	}
	if g.MinPairs < 1 {
		bad("minPairs %d: want 1 or more", g.MinPairs)
	}
	if g.MinDwell < 0 || g.MaxDwell < 0 {
		bad("minDwell %v / maxDwell %v: must not be negative", g.MinDwell, g.MaxDwell)
	}
	if g.MaxDwell > 0 && g.MaxDwell < g.MinDwell {
		bad("maxDwell %v: shorter than minDwell %v", g.MaxDwell, g.MinDwell)
	}
	if g.MinLatencySamples < 1 || g.LatencyFailTicks < 1 || g.MaxFailedChecks < 1 {
		bad("minLatencySamples %d, latencyFailTicks %d, maxFailedChecks %d: want 1 or more",
			g.MinLatencySamples, g.LatencyFailTicks, g.MaxFailedChecks)
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New("rollout config: " + strings.Join(errs, "; "))
}

// rollbackAlphaPerTest splits RollbackAlpha over every step that judges and
// the two rollback tests (agreement, errors) of each.
func (c Config) rollbackAlphaPerTest() float64 {
	return c.Gates.RollbackAlpha / float64(2*(len(c.Plan)-1))
}
