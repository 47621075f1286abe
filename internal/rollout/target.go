package rollout

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// ErrConflict: the VirtualService changed between the read a decision was
// made on and its write. Nothing was written; the next tick re-reads and
// decides again. This is what keeps a stale leader from stepping twice.
var ErrConflict = errors.New("virtualservice changed since it was read")

// Snapshot is one read of the managed VirtualService.
type Snapshot struct {
	// Routes is the managed route; zero when RoutesErr is set.
	Routes istio.Routes
	// RoutesErr says the VirtualService could not be read as ours (missing,
	// route not found, hosts changed, invalid): nothing may be written.
	RoutesErr error
	// Drift wraps istio.ErrDrift when the weights were changed by someone
	// else since our last write; Routes are then the current ones.
	Drift error
	// State is the AnnotationState value, "" when absent.
	State string
	// Version fences the write decided on this read.
	Version string
}

// Target is the managed VirtualService as the rollout needs it: one read,
// and one write conditional on that read. Implementations are safe for
// concurrent use and block on I/O bounded by ctx.
type Target interface {
	Read(ctx context.Context) (Snapshot, error)
	// Write sets routes and annotations (keys under istio.AnnotationPrefix)
	// in one update that fails with ErrConflict if the object is no longer
	// at snap.Version. It never retries. Over drifted weights it fails
	// with istio.ErrDrift.
	Write(ctx context.Context, snap Snapshot, routes istio.Routes, annotations map[string]string) error
	// AcceptDrift records the current weights as the router's own, so an
	// operator's explicit command can be written over a hand edit.
	AcceptDrift(ctx context.Context) error
	// EventObject is what Events are recorded on; nil records none.
	EventObject(ctx context.Context) runtime.Object
}

// Backend is what the rollout uses of internal/istio's Kube and File
// backends: Observe (routes, our annotations and the version from one
// read), SetRoutes with IfVersion and WithAnnotations, AcceptDrift.
type Backend interface {
	Observe(ctx context.Context) (istio.Observed, error)
	SetRoutes(ctx context.Context, want istio.Routes, opts ...istio.SetOption) error
	AcceptDrift(ctx context.Context) error
}

// istioTarget adapts a Backend. The backend does the route semantics
// (hosts, validation, drift, last-applied annotation, atomic writes); the
// adapter only maps its errors onto the rollout's vocabulary.
type istioTarget struct {
	b      Backend
	events func(ctx context.Context) runtime.Object
}

// NewTarget wraps an istio backend. events, when non-nil, returns the
// object Events are recorded on (NewKubeTarget passes the live
// VirtualService, whose UID `kubectl describe` matches); nil records none.
func NewTarget(b Backend, events func(ctx context.Context) runtime.Object) Target {
	return &istioTarget{b: b, events: events}
}

// NewKubeTarget builds the istio Kube backend for cfg with deps and wraps
// it; Events are recorded on the live VirtualService read through
// deps.Client. It does no I/O.
func NewKubeTarget(cfg istio.Config, deps istio.KubeDeps) (Target, error) {
	k, err := istio.NewKube(cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	ref := &corev1.ObjectReference{APIVersion: istio.VirtualServiceGVR.GroupVersion().String(), Kind: "VirtualService",
		Namespace: cfg.Namespace, Name: cfg.Name}
	vs := deps.Client.Resource(istio.VirtualServiceGVR).Namespace(cfg.Namespace)
	return NewTarget(k, func(ctx context.Context) runtime.Object {
		if o, err := vs.Get(ctx, cfg.Name, metav1.GetOptions{}); err == nil {
			return o
		}
		return ref // still an Event, found by name if not by UID
	}), nil
}

// NewFileTarget builds the istio File backend (a manifest on disk, edited
// in place) and wraps it. No Events: there is no API server. No I/O.
func NewFileTarget(cfg istio.Config, deps istio.FileDeps) (Target, error) {
	f, err := istio.NewFile(cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return NewTarget(f, nil), nil
}

func (t *istioTarget) Read(ctx context.Context) (Snapshot, error) {
	o, err := t.b.Observe(ctx)
	switch {
	case err == nil, errors.Is(err, istio.ErrDrift):
		s := Snapshot{Routes: o.Routes, State: o.Annotations[AnnotationState], Version: o.Version}
		if err != nil {
			s.Drift = err
		}
		return s, nil
	case errors.Is(err, istio.ErrNotFound), errors.Is(err, istio.ErrRouteNotFound),
		errors.Is(err, istio.ErrHostMismatch), errors.Is(err, istio.ErrInvalid):
		return Snapshot{RoutesErr: err}, nil
	}
	return Snapshot{}, err
}

func (t *istioTarget) Write(ctx context.Context, snap Snapshot, routes istio.Routes, annotations map[string]string) error {
	if snap.RoutesErr != nil {
		return fmt.Errorf("rollout: refusing to write an unreadable route: %w", snap.RoutesErr)
	}
	if snap.Version == "" {
		return errors.New("rollout: write without a read version")
	}
	err := t.b.SetRoutes(ctx, routes, istio.IfVersion(snap.Version), istio.WithAnnotations(annotations))
	if errors.Is(err, istio.ErrStale) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func (t *istioTarget) AcceptDrift(ctx context.Context) error { return t.b.AcceptDrift(ctx) }

func (t *istioTarget) EventObject(ctx context.Context) runtime.Object {
	if t.events == nil {
		return nil
	}
	return t.events(ctx)
}
