package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// applyFieldManager is the field manager of the test's server-side applies,
// as a GitOps tool would have its own.
const applyFieldManager = "shadowsplit-deploy-test"

// warningRecorder collects the API server's Warning headers (Pod Security
// warnings, deprecated APIs, fields the server dropped).
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// applied is an overlay server-side applied into its own namespace.
type applied struct {
	ns   string
	objs []*unstructured.Unstructured
}

// adminClients returns admin clients whose warnings land in w.
func adminClients(t *testing.T, w *warningRecorder) (*rest.Config, dynamic.Interface, *kubernetes.Clientset) {
	t.Helper()
	cfg := env.Config()
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cfg, dyn, cs
}

// createRestrictedNamespace creates ns the way docs/install.md says:
// Pod Security "restricted" enforced (and warned and audited) and Istio
// sidecar injection on.
func createRestrictedNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
			"istio-injection":                    "enabled",
		},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// serverSideApply applies every object with strict field validation (an
// unknown or misspelt field is an error, not silently pruned) and returns
// each object as stored.
func serverSideApply(ctx context.Context, t *testing.T, cfg *rest.Config, dyn dynamic.Interface,
	objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	require.NoError(t, err)
	groups, err := restmapper.GetAPIGroupResources(dc)
	require.NoError(t, err)
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s %s: the API server does not serve this kind", gvk, o.GetName())
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			require.NotEmpty(t, o.GetNamespace(), "%s %s: rendered without a namespace", o.GetKind(), o.GetName())
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		body, err := json.Marshal(o.Object)
		require.NoError(t, err)
		force := true
		got, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
			FieldManager: applyFieldManager, Force: &force, FieldValidation: "Strict",
		})
		require.NoError(t, err, "server-side apply %s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		out = append(out, got)
	}
	return out
}

// applyOverlay renders the overlay into a fresh restricted namespace and
// server-side applies it, failing on any error or warning.
func applyOverlay(t *testing.T, ov overlay) applied {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := uniqueNamespace(t, "deploy-"+ov.name)
	objs := renderIn(t, ov.name, ns)

	w := &warningRecorder{}
	cfg, dyn, cs := adminClients(t, w)
	createRestrictedNamespace(ctx, t, cs, ns)
	serverSideApply(ctx, t, cfg, dyn, objs)
	assert.Empty(t, w.take(), "the API server warned while applying overlay %s", ov.name)
	return applied{ns: ns, objs: objs}
}

func TestOverlaysServerSideApplyCleanly(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := uniqueNamespace(t, "apply-"+ov.name)
			objs := renderIn(t, ov.name, ns)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				assert.Equal(t, ns, o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
			}
			// Everything the issue asks for is there, including the Istio kinds.
			for _, k := range []string{"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding",
				"PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "VirtualService", "DestinationRule"} {
				assert.Positive(t, kinds[k], "overlay %s renders no %s", ov.name, k)
			}

			w := &warningRecorder{}
			cfg, dyn, cs := adminClients(t, w)
			createRestrictedNamespace(ctx, t, cs, ns)
			first := serverSideApply(ctx, t, cfg, dyn, objs)
			assert.Empty(t, w.take(), "warnings on the first apply")

			// A second apply of the same manifests is a no-op on the server:
			// nothing the API server defaults or normalises shows up as a
			// perpetual diff for a GitOps tool.
			second := serverSideApply(ctx, t, cfg, dyn, objs)
			assert.Empty(t, w.take(), "warnings on the second apply")
			for i := range first {
				assert.Equal(t, first[i].GetResourceVersion(), second[i].GetResourceVersion(),
					"%s %s changed on a re-apply of the same manifest", first[i].GetKind(), first[i].GetName())
			}

			// The stored VirtualService is one the router accepts, at 100/0.
			var vs *unstructured.Unstructured
			for _, o := range second {
				if o.GetKind() == "VirtualService" {
					vs = o
				}
			}
			require.NotNil(t, vs)
			routes, err := istio.Read(vs, istioConfig(ns, ov.shape))
			require.NoError(t, err)
			assert.Equal(t, int32(100), routes.Primary.Weight)
			assert.Equal(t, int32(0), routes.Canary.Weight)
			if ov.shape == "tap" {
				require.NotNil(t, routes.Mirror)
				assert.Equal(t, routerName, routes.Mirror.Host)
				assert.InDelta(t, 20.0, routes.MirrorPercent, 1e-9)
			} else {
				assert.Nil(t, routes.Mirror)
			}
		})
	}
}

