package evidence

import (
	"context"
	"fmt"
	"time"
)

// NoiseFunc measures stable against stable since a time: a second call to
// stable, or a second stable replica, on a small sample. It is the hook for
// the optional noise baseline; the router does not measure it by itself.
type NoiseFunc func(ctx context.Context, since time.Time) (Noise, error)

// WithNoise returns a Source that adds the noise measured by fn to every
// Evidence of src. A failure of fn fails the Evidence: a baseline that was
// asked for and is unknown must not silently become "no noise". Safe for
// concurrent use if src and fn are.
func WithNoise(src Source, fn NoiseFunc) Source { return noisy{src: src, fn: fn} }

type noisy struct {
	src Source
	fn  NoiseFunc
}

func (n noisy) Evidence(ctx context.Context, since time.Time) (Evidence, error) {
	ev, err := n.src.Evidence(ctx, since)
	if err != nil {
		return Evidence{}, err
	}
	nz, err := n.fn(ctx, since)
	if err != nil {
		return Evidence{}, fmt.Errorf("evidence: noise baseline: %w", err)
	}
	if nz.Disagreed < 0 || nz.Disagreed > nz.Pairs {
		return Evidence{}, fmt.Errorf("evidence: noise baseline: %d disagreements of %d pairs", nz.Disagreed, nz.Pairs)
	}
	ev.Noise = &nz
	return ev, nil
}
