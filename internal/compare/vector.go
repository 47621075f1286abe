package compare

import (
	"math"
	"math/bits"
)

// This file is the numeric core: pure functions on float slices that do not
// allocate, so a 10-class probability comparison stays well under the
// issue's 200 ns budget (see BenchmarkProbabilities10).

// maxTopK bounds top-k so the index sets live in small fixed stack arrays.
const maxTopK = 16

// Probabilities compares two probability (or logit) vectors of equal,
// non-zero length: label agreement by argmax, plus Jensen-Shannon
// divergence (base 2), maximum absolute difference and top-k overlap on
// the normalised distributions. When either vector has a negative value
// both are taken as logits and softmaxed; otherwise each is divided by its
// sum (an all-zero vector reads as uniform). With a NaN or
// an infinity on either side the metrics are NaN and the instance agrees
// only if nanEqual, the non-finite values sit in the same places, and the
// argmaxes (ignoring NaN) agree. Vectors of different lengths (or empty)
// never agree and get NaN metrics; Compare reports them as a schema
// mismatch before getting here. Pure and allocation-free.
func Probabilities(stable, canary []float64, topK int, nanEqual bool) InstanceDiff {
	d := InstanceDiff{Mode: ModeProbabilities, HasLabels: true}
	n := len(stable)
	if len(canary) != n || n == 0 {
		d.Stable.Index, d.Canary.Index = int64(Argmax(stable)), int64(Argmax(canary))
		d.JS, d.MaxAbsDiff, d.TopKOverlap = math.NaN(), math.NaN(), math.NaN()
		return d
	}
	// One pass: argmaxes (NaN never wins, first index on ties), sums, and
	// whether any value is negative (logits).
	sa, ca := 0, 0
	sBest, cBest := math.Inf(-1), math.Inf(-1)
	ssum, csum := 0.0, 0.0
	negative := false
	for i, s := range stable {
		c := canary[i]
		if s > sBest {
			sBest, sa = s, i
		}
		if c > cBest {
			cBest, ca = c, i
		}
		if s < 0 || c < 0 {
			negative = true
		}
		ssum += s
		csum += c
	}
	d.Stable.Index, d.Canary.Index = int64(sa), int64(ca)
	// A NaN or an infinity anywhere makes a sum non-finite: one check.
	if t := ssum + csum; t != t || math.IsInf(t, 0) {
		d.JS, d.MaxAbsDiff, d.TopKOverlap = math.NaN(), math.NaN(), math.NaN()
		d.Agree = sa == ca && sameNonFinite(stable, canary, nanEqual)
		return d
	}
	// If either side has a negative value the pair is logits: both go
	// through softmax, so the two sides are always read the same way.
	// Otherwise p = x*scale + off: scale 1/sum, or for an all-zero vector
	// scale 0 and off 1/n (uniform).
	sScale, sOff := normalizer(stable, negative, ssum, sBest)
	cScale, cOff := normalizer(canary, negative, csum, cBest)
	js, maxAbs := 0.0, 0.0
	for i, s := range stable {
		c := canary[i]
		var p, q float64
		if negative {
			p, q = math.Exp(s-sBest)*sScale, math.Exp(c-cBest)*cScale
		} else {
			p, q = s*sScale+sOff, c*cScale+cOff
		}
		if diff := math.Abs(p - q); diff > maxAbs {
			maxAbs = diff
		}
		m := p + q
		if m <= 0 {
			continue
		}
		t := (p - q) / m
		u := t * t
		if u > 0.25 {
			js += m * jsTermFar(t)
			continue
		}
		// f(t) = sum_k u^k/(k(2k-1)), 14 terms (error < 3e-12), by
		// Estrin's scheme: a dependency chain of 4 multiply-adds
		// instead of Horner's 14. Inlined by hand: this loop is the
		// hot path of the 200 ns budget.
		u2 := u * u
		u4 := u2 * u2
		u8 := u4 * u4
		c0 := (1 + u*(1.0/6)) + u2*(1.0/15+u*(1.0/28))
		c1 := (1.0/45 + u*(1.0/66)) + u2*(1.0/91+u*(1.0/120))
		c2 := (1.0/153 + u*(1.0/190)) + u2*(1.0/231+u*(1.0/276))
		js += m * u * ((c0 + u4*c1) + u8*(c2+u4*(1.0/325+u*(1.0/378))))
	}
	d.JS = min(max(js/(4*math.Ln2), 0), 1)
	d.MaxAbsDiff = maxAbs
	d.TopKOverlap = topKOverlap(stable, canary, topK)
	d.Agree = sa == ca
	return d
}

// The Jensen-Shannon sum uses f(t) = (1+t)ln(1+t) + (1-t)ln(1-t) with
// t = (p-q)/(p+q), since p ln(2p/(p+q)) + q ln(2q/(p+q)) = (p+q)/2 * f(t).
// For |t| <= 1/2, the common case of two models that roughly agree, the
// loop sums the series f(t) = sum_k t^2k/(k(2k-1)), which is faster than
// two logarithms and more accurate when p is close to q; jsTermFar is the
// closed form for the rest.
func jsTermFar(t float64) float64 {
	f := 0.0
	if t > -1 {
		f += (1 + t) * math.Log(1+t)
	}
	if t < 1 {
		f += (1 - t) * math.Log(1-t)
	}
	return f
}

// normalizer returns scale and offset mapping a raw element to its
// probability (for logits: the softmax scale 1/sum(exp(x-max))).
func normalizer(v []float64, logits bool, sum, vmax float64) (scale, off float64) {
	switch {
	case logits:
		z := 0.0
		for _, x := range v {
			z += math.Exp(x - vmax)
		}
		return 1 / z, 0
	case sum == 0:
		return 0, 1 / float64(len(v))
	}
	return 1 / sum, 0
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
	switch {
	case k <= 0:
		return math.NaN()
	case k == len(a):
		return 1 // both sets are every index
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

// topK fills idx[:k] (1 <= k <= maxTopK, k <= len(v)) with the indices of
// the k largest values, largest first, by insertion into a sorted window:
// once the window is full most elements of a probability vector fall
// below its last value and cost one compare.
func topK(v []float64, k int, idx *[maxTopK]int32) {
	var vals [maxTopK]float64
	n := 0
	for i, x := range v {
		j := n
		if n == k {
			if !(x > vals[k-1]) {
				continue
			}
			j = k - 1
		} else {
			n++
		}
		for j > 0 && x > vals[j-1] {
			vals[j], idx[j] = vals[j-1], idx[j-1]
			j--
		}
		vals[j], idx[j] = x, int32(i)
	}
}

// Regression compares numbers element-wise: they agree when
// |canary-stable| <= absTol + relTol*|stable| (equal infinities agree).
// NaN agrees with NaN in the same place only when nanEqual; MaxAbsDiff is
// NaN when a NaN was involved. Vectors of different lengths never agree.
// Pure and allocation-free.
func Regression(stable, canary []float64, absTol, relTol float64, nanEqual bool) InstanceDiff {
	d := InstanceDiff{Mode: ModeRegression, Agree: true, JS: math.NaN(), TopKOverlap: math.NaN()}
	if len(canary) != len(stable) {
		d.Agree, d.MaxAbsDiff = false, math.NaN()
		return d
	}
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
