package evidence

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fixed Evidence

func (f fixed) Evidence(context.Context, time.Time) (Evidence, error) { return Evidence(f), nil }

func TestWithNoiseAddsTheBaselineAndFailsWithIt(t *testing.T) {
	src := WithNoise(fixed{Exchanges: 10}, func(context.Context, time.Time) (Noise, error) { return Noise{Pairs: 100, Disagreed: 3}, nil })
	ev, err := src.Evidence(context.Background(), time.Now())
	require.NoError(t, err)
	assert.Equal(t, int64(10), ev.Exchanges)
	require.NotNil(t, ev.Noise)
	assert.Equal(t, int64(3), ev.Noise.Disagreed)

	broken := WithNoise(fixed{Exchanges: 10}, func(context.Context, time.Time) (Noise, error) { return Noise{}, errors.New("stable replica 2 down") })
	_, err = broken.Evidence(context.Background(), time.Now())
	assert.ErrorContains(t, err, "stable replica 2 down")
}
