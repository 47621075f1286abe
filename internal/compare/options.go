// Package compare scores one stable/canary exchange (Compare) and keeps
// windowed, bounded-memory aggregates of the scores (Aggregator) with the
// agreement rate's Wilson interval and latency quantiles. It is pure: no
// I/O, no clocks of its own, no metrics library. The caller (cmd/router)
// turns Results and Summaries into Prometheus metrics and rollout input.
package compare

import (
	"fmt"
	"math"
)

// Mode says how predictions are compared.
type Mode string

const (
	// ModeAuto ("", the default) picks per instance from what both models
	// answered, so an unconfigured router already compares sensibly:
	//   - labels (integer, string, boolean, Triton classification
	//     strings): label agreement (as ModeClassification);
	//   - one float (or a float against an integer): tolerance (as
	//     ModeRegression);
	//   - float vectors that both look like probabilities (every value in
	//     [0,1], summing to 1±0.01): argmax agreement plus divergence (as
	//     ModeProbabilities);
	//   - other numeric vectors (logits, embeddings, integer tensors):
	//     element-wise tolerance (as ModeRegression);
	//   - several strings: element-wise equality;
	//   - anything else (objects, mixed arrays, null): canonical JSON
	//     equality of the instance (as ModeExact, without IgnorePaths).
	// Two different kinds (a label against a vector, vectors of different
	// lengths) are a schema mismatch.
	ModeAuto Mode = ""
	// ModeClassification compares labels: an integer or string label, a
	// Triton "score:index[:label]" string (its index), the argmax of a
	// vector, or for a single float p the class (p >= 0.5).
	ModeClassification Mode = "classification"
	// ModeRegression compares numbers element-wise: they agree when
	// |canary-stable| <= AbsTol + RelTol*|stable|.
	ModeRegression Mode = "regression"
	// ModeProbabilities compares probability (or logit) vectors: agreement
	// is argmax agreement (and JS divergence <= MaxJS when MaxJS > 0);
	// each instance also reports Jensen-Shannon divergence, max absolute
	// difference and top-k overlap. A single float p is read as the
	// binary distribution [1-p, p]. When either vector has a negative
	// value both are logits and go through softmax; otherwise each is
	// normalised to sum 1.
	ModeProbabilities Mode = "probabilities"
	// ModeExact compares canonical JSON (object key order, whitespace,
	// escapes and number spelling do not matter) after removing
	// IgnorePaths. V1 bodies with a "predictions" (or "outputs") array of
	// the same length on both sides are compared per instance; any other
	// body is one instance.
	ModeExact Mode = "exact"
)

// NaNPolicy says how NaN predictions compare. It is explicit because a NaN
// usually means a broken model, and silently treating it either way hides
// something.
type NaNPolicy string

const (
	// NaNEqual ("" is the same): NaN agrees with NaN in the same position
	// and disagrees with any number.
	NaNEqual NaNPolicy = "nan_equal"
	// NaNDisagree: an instance with a NaN on either side disagrees.
	NaNDisagree NaNPolicy = "nan_disagree"
)

// Defaults applied to zero Options fields.
const (
	DefaultAbsTol = 1e-6
	DefaultRelTol = 1e-4
	DefaultTopK   = 5
)

// Options configure the comparison of one model's answers. The zero value
// is the documented default (ModeAuto, first V2 output, tolerances
// DefaultAbsTol/DefaultRelTol, DefaultTopK, NaNEqual). Options are plain
// values; Compare only reads them, so one Options may be shared by
// concurrent calls.
type Options struct {
	// Mode: see the Mode constants. Empty is ModeAuto.
	Mode Mode `json:"mode,omitempty"`
	// Output names the V2 output tensor to compare (empty: stable's first
	// output, and the canary's output of the same name), or for V1 the key
	// to read from object predictions or columnar "outputs" (empty:
	// predictions as they are). ModeExact ignores it.
	Output string `json:"output,omitempty"`
	// AbsTol and RelTol: numbers agree when
	// |canary-stable| <= AbsTol + RelTol*|stable|. Zero means the default
	// (DefaultAbsTol, DefaultRelTol); a negative value means exactly 0.
	AbsTol float64 `json:"abs_tol,omitempty"`
	RelTol float64 `json:"rel_tol,omitempty"`
	// TopK is k for the top-k overlap of probability vectors (zero:
	// DefaultTopK; capped at the vector length and at 16).
	TopK int `json:"top_k,omitempty"`
	// MaxJS, when positive, also requires the Jensen-Shannon divergence
	// (base 2, in [0,1]) of probability vectors to be at most MaxJS.
	MaxJS float64 `json:"max_js,omitempty"`
	// NaN is the NaN policy. Empty is NaNEqual.
	NaN NaNPolicy `json:"nan,omitempty"`
	// IgnorePaths are removed before an exact comparison: dotted paths
	// from the body root, "*" matching any key or array index, e.g.
	// "id", "predictions.*.timestamp". V2 exact comparisons always
	// ignore "id", "model_name" and "model_version", which differ between
	// two deployments by design.
	IgnorePaths []string `json:"ignore_paths,omitempty"`
	// LabelNames maps class indices to names, so an index label from one
	// model can agree with a name label from the other, and reports name
	// the classes. Optional.
	LabelNames []string `json:"label_names,omitempty"`
}

// Validate reports the first invalid field, naming it and its value.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeAuto, ModeClassification, ModeRegression, ModeProbabilities, ModeExact:
	default:
		return fmt.Errorf("compare options: mode %q: want one of classification, regression, probabilities, exact or empty (auto)", o.Mode)
	}
	switch o.NaN {
	case "", NaNEqual, NaNDisagree:
	default:
		return fmt.Errorf("compare options: nan %q: want %s or %s", o.NaN, NaNEqual, NaNDisagree)
	}
	if math.IsNaN(o.AbsTol) || math.IsNaN(o.RelTol) || math.IsNaN(o.MaxJS) {
		return fmt.Errorf("compare options: abs_tol/rel_tol/max_js must be numbers, got %v/%v/%v", o.AbsTol, o.RelTol, o.MaxJS)
	}
	if o.TopK < 0 {
		return fmt.Errorf("compare options: top_k %d: must be >= 0", o.TopK)
	}
	for _, p := range o.IgnorePaths {
		if p == "" {
			return fmt.Errorf("compare options: ignore_paths: empty path")
		}
	}
	return nil
}

// resolved is Options with defaults applied, computed once per Compare.
type resolved struct {
	Options
	absTol, relTol float64
	topK           int
	nanEqual       bool
}

func resolve(o Options) resolved {
	r := resolved{Options: o, absTol: tol(o.AbsTol, DefaultAbsTol), relTol: tol(o.RelTol, DefaultRelTol), topK: o.TopK, nanEqual: o.NaN != NaNDisagree}
	if r.topK == 0 {
		r.topK = DefaultTopK
	}
	return r
}

func tol(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
