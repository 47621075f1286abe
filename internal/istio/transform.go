package istio

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Change is what a write asks for: the managed Routes, plus annotations we
// own (keys under AnnotationPrefix) to set in the same update, so a rollout
// can keep its state next to the weights atomically.
type Change struct {
	Routes      Routes
	Annotations map[string]string
}

// lastApplied is the body of AnnotationLastApplied: only the managed values.
type lastApplied struct {
	Weights       [2]int32 `json:"weights"`
	MirrorPercent float64  `json:"mirrorPercent,omitempty"`
}

func lastAppliedOf(r Routes) lastApplied {
	return lastApplied{Weights: [2]int32{r.Primary.Weight, r.Canary.Weight}, MirrorPercent: r.MirrorPercent}
}

// managedRoute is the located route, with the path errors name.
type managedRoute struct {
	index int
	route map[string]any
	path  string // spec.http[3]
}

// findRoute locates the managed route by name.
func findRoute(vs *unstructured.Unstructured, cfg Config) (managedRoute, error) {
	http, found, err := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err != nil {
		return managedRoute{}, fmt.Errorf("%s: spec.http: %w: %w", cfg.id(), ErrInvalid, err)
	}
	var names []string
	if found {
		for i, r := range http {
			m, _ := r.(map[string]any)
			name, _ := m["name"].(string)
			if name == cfg.Route {
				// NestedSlice deep-copies; index into the live object instead.
				live := vs.Object["spec"].(map[string]any)["http"].([]any)[i].(map[string]any)
				return managedRoute{index: i, route: live, path: fmt.Sprintf("spec.http[%d]", i)}, nil
			}
			names = append(names, name)
		}
	}
	return managedRoute{}, fmt.Errorf("%s: spec.http[name=%q]: %w (routes: %q)", cfg.id(), cfg.Route, ErrRouteNotFound, names)
}

// Read returns the managed Routes of vs. It checks that the route exists, has
// exactly two destinations, and that they (and, in the tap shape, the
// mirror) are the configured hosts. It does not Validate the weights: a
// route as found may be invalid, and the caller decides what to do with it.
func Read(vs *unstructured.Unstructured, cfg Config) (Routes, error) {
	cfg = cfg.withDefaults()
	if cfg.Namespace == "" {
		cfg.Namespace = vs.GetNamespace()
	}
	mr, err := findRoute(vs, cfg)
	if err != nil {
		return Routes{}, err
	}
	return readRoute(mr, cfg)
}

func readRoute(mr managedRoute, cfg Config) (Routes, error) {
	dests, _ := mr.route["route"].([]any)
	if len(dests) != 2 {
		return Routes{}, fmt.Errorf("%s: %s.route: %w: has %d destinations, the %s shape needs 2 (primary, canary)",
			cfg.id(), mr.path, ErrHostMismatch, len(dests), cfg.Shape)
	}
	r := Routes{Shape: cfg.Shape}
	wantPrimary, wantCanary, wantMirror := cfg.expected()
	for i, want := range []string{wantPrimary, wantCanary} {
		path := fmt.Sprintf("%s.route[%d]", mr.path, i)
		rd, _ := dests[i].(map[string]any)
		d, err := readDestination(rd["destination"], path+".destination", cfg)
		if err != nil {
			return Routes{}, err
		}
		if !sameHost(d.Host, want, cfg.Namespace) {
			return Routes{}, fmt.Errorf("%s: %s.destination.host %q: %w (want %q)", cfg.id(), path, d.Host, ErrHostMismatch, want)
		}
		w, err := number(rd["weight"], cfg, path+".weight")
		if err != nil {
			return Routes{}, err
		}
		if w != math.Trunc(w) || w < math.MinInt32 || w > math.MaxInt32 {
			return Routes{}, fmt.Errorf("%s: %s.weight %v: %w: not an int32", cfg.id(), path, w, ErrInvalid)
		}
		d.Weight = int32(w)
		if i == 0 {
			r.Primary = d
		} else {
			r.Canary = d
		}
	}
	if cfg.Shape == ShapeTap {
		if err := checkMirrorFields(mr, cfg); err != nil {
			return Routes{}, err
		}
		m, ok := mr.route["mirror"]
		if !ok {
			// No mirror mirrors nothing: the same as 0%, so a Routes read
			// here can be written back unchanged.
			r.Mirror = &Destination{Host: wantMirror}
			return r, nil
		}
		d, err := readDestination(m, mr.path+".mirror", cfg)
		if err != nil {
			return Routes{}, err
		}
		if !sameHost(d.Host, wantMirror, cfg.Namespace) {
			return Routes{}, fmt.Errorf("%s: %s.mirror.host %q: %w (want the router %q)", cfg.id(), mr.path, d.Host, ErrHostMismatch, wantMirror)
		}
		r.Mirror = &d
		r.MirrorPercent = 100 // Istio's default when mirrorPercentage is absent
		if p, ok := mr.route["mirrorPercentage"].(map[string]any); ok {
			if r.MirrorPercent, err = number(p["value"], cfg, mr.path+".mirrorPercentage.value"); err != nil {
				return Routes{}, err
			}
		}
	}
	return r, nil
}

