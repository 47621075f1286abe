package compare

import (
	"math"
	"math/bits"
)

// This file is the numeric core: pure functions on float slices that do not
// allocate, so a 10-class probability comparison stays well under the
// issue's 200 ns budget (see BenchmarkProbabilities10).

// maxTopK bounds top-k so the index sets live in fixed stack arrays.
const maxTopK = 64

// Probabilities compares two probability (or logit) vectors of equal,
// non-zero length: label agreement by argmax, plus Jensen-Shannon
// divergence (base 2), maximum absolute difference and top-k overlap on
// the normalised distributions. When either vector has a negative value
// both are taken as logits and softmaxed; otherwise each is divided by its
// sum (an all-zero vector reads as uniform). With a NaN or
// an infinity on either side the metrics are NaN and the instance agrees
// only if nanEqual, the non-finite values sit in the same places, and the
// argmaxes (ignoring NaN) agree. Lengths must match (the caller checks).
// Pure and allocation-free.
func Probabilities(stable, canary []float64, topK int, nanEqual bool) InstanceDiff {
	d := InstanceDiff{Mode: ModeProbabilities, HasLabels: true}
	n := len(stable)
	canary = canary[:n]
	sa, ca := 0, 0
	smin, cmin := math.Inf(1), math.Inf(1)
	ssum, csum := 0.0, 0.0
	nonFinite := false
	for i := range n {
		s, c := stable[i], canary[i]
		if s > stable[sa] || stable[sa] != stable[sa] {
			sa = i
		}
		if c > canary[ca] || canary[ca] != canary[ca] {
			ca = i
		}
		smin, cmin = min(smin, s), min(cmin, c)
		ssum += s
		csum += c
	}
	// A NaN or Inf anywhere makes a sum non-finite: one check for both.
	if math.IsNaN(ssum+csum) || math.IsInf(ssum+csum, 0) {
		nonFinite = true
	}
	d.Stable.Index, d.Canary.Index = int64(sa), int64(ca)
	if nonFinite {
		d.JS, d.MaxAbsDiff, d.TopKOverlap = math.NaN(), math.NaN(), math.NaN()
		d.Agree = sa == ca && sameNonFinite(stable, canary, nanEqual)
		return d
	}
	// If either side has a negative value the pair is logits: both go
	// through softmax, so the two sides are always read the same way.
	logits := min(smin, cmin) < 0
	sf, cf := newNorm(stable, logits, ssum, sa), newNorm(canary, logits, csum, ca)
	js, maxAbs := 0.0, 0.0
	for i := range n {
		p, q := sf.at(stable, i), cf.at(canary, i)
		maxAbs = max(maxAbs, math.Abs(p-q))
		m := p + q
		if p > 0 {
			js += p * math.Log(2*p/m)
		}
		if q > 0 {
			js += q * math.Log(2*q/m)
		}
	}
	d.JS = min(max(js/(2*math.Ln2), 0), 1)
	d.MaxAbsDiff = maxAbs
	d.TopKOverlap = topKOverlap(stable, canary, topK)
	d.Agree = sa == ca
	return d
}

// norm maps a raw vector element to its probability.
type norm struct {
	softmax   bool
	shift     float64 // softmax: the max, for stability
	scale     float64 // 1/sum (of values, or of exps)
	uniform   bool    // all-zero vector: read as uniform
	uniformPr float64
}

func newNorm(v []float64, logits bool, sum float64, argmax int) norm {
	if logits {
		f := norm{softmax: true, shift: v[argmax]}
		z := 0.0
		for _, x := range v {
			z += math.Exp(x - f.shift)
		}
		f.scale = 1 / z
		return f
	}
	if sum == 0 {
		return norm{uniform: true, uniformPr: 1 / float64(len(v))}
	}
	return norm{scale: 1 / sum}
}

func (f norm) at(v []float64, i int) float64 {
	switch {
	case f.softmax:
		return math.Exp(v[i]-f.shift) * f.scale
	case f.uniform:
		return f.uniformPr
	}
	return v[i] * f.scale
}

