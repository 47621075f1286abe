package istio

import (
	"fmt"
	"strings"
)

const (
	// FieldManager is the field manager name on every write, so GitOps
	// tools (and kubectl get --show-managed-fields) can see who owns what.
	FieldManager = "shadowsplit-router"
	// AnnotationPrefix marks the annotations shadowsplit owns. Only keys
	// with this prefix may be passed to WithAnnotations.
	AnnotationPrefix = "shadowsplit.io/"
	// AnnotationLastApplied records the managed values of our last write,
	// in the same update as the weights, so drift can be told apart from
	// our own changes after a restart.
	AnnotationLastApplied = AnnotationPrefix + "last-applied-weights"
	// DefaultRoute is the HTTP route name used when Config.Route is empty.
	DefaultRoute = "shadowsplit"
)

// Hosts are the Services the managed route must point at. A host matches
// when it is written the same, or when both expand to the same FQDN within
// the VirtualService's namespace (model-canary == model-canary.models.svc.cluster.local).
type Hosts struct {
	// Router is the router's Service: route[0] (inline) or mirror (tap).
	Router string
	// Stable is the stable model's Service: route[0] in the tap shape.
	// Unused (may be empty) in the inline shape.
	Stable string
	// Canary is the canary model's Service: route[1] in both shapes.
	Canary string
}

// Config names the one route shadowsplit manages. It is shared by the Kube
// and File backends and by the pure Read/Apply functions.
type Config struct {
	// Namespace of the VirtualService. Required for Kube; for File an empty
	// value takes the manifest's own metadata.namespace.
	Namespace string
	// Name of the VirtualService. Required.
	Name string
	// Route is the name of the HTTP route to manage; empty means DefaultRoute.
	Route string
	// Shape the route must have; empty means ShapeInline.
	Shape Shape
	// Hosts the destinations must match. Router and Canary are required,
	// Stable too in the tap shape.
	Hosts Hosts
}

func (c Config) withDefaults() Config {
	if c.Route == "" {
		c.Route = DefaultRoute
	}
	if c.Shape == "" {
		c.Shape = ShapeInline
	}
	return c
}

func (c Config) check() error {
	var missing []string
	if c.Name == "" {
		missing = append(missing, "Name")
	}
	if c.Hosts.Router == "" {
		missing = append(missing, "Hosts.Router")
	}
	if c.Hosts.Canary == "" {
		missing = append(missing, "Hosts.Canary")
	}
	if c.Shape == ShapeTap && c.Hosts.Stable == "" {
		missing = append(missing, "Hosts.Stable (tap shape)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("istio config: missing %s", strings.Join(missing, ", "))
	}
	if c.Shape != ShapeInline && c.Shape != ShapeTap {
		return fmt.Errorf("istio config: shape %q: want %q or %q", c.Shape, ShapeInline, ShapeTap)
	}
	return nil
}

// id is the object as errors name it.
func (c Config) id() string { return "virtualservice " + c.Namespace + "/" + c.Name }

// expected returns the hosts route[0], route[1] and the mirror must have.
func (c Config) expected() (primary, canary, mirror string) {
	if c.Shape == ShapeTap {
		return c.Hosts.Stable, c.Hosts.Canary, c.Hosts.Router
	}
	return c.Hosts.Router, c.Hosts.Canary, ""
}

// sameHost compares two Istio hosts the way the mesh resolves short names:
// relative to the VirtualService's namespace.
func sameHost(a, b, namespace string) bool {
	return a == b || fqdn(a, namespace) == fqdn(b, namespace)
}

func fqdn(h, namespace string) string {
	switch strings.Count(h, ".") {
	case 0:
		return h + "." + namespace + ".svc.cluster.local"
	case 1:
		return h + ".svc.cluster.local"
	}
	if strings.HasSuffix(h, ".svc") {
		return h + ".cluster.local"
	}
	return h
}
