package istio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
)

// EventReasonDrifted is the reason of the Warning Event emitted on the
// VirtualService when its managed weights drifted.
const EventReasonDrifted = "WeightsDrifted"

// store is what a backend provides: one object, read and written with
// optimistic concurrency. update must fail with an error for which
// k8s.io/apimachinery/pkg/api/errors.IsConflict is true when the object
// changed since it was read (resourceVersion), so the shell can retry.
type store interface {
	get(ctx context.Context) (*unstructured.Unstructured, error)
	update(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error)
	create(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error)
}

// SetOption changes one SetRoutes call.
type SetOption func(*setOptions)

type setOptions struct {
	annotations map[string]string
	ifVersion   string
}

// IfVersion makes the write conditional on the object still being at
// version (Observed.Version): a decision taken on that read is applied to
// exactly that state or not at all. If the object changed, SetRoutes
// returns an error wrapping ErrStale, writes nothing and does not retry
// (recomputing would re-apply a decision made on stale evidence).
func IfVersion(version string) SetOption {
	return func(o *setOptions) { o.ifVersion = version }
}

// WithAnnotations sets annotations we own (keys under AnnotationPrefix) in
// the same update as the weights, e.g. a rollout's state, so both change
// atomically. The map is copied.
func WithAnnotations(a map[string]string) SetOption {
	return func(o *setOptions) {
		if o.annotations == nil {
			o.annotations = map[string]string{}
		}
		for k, v := range a {
			o.annotations[k] = v
		}
	}
}

// shell is the I/O loop both backends share: read, check drift, transform,
// write only if changed, retry conflicts by re-reading and recomputing.
type shell struct {
	cfg      Config
	store    store
	template *unstructured.Unstructured // non-nil: create when missing
	recorder record.EventRecorder       // nil: no Events
	drift    prometheus.Counter
	log      *slog.Logger

	// beforeWrite, when set (tests only), runs between our read and our
	// write: the window in which a concurrent writer causes a conflict.
	beforeWrite func()

	mu            sync.Mutex
	lastDriftedRV string // the object version last reported as drifted
}

func newShell(cfg Config, template *unstructured.Unstructured, reg prometheus.Registerer, log *slog.Logger) (*shell, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	drift := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shadowsplit_virtualservice_drift_total",
		Help: "Times the managed VirtualService weights were found changed by someone other than the router (once per object version).",
	})
	if reg != nil {
		if err := reg.Register(drift); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("istio: register drift metric: %w", err)
			}
			drift = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return &shell{cfg: cfg, template: template, drift: drift, log: log.With("virtualservice", cfg.Namespace+"/"+cfg.Name)}, nil
}

// Observed is one read of the VirtualService: the managed route and the
// annotations we own, from the same object version.
type Observed struct {
	Routes Routes
	// Annotations holds the AnnotationPrefix annotations other than
	// AnnotationLastApplied (e.g. a rollout's state written with
	// WithAnnotations); nil when there are none. The map is a copy.
	Annotations map[string]string
	// Version is the object's resourceVersion (Kube) or a hash of the file's
	// content (File): equal versions mean nothing changed in between.
	Version string
}

// Routes reads the managed route. When the weights drifted from what we last
// wrote it returns the current Routes together with an error wrapping
// ErrDrift (and reports the drift once per object version); on any other
// error the Routes are zero. Safe for concurrent use; blocks on I/O.
func (s *shell) Routes(ctx context.Context) (Routes, error) {
	o, err := s.Observe(ctx)
	return o.Routes, err
}

// Observe is Routes plus our annotations and the object version, from one
// read, e.g. for a rollout resuming from the state it keeps on the object.
// Errors as for Routes (with ErrDrift the Observed is filled in). Safe for
// concurrent use; blocks on I/O.
func (s *shell) Observe(ctx context.Context) (Observed, error) {
	vs, err := s.store.get(ctx)
	if err != nil {
		return Observed{}, err
	}
	r, err := s.observe(vs)
	if r == (Routes{}) && err != nil {
		return Observed{}, err
	}
	o := Observed{Routes: r, Version: vs.GetResourceVersion()}
	for k, v := range vs.GetAnnotations() {
		if strings.HasPrefix(k, AnnotationPrefix) && k != AnnotationLastApplied {
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[k] = v
		}
	}
	return o, err
}

// observe reads vs and reports drift.
func (s *shell) observe(vs *unstructured.Unstructured) (Routes, error) {
	cur, err := Read(vs, s.cfg)
	if err != nil {
		return Routes{}, err
	}
	if err := Drifted(vs, s.cfg, cur); err != nil {
		s.reportDrift(vs, err)
		return cur, err
	}
	return cur, nil
}

