package rollout

import "math"

// The agreement gate is an always-valid sequential test on the rate p of
// disagreement (1 - agreement), against the threshold p0 = 1 - threshold.
//
// For one alternative rate q, the likelihood ratio after n trials with s
// disagreements is
//
//	LR_q(n, s) = (q/p0)^s * ((1-q)/(1-p0))^(n-s).
//
// If every q lies below p0 then, for any true p >= p0, each factor has
// expectation q*p/p0 + (1-q)(1-p)/(1-p0) <= 1, so LR_q is a non-negative
// supermartingale; so is any mixture M = sum_k w_k LR_{q_k} with weights
// summing to 1. Ville's inequality then bounds the chance that M EVER
// reaches 1/alpha by alpha, however often it is looked at: that is the
// false-promotion guarantee ("the canary is at or below the threshold,
// with confidence 1-alpha"), valid under continuous monitoring. The mirror
// image, alternatives above p0, bounds false rollbacks for any p <= p0.
//
// The mixture is a fixed grid of alternatives, geometrically closer to p0
// (so a canary just inside the threshold is still detected, later) plus, on
// the rollback side, multiples of p0 (so a grossly bad canary is detected in
// a few hundred pairs). Only (n, s) are needed: the test is computed from
// the counts since the step began, which is what the evidence sources give.

// gridDepth is how many halvings towards p0 the grid has: the closest
// alternative is p0*(1 -/+ 2^-gridDepth).
const gridDepth = 14

// mixtureLogLR returns log M for alternatives below p0 (below=true: the
// evidence that p < p0) or above it. n >= s >= 0; 0 < p0 < 1.
func mixtureLogLR(n, s int64, p0 float64, below bool) float64 {
	if n <= 0 || p0 <= 0 || p0 >= 1 {
		return 0
	}
	var buf [2*gridDepth + 64]float64
	qs := grid(buf[:0], p0, below)
	var terms [len(buf)]float64
	for i, q := range qs {
		terms[i] = logLR(n, s, p0, q)
	}
	return logSumExp(terms[:len(qs)]) - math.Log(float64(len(qs)))
}

// grid appends the alternatives on one side of p0 to qs.
func grid(qs []float64, p0 float64, below bool) []float64 {
	if below {
		// q = 0 (a canary that never disagrees) and p0*(1-2^-k).
		qs = append(qs, 0)
		for k := 1; k <= gridDepth; k++ {
			qs = append(qs, p0*(1-math.Ldexp(1, -k)))
		}
		return qs
	}
	for k := 1; k <= gridDepth; k++ {
		if q := p0 * (1 + math.Ldexp(1, -k)); q < 1 {
			qs = append(qs, q)
		}
	}
	for q := 2 * p0; q < 1; q *= 2 {
		qs = append(qs, q)
	}
	return qs
}

// logLR is log LR_q(n, s); -Inf when q makes the data impossible.
func logLR(n, s int64, p0, q float64) float64 {
	var l float64
	if s > 0 {
		if q == 0 {
			return math.Inf(-1)
		}
		l += float64(s) * math.Log(q/p0)
	}
	if f := n - s; f > 0 {
		l += float64(f) * (math.Log1p(-q) - math.Log1p(-p0))
	}
	return l
}

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var sum float64
	for _, x := range xs {
		sum += math.Exp(x - m)
	}
	return m + math.Log(sum)
}
