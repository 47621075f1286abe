package istio

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func inlineRoutes(primary, canary int32) Routes {
	return Routes{
		Shape:   ShapeInline,
		Primary: Destination{Host: "iris-router", Port: 8080, Weight: primary},
		Canary:  Destination{Host: "iris-canary.models.svc.cluster.local", Subset: "v2", Port: 8080, Weight: canary},
	}
}

func tapRoutes(stable, canary int32, mirror float64) Routes {
	return Routes{
		Shape:         ShapeTap,
		Primary:       Destination{Host: "iris-stable", Weight: stable},
		Canary:        Destination{Host: "iris-canary", Weight: canary},
		Mirror:        &Destination{Host: "iris-router", Port: 8080},
		MirrorPercent: mirror,
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*Routes)
		base    Routes
		wantErr string // substring; empty = valid
	}{
		{name: "inline 90/10", base: inlineRoutes(90, 10)},
		{name: "inline 100/0", base: inlineRoutes(100, 0)},
		{name: "inline 0/100", base: inlineRoutes(0, 100)},
		{name: "tap 50/50 at 0%", base: tapRoutes(50, 50, 0)},
		{name: "tap 100/0 at 100%", base: tapRoutes(100, 0, 100)},
		{name: "tap fractional mirror", base: tapRoutes(100, 0, 12.5)},
		{name: "sum 110", base: inlineRoutes(100, 10), wantErr: "sum of 100"},
		{name: "sum 0", base: inlineRoutes(0, 0), wantErr: "sum of 100"},
		{name: "negative weight", base: inlineRoutes(110, -10), wantErr: "canary.weight -10"},
		{name: "weight above 100", base: inlineRoutes(-50, 150), wantErr: "canary.weight 150"},
		{name: "int32 overflow sum", base: inlineRoutes(math.MaxInt32, math.MaxInt32), wantErr: "sum of 100"},
		{name: "mirror 150%", base: tapRoutes(90, 10, 150), wantErr: "mirrorPercentage 150"},
		{name: "mirror -5%", base: tapRoutes(90, 10, -5), wantErr: "mirrorPercentage -5"},
		{name: "mirror NaN", base: tapRoutes(90, 10, math.NaN()), wantErr: "mirrorPercentage NaN"},
		{name: "empty shape", base: inlineRoutes(90, 10), mutate: func(r *Routes) { r.Shape = "" }, wantErr: "shape"},
		{name: "empty canary host", base: inlineRoutes(90, 10), mutate: func(r *Routes) { r.Canary.Host = "" }, wantErr: "canary.host: empty"},
		{name: "same destination twice", base: inlineRoutes(90, 10), mutate: func(r *Routes) { r.Canary = r.Primary; r.Canary.Weight = 10 }, wantErr: "same destination"},
		{name: "inline with mirror", base: inlineRoutes(90, 10), mutate: func(r *Routes) { r.MirrorPercent = 5 }, wantErr: "inline shape does not manage a mirror"},
		{name: "tap without mirror", base: tapRoutes(90, 10, 5), mutate: func(r *Routes) { r.Mirror = nil }, wantErr: "mirror.host"},
		{name: "tap mirror with weight", base: tapRoutes(90, 10, 5), mutate: func(r *Routes) { r.Mirror.Weight = 3 }, wantErr: "mirror.weight 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.base
			if tc.mutate != nil {
				tc.mutate(&r)
			}
			err := r.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestWithCanaryWeightKeepsSumAndCopiesMirror(t *testing.T) {
	r := tapRoutes(90, 10, 20)
	next := r.WithCanaryWeight(25)
	assert.Equal(t, int32(75), next.Primary.Weight)
	assert.Equal(t, int32(25), next.CanaryWeight())
	require.NoError(t, next.Validate())
	next.Mirror.Host = "changed"
	assert.Equal(t, "iris-router", r.Mirror.Host, "the copy must not share the mirror with the original")
}

func TestSameHost(t *testing.T) {
	assert.True(t, sameHost("iris-canary", "iris-canary.models.svc.cluster.local", "models"))
	assert.True(t, sameHost("iris-canary.models", "iris-canary.models.svc", "models"))
	assert.False(t, sameHost("iris-canary", "iris-canary.other.svc.cluster.local", "models"))
	assert.False(t, sameHost("iris-canary", "iris-stable", "models"))
}