// SetRoutes makes the managed route carry want. It validates first (an
// invalid want never reaches the backend), writes only if something changed,
// retries conflicts by re-reading and recomputing, and refuses (ErrDrift) to
// overwrite weights someone else changed since our last write. With
// IfVersion it makes one attempt and never retries (ErrStale). Safe for
// concurrent use; blocks on I/O, bounded by ctx.
func (s *shell) SetRoutes(ctx context.Context, want Routes, opts ...SetOption) error {
	var o setOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.id(), err)
	}
	decide := func(vs *unstructured.Unstructured) (Change, error) {
		if o.ifVersion != "" && vs.GetResourceVersion() != o.ifVersion {
			return Change{}, fmt.Errorf("%s: at version %s, decision made on %s: %w", s.cfg.id(), vs.GetResourceVersion(), o.ifVersion, ErrStale)
		}
		if _, err := s.observe(vs); err != nil {
			return Change{}, err
		}
		return Change{Routes: want, Annotations: o.annotations}, nil
	}
	if o.ifVersion == "" {
		return s.write(ctx, decide)
	}
	err := s.attempt(ctx, decide)
	if apierrors.IsConflict(err) {
		return fmt.Errorf("%w: %w", ErrStale, err)
	}
	return err
}

// AcceptDrift records the current managed weights as ours, resolving
// ErrDrift without changing traffic: the operator's "keep what is there".
// Fails with ErrInvalid if the current weights are not valid Routes (fix
// them by hand first). Safe for concurrent use; blocks on I/O.
func (s *shell) AcceptDrift(ctx context.Context) error {
	return s.write(ctx, func(vs *unstructured.Unstructured) (Change, error) {
		cur, err := Read(vs, s.cfg)
		if err != nil {
			return Change{}, err
		}
		s.log.Info("accepting current weights as ours", "primary", cur.Primary.Weight, "canary", cur.Canary.Weight, "mirrorPercent", cur.MirrorPercent)
		return Change{Routes: cur}, nil
	})
}

// write runs read → decide → Apply → update under RetryOnConflict.
func (s *shell) write(ctx context.Context, decide func(*unstructured.Unstructured) (Change, error)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return s.attempt(ctx, decide) })
}

// attempt is one read → decide → Apply → update; a conflict is returned as is.
func (s *shell) attempt(ctx context.Context, decide func(*unstructured.Unstructured) (Change, error)) error {
	vs, err := s.getOrCreate(ctx)
	if err != nil {
		return err
	}
	ch, err := decide(vs)
	if err != nil {
		return err
	}
	out, changed, err := Apply(vs, s.cfg, ch)
	if err != nil || !changed {
		return err
	}
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
	written, err := s.store.update(ctx, out)
	if err != nil {
		return err // write retries a conflict from a fresh read
	}
	// The update's response is the object as stored: check that what
	// the backend kept is what we meant (a mutating webhook or a
	// schema default could differ).
	got, err := Read(written, s.cfg)
	if err != nil {
		return fmt.Errorf("%s: read back after update: %w", s.cfg.id(), err)
	}
	if !sameManaged(got, ch.Routes) {
		return fmt.Errorf("%s: read back after update: weights %d/%d mirror %v%%, wrote %d/%d mirror %v%%",
			s.cfg.id(), got.Primary.Weight, got.Canary.Weight, got.MirrorPercent,
			ch.Routes.Primary.Weight, ch.Routes.Canary.Weight, ch.Routes.MirrorPercent)
	}
	s.log.Info("updated managed route", "route", s.cfg.Route, "primary", got.Primary.Weight,
		"canary", got.Canary.Weight, "mirrorPercent", got.MirrorPercent, "resourceVersion", written.GetResourceVersion())
	return nil
}

func (s *shell) getOrCreate(ctx context.Context) (*unstructured.Unstructured, error) {
	vs, err := s.store.get(ctx)
	if err == nil || !errors.Is(err, ErrNotFound) || s.template == nil {
		return vs, err
	}
	t := s.template.DeepCopy()
	t.SetNamespace(s.cfg.Namespace)
	t.SetName(s.cfg.Name)
	t.SetResourceVersion("")
	created, err := s.store.create(ctx, t)
	if err != nil {
		return nil, err
	}
	s.log.Info("created virtualservice from template")
	return created, nil
}

// reportDrift counts and announces a drift once per object version, so a
// controller polling a drifted object does not flood Events or the metric.
func (s *shell) reportDrift(vs *unstructured.Unstructured, err error) {
	rv := vs.GetResourceVersion()
	s.mu.Lock()
	seen := rv != "" && rv == s.lastDriftedRV
	s.lastDriftedRV = rv
	s.mu.Unlock()
	if seen {
		return
	}
	s.drift.Inc()
	s.log.Warn("managed weights drifted; holding", "err", err)
	if s.recorder != nil {
		s.recorder.Event(vs, corev1.EventTypeWarning, EventReasonDrifted, err.Error())
	}
}
