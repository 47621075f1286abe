package istio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// VirtualServiceGVR is the resource the Kube backend reads and writes
// (Istio's storage version since 1.22).
var VirtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// KubeDeps are the Kube backend's collaborators.
type KubeDeps struct {
	// Client talks to the API server. Required. A dynamic client (not the
	// typed istio clientset) so fields this build does not know survive
	// our updates; see the package doc.
	Client dynamic.Interface
	// Recorder emits the WeightsDrifted Event; nil emits none. See
	// NewEventRecorder.
	Recorder record.EventRecorder
	// Registerer receives shadowsplit_virtualservice_drift_total; nil
	// leaves it unregistered.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// CreateFrom, when non-nil, is the VirtualService SetRoutes creates if
	// the object is missing (its namespace and name are replaced by the
	// Config's). Nil (the default) means a missing object is ErrNotFound:
	// creating is opt-in, and needs the `create` verb, which RBAC cannot
	// limit by resourceNames.
	CreateFrom *unstructured.Unstructured
}

// Kube manages the route on a VirtualService in the API server. Writes are
// Updates with the read resourceVersion (optimistic concurrency), field
// manager FieldManager and strict field validation. All methods are safe
// for concurrent use and block on API calls bounded by their ctx.
type Kube struct {
	*shell
	client dynamic.ResourceInterface
	dyn    dynamic.Interface
}

// NewKube checks cfg (Namespace, Name, Hosts) and returns the backend. It
// does no I/O.
func NewKube(cfg Config, deps KubeDeps) (*Kube, error) {
	if deps.Client == nil {
		return nil, errors.New("istio: KubeDeps.Client is required")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("istio config: missing Namespace")
	}
	sh, err := newShell(cfg, deps.CreateFrom, deps.Registerer, deps.Logger)
	if err != nil {
		return nil, err
	}
	sh.recorder = deps.Recorder
	k := &Kube{shell: sh, dyn: deps.Client, client: deps.Client.Resource(VirtualServiceGVR).Namespace(cfg.Namespace)}
	sh.store = kubeStore{k}
	return k, nil
}

type kubeStore struct{ k *Kube }

func (s kubeStore) get(ctx context.Context) (*unstructured.Unstructured, error) {
	vs, err := s.k.client.Get(ctx, s.k.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w: %w", s.k.cfg.id(), ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: get: %w", s.k.cfg.id(), err)
	}
	return vs, nil
}

func (s kubeStore) update(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out, err := s.k.client.Update(ctx, vs, metav1.UpdateOptions{
		FieldManager:    FieldManager,
		FieldValidation: metav1.FieldValidationStrict,
	})
	if err != nil {
		// %w keeps apierrors.IsConflict true for RetryOnConflict.
		return nil, fmt.Errorf("%s: update (resourceVersion %s): %w", s.k.cfg.id(), vs.GetResourceVersion(), err)
	}
	return out, nil
}

func (s kubeStore) create(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out, err := s.k.client.Create(ctx, vs, metav1.CreateOptions{
		FieldManager:    FieldManager,
		FieldValidation: metav1.FieldValidationStrict,
	})
	if apierrors.IsAlreadyExists(err) {
		// Someone created it between our get and create: start over.
		return nil, apierrors.NewConflict(VirtualServiceGVR.GroupResource(), s.k.cfg.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: create: %w", s.k.cfg.id(), err)
	}
	return out, nil
}

// Watch calls fn with the managed Routes whenever the VirtualService is
// added or changes (including our own writes), until ctx is done. The
// informer lists and watches with the field selector metadata.name=<Name>,
// so an RBAC Role limited by resourceNames allows it. err is non-nil when
// the object cannot be read as our route (ErrRouteNotFound, ErrHostMismatch,
// ...) or drifted (ErrDrift, also reported as Event and metric); on ErrDrift
// the Routes are the current ones. fn is called from one goroutine, in
// order, and should return quickly. Watch blocks until ctx is done and
// returns nil then, or an error if the first list never syncs.
func (k *Kube) Watch(ctx context.Context, fn func(Routes, error)) error {
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(k.dyn, 0, k.cfg.Namespace,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", k.cfg.Name).String()
		})
	inf := factory.ForResource(VirtualServiceGVR).Informer()
	deliver := func(obj any) {
		vs, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		fn(k.observe(vs))
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: deliver,
		UpdateFunc: func(old, cur any) {
			o, _ := old.(*unstructured.Unstructured)
			c, _ := cur.(*unstructured.Unstructured)
			if o != nil && c != nil && o.GetResourceVersion() == c.GetResourceVersion() {
				return // a resync, not a change
			}
			deliver(cur)
		},
		DeleteFunc: func(any) {
			fn(Routes{}, fmt.Errorf("%s: deleted: %w", k.cfg.id(), ErrNotFound))
		},
	}); err != nil {
		return fmt.Errorf("%s: watch: %w", k.cfg.id(), err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: watch: cache did not sync", k.cfg.id())
	}
	<-ctx.Done()
	return nil
}

// NewEventRecorder returns a recorder that writes core/v1 Events through
// client, and a stop function that flushes and shuts it down. Events are
// sent asynchronously; Recorder calls never block on the API server.
func NewEventRecorder(client kubernetes.Interface) (record.EventRecorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: FieldManager}), b.Shutdown
}