// checkMirrorFields refuses mirror forms we cannot manage unambiguously.
func checkMirrorFields(mr managedRoute, cfg Config) error {
	if _, ok := mr.route["mirrors"]; ok {
		return fmt.Errorf("%s: %s.mirrors: %w: the tap shape manages the single `mirror` field; remove `mirrors`", cfg.id(), mr.path, ErrInvalid)
	}
	if _, ok := mr.route["mirrorPercent"]; ok {
		return fmt.Errorf("%s: %s.mirrorPercent: %w: deprecated field; use mirrorPercentage", cfg.id(), mr.path, ErrInvalid)
	}
	return nil
}

func readDestination(v any, path string, cfg Config) (Destination, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Destination{}, fmt.Errorf("%s: %s: %w: missing", cfg.id(), path, ErrHostMismatch)
	}
	var d Destination
	d.Host, _ = m["host"].(string)
	d.Subset, _ = m["subset"].(string)
	if p, ok := m["port"].(map[string]any); ok {
		n, err := number(p["number"], cfg, path+".port.number")
		if err != nil {
			return Destination{}, err
		}
		d.Port = uint32(n)
	}
	return d, nil
}

// number reads a JSON number in any of the forms unstructured decoding
// produces; absent means 0 (Istio's default for weight).
func number(v any, cfg Config, path string) (float64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return float64(n), nil
	case int:
		return float64(n), nil
	case int32:
		return float64(n), nil
	case float64:
		return n, nil
	case json.Number:
		f, err := n.Float64()
		if err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%s: %s %v: %w: not a number", cfg.id(), path, v, ErrInvalid)
}

