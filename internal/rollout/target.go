package rollout

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// ErrConflict: the VirtualService changed between the read a decision was
// made on and its write. Nothing was written; the next tick re-reads and
// decides again. This is what keeps a stale leader from stepping twice.
var ErrConflict = errors.New("virtualservice changed since it was read")

// Snapshot is one read of the managed VirtualService.
type Snapshot struct {
	// Object is the VirtualService as read (Events are recorded on it);
	// its resourceVersion fences the write decided on this read.
	Object *unstructured.Unstructured
	// Routes is the managed route; zero when RoutesErr is set.
	Routes istio.Routes
	// RoutesErr says the route could not be read as ours (not found,
	// hosts changed, malformed): nothing may be written.
	RoutesErr error
	// Drift wraps istio.ErrDrift when the weights were changed by someone
	// else since our last write; Routes are then the current ones.
	Drift error
	// State is the AnnotationState value, "" when absent.
	State string
}

// Target is the managed VirtualService as the rollout needs it: one read,
// and one write conditional on that read. Implementations are safe for
// concurrent use and block on I/O bounded by ctx.
type Target interface {
	Read(ctx context.Context) (Snapshot, error)
	// Write sets routes and annotations (keys under istio.AnnotationPrefix)
	// on snap.Object in one update that fails with ErrConflict if the object
	// is no longer at snap.Object's version. It never retries.
	Write(ctx context.Context, snap Snapshot, routes istio.Routes, annotations map[string]string) error
}

// objectStore gets and conditionally updates one object: update must fail
// with an error wrapping ErrConflict when the object's version changed.
type objectStore interface {
	get(ctx context.Context) (*unstructured.Unstructured, error)
	update(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error)
}

// fenced implements Target with internal/istio's pure Read, Drifted and
// Apply on top of an objectStore, so the rollout gets exactly the route
// semantics (hosts, validation, last-applied annotation) the istio backends
// have, plus the one thing their SetRoutes does not offer: a write
// conditional on the resourceVersion of the read the decision came from,
// without a retry that would re-apply a stale decision.
type fenced struct {
	cfg   istio.Config
	store objectStore
}

func (f *fenced) Read(ctx context.Context) (Snapshot, error) {
	vs, err := f.store.get(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Object: vs, State: vs.GetAnnotations()[AnnotationState]}
	snap.Routes, snap.RoutesErr = istio.Read(vs, f.cfg)
	if snap.RoutesErr == nil {
		snap.Drift = istio.Drifted(vs, f.cfg, snap.Routes)
	}
	return snap, nil
}

func (f *fenced) Write(ctx context.Context, snap Snapshot, routes istio.Routes, annotations map[string]string) error {
	if snap.Object == nil {
		return errors.New("rollout: write without a read")
	}
	if snap.RoutesErr != nil {
		return fmt.Errorf("rollout: refusing to write an unreadable route: %w", snap.RoutesErr)
	}
	out, changed, err := istio.Apply(snap.Object, f.cfg, istio.Change{Routes: routes, Annotations: annotations})
	if err != nil || !changed {
		return err
	}
	// out carries snap.Object's resourceVersion: the store's update fails
	// if anything wrote in between.
	_, err = f.store.update(ctx, out)
	return err
}
