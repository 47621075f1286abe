package compare

import "math"

// Z95 is the two-sided 95% normal quantile.
const Z95 = 1.959963984540054

// Wilson returns the Wilson score interval for successes out of n trials at
// normal quantile z (Z95 for 95%). Unlike the normal approximation it stays
// inside [0,1] and is sensible at rates near 0 or 1 and at small n, which is
// exactly where a canary's agreement rate lives. n <= 0 gives (0, 1): no
// evidence. successes is clamped to [0, n]. Pure.
func Wilson(successes, n int64, z float64) (lower, upper float64) {
	if n <= 0 {
		return 0, 1
	}
	successes = min(max(successes, 0), n)
	nf := float64(n)
	p := float64(successes) / nf
	z2 := z * z
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	lower, upper = max(0, center-half), min(1, center+half)
	// Exact at the edges (floating point leaves ~1e-17 otherwise).
	if successes == 0 {
		lower = 0
	}
	if successes == n {
		upper = 1
	}
	return lower, upper
}