// istioConfig is what the router's rollout must be configured with for the
// example overlays.
func istioConfig(ns, shape string) istio.Config {
	return istio.Config{
		Namespace: ns,
		Name:      vsName,
		Shape:     istio.Shape(shape),
		Hosts:     istio.Hosts{Router: routerName, Stable: stableService, Canary: canaryService},
	}
}

// TestPodTemplatesPassPodSecurityRestricted creates a Pod from every
// Deployment's template (server-side dry run) in a namespace that enforces
// Pod Security "restricted": the API server's own PodSecurity admission
// decides. A deliberately weakened copy must be refused, which shows the
// admission check is really on.
func TestPodTemplatesPassPodSecurityRestricted(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a := applyOverlay(t, ov)
			_, _, cs := adminClients(t, &warningRecorder{})

			deployments := OfKind(a.objs, "Deployment")
			require.Len(t, deployments, 3, "router, model-stable, model-canary")
			for _, u := range deployments {
				var d appsv1.Deployment
				require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d))
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + "-", Namespace: a.ns, Labels: d.Spec.Template.Labels},
					Spec:       *d.Spec.Template.Spec.DeepCopy(),
				}
				dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
				_, err := cs.CoreV1().Pods(a.ns).Create(ctx, pod, dry)
				require.NoError(t, err, "a pod of Deployment %s is refused in a restricted namespace", d.Name)

				weak := pod.DeepCopy()
				escalate := true
				weak.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &escalate
				_, err = cs.CoreV1().Pods(a.ns).Create(ctx, weak, dry)
				require.Error(t, err, "PodSecurity admission is not enforcing: the control pod was admitted")
				assert.Contains(t, err.Error(), "violates PodSecurity \"restricted")
			}
		})
	}
}

// TestRenderedRoleLetsTheRouterMoveItsWeights binds nothing by hand: the
// overlay's own ServiceAccount, Role and RoleBinding are applied, and the
// test acts as that ServiceAccount (a client certificate with its user name
// and groups) through the router's own VirtualService backend.
func TestRenderedRoleLetsTheRouterMoveItsWeights(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a := applyOverlay(t, ov)
			_, adminDyn, _ := adminClients(t, &warningRecorder{})

			sa, err := env.UserConfig(fmt.Sprintf("system:serviceaccount:%s:%s", a.ns, routerName),
				"system:serviceaccounts", "system:serviceaccounts:"+a.ns, "system:authenticated")
			require.NoError(t, err)
			saDyn, err := dynamic.NewForConfig(sa)
			require.NoError(t, err)

			kube, err := istio.NewKube(istioConfig(a.ns, ov.shape), istio.KubeDeps{Client: saDyn})
			require.NoError(t, err)
			routes, err := kube.Routes(ctx)
			require.NoError(t, err)
			require.NoError(t, kube.SetRoutes(ctx, routes.WithCanaryWeight(10)))

			stored, err := adminDyn.Resource(istio.VirtualServiceGVR).Namespace(a.ns).Get(ctx, vsName, metav1.GetOptions{})
			require.NoError(t, err)
			got, err := istio.Read(stored, istioConfig(a.ns, ov.shape))
			require.NoError(t, err)
			assert.Equal(t, int32(90), got.Primary.Weight)
			assert.Equal(t, int32(10), got.Canary.Weight)
			// The ports written in Git survive the router's update.
			assert.Equal(t, uint32(8080), got.Primary.Port)
			assert.Equal(t, uint32(8080), got.Canary.Port)
			if ov.shape == "tap" {
				require.NotNil(t, got.Mirror)
				assert.Equal(t, uint32(8080), got.Mirror.Port)
			}
		})
	}
}

// forbidden asserts err is a 403 from the authorizer.
func forbidden(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, "%s: allowed, want forbidden", what)
	assert.True(t, strings.Contains(err.Error(), "forbidden"), "%s: want forbidden, got %v", what, err)
}