// Apply returns a deep copy of vs with the managed route set to ch.Routes,
// our last-applied annotation updated and ch.Annotations set. Only those
// fields are touched; changed reports whether the copy differs from vs.
// It validates ch before anything else, and is pure (vs is not modified).
func Apply(vs *unstructured.Unstructured, cfg Config, ch Change) (out *unstructured.Unstructured, changed bool, err error) {
	cfg = cfg.withDefaults()
	if cfg.Namespace == "" {
		cfg.Namespace = vs.GetNamespace()
	}
	want := ch.Routes
	if err := want.Validate(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", cfg.id(), err)
	}
	if want.Shape != cfg.Shape {
		return nil, false, fmt.Errorf("%s: shape %q: %w: configured shape is %q", cfg.id(), want.Shape, ErrInvalid, cfg.Shape)
	}
	for k := range ch.Annotations {
		if !strings.HasPrefix(k, AnnotationPrefix) || k == AnnotationLastApplied {
			return nil, false, fmt.Errorf("%s: metadata.annotations[%q]: %w: only keys under %s other than %s may be set",
				cfg.id(), k, ErrInvalid, AnnotationPrefix, AnnotationLastApplied)
		}
	}
	out = vs.DeepCopy()
	mr, err := findRoute(out, cfg)
	if err != nil {
		return nil, false, err
	}
	cur, err := readRoute(mr, cfg) // also checks the destinations are ours
	if err != nil {
		return nil, false, err
	}
	for i, pair := range [][2]Destination{{cur.Primary, want.Primary}, {cur.Canary, want.Canary}} {
		if !sameDest(pair[0], pair[1], cfg.Namespace) {
			return nil, false, fmt.Errorf("%s: %s.route[%d].destination %s: %w (requested %s)",
				cfg.id(), mr.path, i, pair[0], ErrHostMismatch, pair[1])
		}
	}
	if cfg.Shape == ShapeTap && !sameDest(*cur.Mirror, *want.Mirror, cfg.Namespace) {
		return nil, false, fmt.Errorf("%s: %s.mirror %s: %w (requested %s)", cfg.id(), mr.path, *cur.Mirror, ErrHostMismatch, *want.Mirror)
	}

	dests := mr.route["route"].([]any)
	for i, w := range []int32{want.Primary.Weight, want.Canary.Weight} {
		rd := dests[i].(map[string]any)
		if old, _ := number(rd["weight"], cfg, ""); old != float64(w) {
			rd["weight"] = int64(w)
			changed = true
		}
	}
	if cfg.Shape == ShapeTap && cur.MirrorPercent != want.MirrorPercent {
		if _, ok := mr.route["mirror"]; !ok {
			mr.route["mirror"] = destinationObject(*want.Mirror)
		}
		mr.route["mirrorPercentage"] = map[string]any{"value": want.MirrorPercent}
		changed = true
	}

	anns := out.GetAnnotations()
	if anns == nil {
		anns = map[string]string{}
	}
	body, err := json.Marshal(lastAppliedOf(want))
	if err != nil {
		return nil, false, fmt.Errorf("%s: encode %s: %w", cfg.id(), AnnotationLastApplied, err)
	}
	set := map[string]string{AnnotationLastApplied: string(body)}
	for k, v := range ch.Annotations {
		set[k] = v
	}
	for k, v := range set {
		if old, ok := anns[k]; !ok || old != v {
			anns[k] = v
			changed = true
		}
	}
	out.SetAnnotations(anns)
	if !changed {
		return vs.DeepCopy(), false, nil
	}
	return out, true, nil
}

func sameDest(a, b Destination, namespace string) bool {
	return sameHost(a.Host, b.Host, namespace) && a.Subset == b.Subset && a.Port == b.Port
}

func destinationObject(d Destination) map[string]any {
	m := map[string]any{"host": d.Host}
	if d.Subset != "" {
		m["subset"] = d.Subset
	}
	if d.Port != 0 {
		m["port"] = map[string]any{"number": int64(d.Port)}
	}
	return m
}

// lastAppliedOn returns the managed values recorded by our last write, and
// whether there was one. A malformed annotation is an error: it cannot prove
// the current weights are ours.
func lastAppliedOn(vs *unstructured.Unstructured, cfg Config) (weights [2]int32, mirrorPercent float64, ok bool, err error) {
	raw, found := vs.GetAnnotations()[AnnotationLastApplied]
	if !found {
		return weights, 0, false, nil
	}
	var la lastApplied
	if err := json.Unmarshal([]byte(raw), &la); err != nil {
		return weights, 0, false, fmt.Errorf("%s: metadata.annotations[%q] %q: %w: %w", cfg.withDefaults().id(), AnnotationLastApplied, raw, ErrDrift, err)
	}
	return la.Weights, la.MirrorPercent, true, nil
}

// Drifted reports whether the managed values in cur differ from what our
// last write recorded on vs. No record (we never wrote) is not drift. The
// error, when drifted, wraps ErrDrift and says what changed.
func Drifted(vs *unstructured.Unstructured, cfg Config, cur Routes) error {
	cfg = cfg.withDefaults()
	if cfg.Namespace == "" {
		cfg.Namespace = vs.GetNamespace()
	}
	w, mp, ok, err := lastAppliedOn(vs, cfg)
	if err != nil || !ok {
		return err
	}
	last := Routes{Primary: Destination{Weight: w[0]}, Canary: Destination{Weight: w[1]}, MirrorPercent: mp}
	if cur.Shape == ShapeInline {
		last.MirrorPercent = cur.MirrorPercent
	}
	if sameManaged(cur, last) {
		return nil
	}
	return fmt.Errorf("%s: route %q: %w: weights %d/%d mirror %v%%, last written %d/%d mirror %v%% (accept the current state or restore ours)",
		cfg.id(), cfg.Route, ErrDrift, cur.Primary.Weight, cur.Canary.Weight, cur.MirrorPercent, w[0], w[1], mp)
}
