package istio

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Sentinel errors; callers branch on them with errors.Is. Every returned
// error also names the VirtualService (namespace/name) and the field.
var (
	// ErrNotFound: the VirtualService does not exist (and creation is off).
	ErrNotFound = errors.New("virtualservice not found")
	// ErrRouteNotFound: no HTTP route with the configured name.
	ErrRouteNotFound = errors.New("http route not found")
	// ErrHostMismatch: the managed route's destinations are not the
	// configured router/stable/canary hosts, in the order the shape needs.
	ErrHostMismatch = errors.New("destinations do not match the configured hosts")
	// ErrInvalid: the requested Routes (or the route found) break a rule
	// Validate or the shape enforces; nothing was written.
	ErrInvalid = errors.New("invalid routes")
	// ErrDrift: the managed weights differ from what the router last
	// wrote, so someone else changed them. Nothing is overwritten until the
	// operator accepts the current state (AcceptDrift) or restores ours.
	ErrDrift = errors.New("managed weights drifted from what shadowsplit last wrote")
	// ErrStale: a write conditional on an object version (IfVersion) found
	// the object changed since; nothing was written.
	ErrStale = errors.New("virtualservice changed since the read the change was decided on")
)

// Shape says how the router sits behind the VirtualService.
type Shape string

const (
	// ShapeInline: the router is in the stable path. route[0] is the router
	// (which forwards to stable and shadows the canary), route[1] the
	// canary. Mirror fields of the route are not managed.
	ShapeInline Shape = "inline"
	// ShapeTap: the router is off the client path. route[0] is stable,
	// route[1] the canary, and the route mirrors MirrorPercent of requests
	// to the router, which replays them to both models.
	ShapeTap Shape = "tap"
)

// Destination is one destination of the managed route. Host is as written in
// the VirtualService (short name or FQDN); Subset and Port are optional
// (zero = unset). Weight is a percentage in 0..100.
type Destination struct {
	Host   string `json:"host"`
	Subset string `json:"subset,omitempty"`
	Port   uint32 `json:"port,omitempty"`
	Weight int32  `json:"weight"`
}

func (d Destination) String() string {
	s := d.Host
	if d.Subset != "" {
		s += "/" + d.Subset
	}
	if d.Port != 0 {
		s += fmt.Sprintf(":%d", d.Port)
	}
	return s
}

// Routes is the managed part of the route as a plain value: safe to copy and
// compare, no I/O.
type Routes struct {
	Shape Shape `json:"shape"`
	// Primary takes the non-canary share: the router (inline) or stable (tap).
	Primary Destination `json:"primary"`
	// Canary takes the live canary share.
	Canary Destination `json:"canary"`
	// Mirror is the router in the tap shape; nil in the inline shape. Its
	// Weight is unused and must be 0.
	Mirror *Destination `json:"mirror,omitempty"`
	// MirrorPercent is the share of requests Istio mirrors to Mirror
	// (tap only), 0..100. A tap route without mirrorPercentage reads as 100,
	// which is what Istio does with it.
	MirrorPercent float64 `json:"mirrorPercent,omitempty"`
}

// CanaryWeight returns the live canary share in percent.
func (r Routes) CanaryWeight() int32 { return r.Canary.Weight }

// WithCanaryWeight returns a copy with the canary at w percent and the
// primary at 100-w: the one change a rollout step makes.
func (r Routes) WithCanaryWeight(w int32) Routes {
	r.Canary.Weight = w
	r.Primary.Weight = 100 - w
	if r.Mirror != nil {
		m := *r.Mirror
		r.Mirror = &m
	}
	return r
}

// Validate checks what the API server's CRD schema lets through but a mesh
// must not get: weights outside 0..100 or not summing to 100, a mirror
// percentage outside 0..100, empty hosts, fields that do not fit the shape.
// The error wraps ErrInvalid and names the field.
func (r Routes) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	switch r.Shape {
	case ShapeInline, ShapeTap:
	default:
		bad("shape %q: want %q or %q", r.Shape, ShapeInline, ShapeTap)
	}
	for _, d := range []struct {
		field string
		dest  Destination
	}{{"primary", r.Primary}, {"canary", r.Canary}} {
		if d.dest.Host == "" {
			bad("%s.host: empty", d.field)
		}
		if d.dest.Weight < 0 || d.dest.Weight > 100 {
			bad("%s.weight %d: want 0..100", d.field, d.dest.Weight)
		}
	}
	if sum := int64(r.Primary.Weight) + int64(r.Canary.Weight); sum != 100 {
		bad("weights %d+%d=%d: want a sum of 100", r.Primary.Weight, r.Canary.Weight, sum)
	}
	if r.Primary.Host != "" && r.Primary.Host == r.Canary.Host && r.Primary.Subset == r.Canary.Subset &&
		r.Primary.Port == r.Canary.Port {
		bad("primary and canary are the same destination %s", r.Primary)
	}
	switch r.Shape {
	case ShapeInline:
		if r.Mirror != nil || r.MirrorPercent != 0 {
			bad("mirror: the inline shape does not manage a mirror (the router shadows itself)")
		}
	case ShapeTap:
		if r.Mirror == nil || r.Mirror.Host == "" {
			bad("mirror.host: the tap shape needs the router as mirror")
		} else if r.Mirror.Weight != 0 {
			bad("mirror.weight %d: a mirror has no weight", r.Mirror.Weight)
		}
		if math.IsNaN(r.MirrorPercent) || r.MirrorPercent < 0 || r.MirrorPercent > 100 {
			bad("mirrorPercentage %v: want 0..100", r.MirrorPercent)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
}

// sameManaged reports whether two Routes carry the same managed values
// (weights and mirror percentage): what drift is measured on.
func sameManaged(a, b Routes) bool {
	return a.Primary.Weight == b.Primary.Weight && a.Canary.Weight == b.Canary.Weight &&
		a.MirrorPercent == b.MirrorPercent
}
