// Package demomodel is the small, real model behind the embedded demo and
// the benchmarks: a multinomial logistic regression trained in Go over a
// synthetic tabular data set that this package generates from a fixed seed.
//
// Two variants exist. "stable" is trained on clean labels. "canary" is the
// stable model fine-tuned on data whose labels were corrupted on one known
// slice of inputs (InSlice: region "north" and x0 > 1.0, about 4% of
// traffic), so it disagrees with stable there and, by construction, nowhere
// else. The slice is exported so tests and the demo report can check that
// the disagreements shadowsplit finds are exactly the planted ones.
//
// Everything is deterministic: the same seed gives the same data, the same
// weights and the same predictions on every machine.
package demomodel

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// NumNumeric is the number of numeric features (x0..x5).
const NumNumeric = 6

// NumClasses is the number of output classes.
const NumClasses = 5

// ClassNames are the human-readable labels, indexed by class.
var ClassNames = [NumClasses]string{"very_low", "low", "medium", "high", "very_high"}

// Region is the categorical feature.
type Region int

// The four regions; the zero value is North.
const (
	North Region = iota
	South
	East
	West
	numRegions
)

// RegionNames are the wire names of the regions, indexed by Region.
var RegionNames = [numRegions]string{"north", "south", "east", "west"}

// String returns the wire name of r.
func (r Region) String() string {
	if r < 0 || r >= numRegions {
		return fmt.Sprintf("region(%d)", int(r))
	}
	return RegionNames[r]
}

// ParseRegion maps a wire name ("north", ...) to a Region.
func ParseRegion(s string) (Region, error) {
	for i, n := range RegionNames {
		if n == s {
			return Region(i), nil
		}
	}
	return 0, fmt.Errorf("region %q: want one of north, south, east, west", s)
}

// RegionFromIndex validates a numeric region index (as sent in an all-numeric
// tensor); the float must be an exact integer in [0, 3].
func RegionFromIndex(v float64) (Region, error) {
	if v != math.Trunc(v) || v < 0 || v >= float64(numRegions) {
		return 0, fmt.Errorf("region index %v: want an integer 0..3 (north, south, east, west)", v)
	}
	return Region(v), nil
}

// Features is one input row.
type Features struct {
	X      [NumNumeric]float64
	Region Region
}

// The known slice on which the canary disagrees with stable.
const (
	SliceRegion    = North
	SliceThreshold = 1.0
	// SliceDescription is the slice as a data scientist would write it.
	SliceDescription = `region == "north" && x0 > 1.0`
	// SliceFraction is the expected share of generated traffic in the slice:
	// P(region=north) * P(N(0,1) > 1) = 0.25 * 0.1587.
	SliceFraction = 0.25 * 0.15865525393145707
)

// InSlice reports whether f is in the slice the canary was corrupted on.
func InSlice(f Features) bool { return f.Region == SliceRegion && f.X[0] > SliceThreshold }

// Generator yields synthetic rows: x0..x5 ~ N(0,1), region uniform. It is
// deterministic for a given seed and NOT safe for concurrent use; give each
// goroutine its own generator (e.g. seeds base+i).
type Generator struct {
	rng *rand.Rand
}

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, 0x5eed5011^seed))}
}

// Next returns the next row.
func (g *Generator) Next() Features {
	var f Features
	for i := range f.X {
		f.X[i] = g.rng.NormFloat64()
	}
	f.Region = Region(g.rng.IntN(int(numRegions)))
	return f
}

// Labeled returns the next row with its ground-truth label, drawn from the
// teacher model with a little noise so that no model is perfect.
func (g *Generator) Labeled() (Features, int) {
	f := g.Next()
	var phi [dim]float64
	featurize(f, &phi)
	best, bestScore := 0, math.Inf(-1)
	for k := range NumClasses {
		s := dot(&teacher[k], &phi) + teacherNoise*gumbel(g.rng)
		if s > bestScore {
			best, bestScore = k, s
		}
	}
	return f, best
}

// Dataset returns n labeled rows from a generator seeded with seed. Pure:
// safe for concurrent use.
func Dataset(seed uint64, n int) ([]Features, []int) {
	g := NewGenerator(seed)
	xs := make([]Features, n)
	ys := make([]int, n)
	for i := range n {
		xs[i], ys[i] = g.Labeled()
	}
	return xs, ys
}

// Feature vector layout: the numeric features, the region one-hot, the
// slice indicator, and a bias. The slice indicator is what lets the canary
// be fine-tuned on the slice alone: it is 0 everywhere else, so weights on it
// cannot change any prediction outside the slice.
const (
	idxRegion = NumNumeric
	idxSlice  = idxRegion + int(numRegions)
	idxBias   = idxSlice + 1
	dim       = idxBias + 1
)

func featurize(f Features, phi *[dim]float64) {
	*phi = [dim]float64{}
	copy(phi[:NumNumeric], f.X[:])
	if f.Region >= 0 && f.Region < numRegions {
		phi[idxRegion+int(f.Region)] = 1
	}
	if InSlice(f) {
		phi[idxSlice] = 1
	}
	phi[idxBias] = 1
}

func dot(w, phi *[dim]float64) float64 {
	s := 0.0
	for i := range dim {
		s += w[i] * phi[i]
	}
	return s
}

// teacherNoise scales the Gumbel noise added to the teacher's logits; at
// this level a well-trained linear model reaches roughly 85-90% accuracy.
const teacherNoise = 0.5

// teacher is the ground-truth linear model, fixed by a constant seed. Its
// slice-indicator weights are zero: the slice is not special in the truth.
var teacher = func() (w [NumClasses][dim]float64) {
	rng := rand.New(rand.NewPCG(20240611, 1))
	for k := range NumClasses {
		for i := range dim {
			if i == idxSlice {
				continue
			}
			w[k][i] = 2 * rng.NormFloat64()
		}
	}
	return w
}()

func gumbel(rng *rand.Rand) float64 {
	u := rng.Float64()
	for u == 0 {
		u = rng.Float64()
	}
	return -math.Log(-math.Log(u))
}
