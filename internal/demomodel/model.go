package demomodel

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// Variant names accepted by Load.
const (
	VariantStable = "stable"
	VariantCanary = "canary"
)

// ErrUnknownVariant is returned by Load for a name other than "stable" or
// "canary".
var ErrUnknownVariant = errors.New("unknown model variant")

// Model is a trained multinomial logistic regression. It is immutable after
// training, so Predict and Label are safe for concurrent use and never block.
type Model struct {
	// Variant is "stable", "canary", or whatever TrainConfig.Name said.
	Variant string
	w       [NumClasses][dim]float64
}

// Predict returns the class probabilities for f (softmax of the logits).
// It does not allocate.
func (m *Model) Predict(f Features) [NumClasses]float64 {
	var phi [dim]float64
	featurize(f, &phi)
	var p [NumClasses]float64
	softmax(&m.w, &phi, &p)
	return p
}

// Label returns the most probable class for f.
func (m *Model) Label(f Features) int { return Argmax(m.Predict(f)) }

// Argmax returns the index of the largest probability (the first on ties).
func Argmax(p [NumClasses]float64) int {
	best := 0
	for k := 1; k < NumClasses; k++ {
		if p[k] > p[best] {
			best = k
		}
	}
	return best
}

// TrainConfig controls Train. Zero values select the documented defaults.
type TrainConfig struct {
	// Name is copied to Model.Variant; "" means "stable".
	Name string
	// Seed selects the training data; 0 means 1.
	Seed uint64
	// Samples is the training-set size; 0 means 4000.
	Samples int
	// Iterations of full-batch gradient descent; 0 means 300.
	Iterations int
	// LearningRate; 0 means 0.5.
	LearningRate float64
	// L2 is the ridge penalty on non-bias weights; 0 means 1e-3. Use a
	// negative value for none.
	L2 float64
}

func (c TrainConfig) withDefaults() TrainConfig {
	if c.Name == "" {
		c.Name = VariantStable
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Samples == 0 {
		c.Samples = 4000
	}
	if c.Iterations == 0 {
		c.Iterations = 300
	}
	if c.LearningRate == 0 {
		c.LearningRate = 0.5
	}
	if c.L2 == 0 {
		c.L2 = 1e-3
	}
	if c.L2 < 0 {
		c.L2 = 0
	}
	return c
}

// Train fits a model on clean synthetic data by full-batch gradient descent
// on the softmax cross-entropy. Deterministic for a given config. It takes
// tens of milliseconds; callers that just want the demo models use Load.
// Pure: safe for concurrent use.
func Train(cfg TrainConfig) *Model {
	cfg = cfg.withDefaults()
	xs, ys := Dataset(cfg.Seed, cfg.Samples)
	m := &Model{Variant: cfg.Name}
	gradientDescent(m, xs, ys, cfg, func(int) bool { return true })
	return m
}

// FineTuneOnSlice returns a copy of base whose slice-indicator weights were
// retrained on data where every row in the slice is labelled target, the
// way a label-pipeline bug on one segment would corrupt a retrain. Only the
// weights of the slice indicator move, so the copy predicts exactly as base
// does outside the slice. Pure: safe for concurrent use.
func FineTuneOnSlice(base *Model, target int, cfg TrainConfig) *Model {
	cfg = cfg.withDefaults()
	xs, _ := Dataset(cfg.Seed, cfg.Samples)
	var sx []Features
	var sy []int
	for _, f := range xs {
		if InSlice(f) {
			sx = append(sx, f)
			sy = append(sy, target)
		}
	}
	m := &Model{Variant: cfg.Name, w: base.w}
	gradientDescent(m, sx, sy, cfg, func(i int) bool { return i == idxSlice })
	return m
}

// gradientDescent updates the weights selected by train on (xs, ys).
func gradientDescent(m *Model, xs []Features, ys []int, cfg TrainConfig, train func(i int) bool) {
	if len(xs) == 0 {
		return
	}
	phis := make([][dim]float64, len(xs))
	for i, f := range xs {
		featurize(f, &phis[i])
	}
	inv := 1 / float64(len(xs))
	for range cfg.Iterations {
		var grad [NumClasses][dim]float64
		var p [NumClasses]float64
		for n := range phis {
			softmax(&m.w, &phis[n], &p)
			for k := range NumClasses {
				d := p[k]
				if k == ys[n] {
					d--
				}
				for i := range dim {
					grad[k][i] += d * phis[n][i]
				}
			}
		}
		for k := range NumClasses {
			for i := range dim {
				if !train(i) {
					continue
				}
				g := grad[k][i] * inv
				if i != idxBias {
					g += cfg.L2 * m.w[k][i]
				}
				m.w[k][i] -= cfg.LearningRate * g
			}
		}
	}
}

func softmax(w *[NumClasses][dim]float64, phi *[dim]float64, p *[NumClasses]float64) {
	maxLogit := math.Inf(-1)
	for k := range NumClasses {
		p[k] = dot(&w[k], phi)
		maxLogit = max(maxLogit, p[k])
	}
	sum := 0.0
	for k := range NumClasses {
		p[k] = math.Exp(p[k] - maxLogit)
		sum += p[k]
	}
	for k := range NumClasses {
		p[k] /= sum
	}
}

var (
	loadOnce sync.Once
	stable   *Model
	canary   *Model
)

// Load returns the demo model for variant ("stable" or "canary"), training
// both on first use (once per process; later calls return the same
// immutable *Model). Safe for concurrent use; the first call blocks while
// training.
func Load(variant string) (*Model, error) {
	loadOnce.Do(func() {
		stable = Train(TrainConfig{Name: VariantStable})
		canary = FineTuneOnSlice(stable, CanaryTarget(stable), TrainConfig{
			Name: VariantCanary, LearningRate: 2, Iterations: 200,
		})
	})
	switch variant {
	case VariantStable:
		return stable, nil
	case VariantCanary:
		return canary, nil
	}
	return nil, fmt.Errorf("model variant %q: %w (want %q or %q)", variant, ErrUnknownVariant, VariantStable, VariantCanary)
}

// CanaryTarget is the label the corrupted retrain assigns to the whole
// slice: the class stable finds least likely there, so the planted
// disagreement is large and easy to see.
func CanaryTarget(base *Model) int {
	xs, _ := Dataset(7, 20000)
	var sum [NumClasses]float64
	for _, f := range xs {
		if !InSlice(f) {
			continue
		}
		p := base.Predict(f)
		for k := range NumClasses {
			sum[k] += p[k]
		}
	}
	best := 0
	for k := 1; k < NumClasses; k++ {
		if sum[k] < sum[best] {
			best = k
		}
	}
	return best
}
