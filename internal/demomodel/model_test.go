package demomodel

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldOut is data the models never trained on (training uses seed 1).
func heldOut(t *testing.T) ([]Features, []int) {
	t.Helper()
	return Dataset(99, 20000)
}

func loadBoth(t *testing.T) (*Model, *Model) {
	t.Helper()
	s, err := Load(VariantStable)
	require.NoError(t, err)
	c, err := Load(VariantCanary)
	require.NoError(t, err)
	return s, c
}

func TestStableIsAccurateOnHeldOutData(t *testing.T) {
	s, _ := loadBoth(t)
	xs, ys := heldOut(t)
	correct := 0
	for i, f := range xs {
		if s.Label(f) == ys[i] {
			correct++
		}
	}
	acc := float64(correct) / float64(len(xs))
	t.Logf("stable held-out accuracy %.3f", acc)
	assert.Greater(t, acc, 0.85)
	// A constant predictor would score at most the majority share; the
	// model must beat it by a wide margin to count as a real model.
	var counts [NumClasses]int
	for _, y := range ys {
		counts[y]++
	}
	for k, c := range counts {
		assert.Less(t, float64(c)/float64(len(ys)), 0.6, "class %d dominates the data", k)
	}
}

func TestCanaryDisagreesOnlyOnTheKnownSlice(t *testing.T) {
	s, c := loadBoth(t)
	xs, _ := heldOut(t)
	var in, disIn, disOut int
	for _, f := range xs {
		differ := s.Label(f) != c.Label(f)
		if InSlice(f) {
			in++
			if differ {
				disIn++
			}
		} else if differ {
			disOut++
		}
		if !InSlice(f) {
			// Outside the slice the canary is the stable model, to the bit.
			require.Equal(t, s.Predict(f), c.Predict(f), "row %+v", f)
		}
	}
	n := float64(len(xs))
	assert.Zero(t, disOut, "disagreements outside %s", SliceDescription)
	assert.Greater(t, float64(disIn)/float64(in), 0.9, "the canary should disagree on most of the slice")
	assert.InDelta(t, SliceFraction, float64(in)/n, 0.01, "slice share of traffic")
	overall := float64(disIn) / n
	assert.True(t, overall > 0.03 && overall < 0.08, "overall disagreement %.4f outside 3-8%%", overall)
}

func TestTrainingAndDataAreDeterministic(t *testing.T) {
	a := Train(TrainConfig{Iterations: 50})
	b := Train(TrainConfig{Iterations: 50})
	assert.Equal(t, a.w, b.w)
	other := Train(TrainConfig{Iterations: 50, Seed: 2})
	assert.NotEqual(t, a.w, other.w, "a different seed must give different data")

	x1, y1 := Dataset(5, 100)
	x2, y2 := Dataset(5, 100)
	assert.Equal(t, x1, x2)
	assert.Equal(t, y1, y2)
	x3, _ := Dataset(6, 100)
	assert.NotEqual(t, x1, x3)

	s1, _ := Load(VariantStable)
	s2, _ := Load(VariantStable)
	assert.Same(t, s1, s2, "Load trains once per process")
}

func TestPredictReturnsADistribution(t *testing.T) {
	s, _ := loadBoth(t)
	g := NewGenerator(3)
	for range 100 {
		p := s.Predict(g.Next())
		sum := 0.0
		for _, v := range p {
			assert.True(t, v >= 0 && v <= 1)
			sum += v
		}
		assert.InDelta(t, 1, sum, 1e-9)
	}
}

func TestLoadRejectsUnknownVariant(t *testing.T) {
	_, err := Load("beta")
	require.ErrorIs(t, err, ErrUnknownVariant)
	assert.Contains(t, err.Error(), `"beta"`)
}

func TestRegionParsing(t *testing.T) {
	for i, name := range RegionNames {
		r, err := ParseRegion(name)
		require.NoError(t, err)
		assert.Equal(t, Region(i), r)
		assert.Equal(t, name, r.String())
		r, err = RegionFromIndex(float64(i))
		require.NoError(t, err)
		assert.Equal(t, Region(i), r)
	}
	_, err := ParseRegion("NORTH")
	assert.Error(t, err)
	for _, bad := range []float64{-1, 4, 0.5} {
		_, err = RegionFromIndex(bad)
		assert.Error(t, err, "%v", bad)
	}
}

func TestInSlice(t *testing.T) {
	assert.True(t, InSlice(Features{X: [NumNumeric]float64{1.01}, Region: North}))
	assert.False(t, InSlice(Features{X: [NumNumeric]float64{1.0}, Region: North}))
	assert.False(t, InSlice(Features{X: [NumNumeric]float64{3}, Region: South}))
}

func BenchmarkPredict(b *testing.B) {
	s, _ := Load(VariantStable)
	f := NewGenerator(1).Next()
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Predict(f)
	}
}