// sameNonFinite reports whether two vectors have their NaNs (when NaN is
// equal to NaN) and infinities in the same places.
func sameNonFinite(a, b []float64, nanEqual bool) bool {
	for i := range a {
		x, y := a[i], b[i]
		xn, yn := x != x, y != y
		switch {
		case xn || yn:
			if !nanEqual || xn != yn {
				return false
			}
		case math.IsInf(x, 0) || math.IsInf(y, 0):
			if x != y {
				return false
			}
		}
	}
	return true
}

// Argmax returns the index of the largest element, ignoring NaN (the first
// one on ties), or -1 for an empty or all-NaN vector.
func Argmax(v []float64) int {
	best := -1
	for i, x := range v {
		if x == x && (best < 0 || x > v[best]) {
			best = i
		}
	}
	return best
}

// topKOverlap is |topk(a) ∩ topk(b)| / k with k capped at len(a) and
// maxTopK. Ties keep the lower index, so the result is deterministic.
func topKOverlap(a, b []float64, k int) float64 {
	k = min(k, len(a), maxTopK)
	if k <= 0 {
		return math.NaN()
	}
	var ia, ib [maxTopK]int32
	topK(a, k, &ia)
	topK(b, k, &ib)
	shared := 0
	if len(a) <= 64 {
		var ma, mb uint64
		for j := range k {
			ma |= 1 << ia[j]
			mb |= 1 << ib[j]
		}
		shared = bits.OnesCount64(ma & mb)
	} else {
		for _, x := range ia[:k] {
			for _, y := range ib[:k] {
				if x == y {
					shared++
					break
				}
			}
		}
	}
	return float64(shared) / float64(k)
}

// topK fills idx[:k] with the indices of the k largest values (finite
// inputs), largest first, by insertion: O(n) compares when most elements
// fall below the current k-th value, as with probability vectors.
func topK(v []float64, k int, idx *[maxTopK]int32) {
	n := 0
	for i, x := range v {
		if n == k && x <= v[idx[k-1]] {
			continue
		}
		j := min(n, k-1)
		for j > 0 && x > v[idx[j-1]] {
			idx[j] = idx[j-1]
			j--
		}
		idx[j] = int32(i)
		if n < k {
			n++
		}
	}
}

// Regression compares numbers element-wise: they agree when
// |canary-stable| <= absTol + relTol*|stable| (equal infinities agree).
// NaN agrees with NaN in the same place only when nanEqual; MaxAbsDiff is
// NaN when a NaN was involved. Lengths must match (the caller checks).
// Pure and allocation-free.
func Regression(stable, canary []float64, absTol, relTol float64, nanEqual bool) InstanceDiff {
	d := InstanceDiff{Mode: ModeRegression, Agree: true, JS: math.NaN(), TopKOverlap: math.NaN()}
	canary = canary[:len(stable)]
	sawNaN := false
	for i, s := range stable {
		c := canary[i]
		if s != s || c != c {
			sawNaN = true
			if !nanEqual || s == s || c == c {
				d.Agree = false
			}
			continue
		}
		if s == c {
			continue
		}
		diff := math.Abs(c - s)
		d.MaxAbsDiff = max(d.MaxAbsDiff, diff)
		// An infinite stable value would make the tolerance infinite too;
		// unequal values with an infinity never agree.
		if math.IsInf(s, 0) || !(diff <= absTol+relTol*math.Abs(s)) {
			d.Agree = false
		}
	}
	if sawNaN {
		d.MaxAbsDiff = math.NaN()
	}
	return d
}

// looksLikeProbabilities: every value in [0,1] and a sum of 1±0.01 (loose
// enough for float32 rounding over many classes).
func looksLikeProbabilities(v []float64) bool {
	if len(v) < 2 {
		return false
	}
	sum := 0.0
	for _, x := range v {
		if !(x >= 0 && x <= 1) {
			return false
		}
		sum += x
	}
	return math.Abs(sum-1) <= 0.01
}
