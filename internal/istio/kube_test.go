package istio

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/shadowsplit/shadowsplit/internal/kubetest"
)

// env is the real etcd + kube-apiserver with Istio's CRDs, shared by the
// package's tests; each test works in its own namespace.
var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }

func newNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	kc, err := kubernetes.NewForConfig(env.Config())
	require.NoError(t, err)
	ns, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "istio-"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return ns.Name
}

func vsClient(t *testing.T, cfg *rest.Config, ns string) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	return dyn.Resource(VirtualServiceGVR).Namespace(ns)
}

// stripServerFields removes what the API server owns, leaving the manifest.
func stripServerFields(vs *unstructured.Unstructured) *unstructured.Unstructured {
	vs = vs.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"} {
		unstructured.RemoveNestedField(vs.Object, "metadata", f)
	}
	return vs
}

func newKubeHarness(t *testing.T, ctx context.Context, cfg Config) harness {
	t.Helper()
	cfg.Namespace = newNamespace(ctx, t)
	admin := env.Config()
	dyn, err := dynamic.NewForConfig(admin)
	require.NoError(t, err)
	kc, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	rec, stop := NewEventRecorder(kc)
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	k, err := NewKube(cfg, KubeDeps{Client: dyn, Recorder: rec, Registerer: reg})
	require.NoError(t, err)
	vss := dyn.Resource(VirtualServiceGVR).Namespace(cfg.Namespace)
	get := func() *unstructured.Unstructured {
		vs, err := vss.Get(ctx, cfg.Name, metav1.GetOptions{})
		require.NoError(t, err)
		return vs
	}
	return harness{
		cfg: cfg, b: k, sh: k.shell, reg: reg,
		seed: func(vs *unstructured.Unstructured) {
			_, err := vss.Create(ctx, vs, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
			require.NoError(t, err, "the fixture must be valid for the CRD schema, with no unknown field")
		},
		stored: func() *unstructured.Unstructured { return stripServerFields(get()) },
		version: func() string {
			vs, err := vss.Get(ctx, cfg.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return ""
			}
			require.NoError(t, err)
			return vs.GetResourceVersion()
		},
		edit: func(change func(*unstructured.Unstructured)) {
			require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
				vs := get()
				change(vs)
				_, err := vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
				return err
			}))
		},
	}
}

func TestKubeContract(t *testing.T) { runContract(t, newKubeHarness) }

func TestKubeDriftEmitsEvent(t *testing.T) {
	ctx := contractCtx(t)
	h := newKubeHarness(t, ctx, inlineCfg)
	h.seed(fixtureFor(t, "rich-inline.yaml", h))
	require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(90, 10)))
	h.edit(setWeights(h.cfg, 100, 0))
	require.ErrorIs(t, h.b.SetRoutes(ctx, inlineRoutes(80, 20)), ErrDrift)

	kc, err := kubernetes.NewForConfig(env.Config())
	require.NoError(t, err)
	sel := fields.Set{"involvedObject.name": "iris", "reason": EventReasonDrifted}.String()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		evs, err := kc.CoreV1().Events(h.cfg.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
		if assert.NoError(c, err) && assert.Len(c, evs.Items, 1) {
			ev := evs.Items[0]
			assert.Equal(c, corev1.EventTypeWarning, ev.Type)
			assert.Equal(c, "VirtualService", ev.InvolvedObject.Kind)
			assert.Equal(c, "networking.istio.io/v1", ev.InvolvedObject.APIVersion)
			assert.Contains(c, ev.Message, "weights 100/0 mirror 0%, last written 90/10")
		}
	}, 20*time.Second, 50*time.Millisecond, "the recorder sends Events asynchronously")
}

func TestKubeWritesCarryFieldManager(t *testing.T) {
	ctx := contractCtx(t)
	h := newKubeHarness(t, ctx, inlineCfg)
	h.seed(fixtureFor(t, "rich-inline.yaml", h))
	require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(85, 15)))
	vs, err := vsClient(t, env.Config(), h.cfg.Namespace).Get(ctx, "iris", metav1.GetOptions{})
	require.NoError(t, err)
	var managers []string
	for _, mf := range vs.GetManagedFields() {
		managers = append(managers, mf.Manager+"/"+string(mf.Operation))
	}
	assert.Contains(t, managers, FieldManager+"/Update")
}

// TestCRDSchemaVersusValidate shows which bad values the API server's Istio
// CRD schema rejects by itself and which it accepts, so that Routes.Validate
// must catch them before writing.
func TestCRDSchemaVersusValidate(t *testing.T) {
	ctx := contractCtx(t)
	h := newKubeHarness(t, ctx, tapCfg)
	h.seed(fixtureFor(t, "rich-tap.yaml", h))
	vss := vsClient(t, env.Config(), h.cfg.Namespace)
	strict := metav1.UpdateOptions{FieldManager: FieldManager, FieldValidation: metav1.FieldValidationStrict}
	try := func(change func(route map[string]any)) error {
		vs, err := vss.Get(ctx, "iris", metav1.GetOptions{})
		require.NoError(t, err)
		mr, err := findRoute(vs, tapCfg.withDefaults())
		require.NoError(t, err)
		change(mr.route)
		_, err = vss.Update(ctx, vs, strict)
		return err
	}
	weight := func(v any) func(map[string]any) {
		return func(r map[string]any) { r["route"].([]any)[1].(map[string]any)["weight"] = v }
	}

	t.Run("schema rejects", func(t *testing.T) {
		for name, change := range map[string]func(map[string]any){
			"weight as string": weight("10"),
			"weight as float":  weight(10.5),
			"unknown field":    func(r map[string]any) { r["weigth"] = int64(10) },
			"mirror without host": func(r map[string]any) {
				r["mirror"] = map[string]any{"subset": "x"}
			},
		} {
			err := try(change)
			require.Error(t, err, name)
			assert.True(t, apierrors.IsInvalid(err) || apierrors.IsBadRequest(err), "%s: want 422/400, got %v", name, err)
		}
	})

	t.Run("schema accepts, Validate rejects", func(t *testing.T) {
		for name, tc := range map[string]struct {
			change func(map[string]any)
			routes Routes
		}{
			"negative weight": {weight(int64(-10)), tapRoutes(110, -10, 20)},
			"sum 110":         {weight(int64(20)), tapRoutes(90, 20, 20)},
			"mirror 150%": {func(r map[string]any) { r["mirrorPercentage"] = map[string]any{"value": 150.0} },
				tapRoutes(90, 10, 150)},
		} {
			require.NoError(t, try(tc.change), "%s: the CRD schema lets this through", name)
			require.ErrorIs(t, tc.routes.Validate(), ErrInvalid, name)
		}
		// Restore, then show SetRoutes refuses before any write.
		require.NoError(t, try(func(r map[string]any) {
			r["route"].([]any)[0].(map[string]any)["weight"] = int64(90)
			r["route"].([]any)[1].(map[string]any)["weight"] = int64(10)
			r["mirrorPercentage"] = map[string]any{"value": int64(20)}
		}))
		v := h.version()
		require.ErrorIs(t, h.b.SetRoutes(ctx, tapRoutes(110, -10, 20)), ErrInvalid)
		require.ErrorIs(t, h.b.SetRoutes(ctx, tapRoutes(90, 10, 150)), ErrInvalid)
		assert.Equal(t, v, h.version(), "nothing reached the server")
	})
}
