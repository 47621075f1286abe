package kubetest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// env is shared by every test of the package; tests isolate themselves by
// namespace.
var env *Env

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelper())
	}
	os.Exit(Main(m, &env))
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace with a name unique to the test.
func newNamespace(ctx context.Context, t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	ns, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kubetest-"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return ns.Name
}

func TestIstioCRDsEstablishedAndServedAtV1(t *testing.T) {
	ctx := testCtx(t)
	cs, err := apiextensionsclient.NewForConfig(env.Config())
	require.NoError(t, err)

	assert.Contains(t, env.CRDs(), "virtualservices.networking.istio.io")
	for _, name := range env.CRDs() {
		crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, name)
		assert.True(t, conditionTrue(crd, apiextensionsv1.Established), "%s not Established", name)
	}

	vs, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "virtualservices.networking.istio.io", metav1.GetOptions{})
	require.NoError(t, err)
	var served []string
	for _, v := range vs.Spec.Versions {
		if v.Served {
			served = append(served, v.Name)
		}
		if v.Storage {
			assert.Equal(t, "v1", v.Name, "storage version")
		}
	}
	assert.Contains(t, served, "v1")

	// Discovery is what clients (and kubectl) resolve the resource through.
	kc, err := kubernetes.NewForConfig(env.Config())
	require.NoError(t, err)
	res, err := kc.Discovery().ServerResourcesForGroupVersion("networking.istio.io/v1")
	require.NoError(t, err)
	var names []string
	for _, r := range res.APIResources {
		names = append(names, r.Name)
	}
	assert.Contains(t, names, "virtualservices")
}

func conditionTrue(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == t {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

func testVirtualService(name string) *networkingv1.VirtualService {
	return &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingapi.VirtualService{
			Hosts: []string{"model.example.svc.cluster.local"},
			Http: []*networkingapi.HTTPRoute{{
				Name: "shadowsplit",
				Route: []*networkingapi.HTTPRouteDestination{
					{Destination: &networkingapi.Destination{Host: "model-router"}, Weight: 90},
					{Destination: &networkingapi.Destination{Host: "model-canary"}, Weight: 10},
				},
			}},
		},
	}
}

func TestVirtualServiceRoundTripsThroughTheServer(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(ctx, t, env.Config())
	ic, err := istioclient.NewForConfig(env.Config())
	require.NoError(t, err)

	created, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, testVirtualService("model"), metav1.CreateOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, created.ResourceVersion)

	got, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, "model", metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, got.Spec.Http, 1)
	route := got.Spec.Http[0]
	assert.Equal(t, "shadowsplit", route.Name)
	require.Len(t, route.Route, 2)
	assert.Equal(t, "model-router", route.Route[0].Destination.Host)
	assert.Equal(t, int32(90), route.Route[0].Weight)
	assert.Equal(t, "model-canary", route.Route[1].Destination.Host)
	assert.Equal(t, int32(10), route.Route[1].Weight)

	// The CRD's schema is enforced: a destination without host is rejected.
	bad := testVirtualService("bad")
	bad.Spec.Http[0].Route[1].Destination.Host = ""
	_, err = ic.NetworkingV1().VirtualServices(ns).Create(ctx, bad, metav1.CreateOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err), "want 422 Invalid, got %v", err)
}

func TestUserConfigIsSubjectToRBAC(t *testing.T) {
	ctx := testCtx(t)
	admin := env.Config()
	ns := newNamespace(ctx, t, admin)
	other := newNamespace(ctx, t, admin)
	aic, err := istioclient.NewForConfig(admin)
	require.NoError(t, err)
	_, err = aic.NetworkingV1().VirtualServices(ns).Create(ctx, testVirtualService("model"), metav1.CreateOptions{})
	require.NoError(t, err)

	userCfg, err := env.UserConfig("router-"+ns, "shadowsplit-routers")
	require.NoError(t, err)
	uic, err := istioclient.NewForConfig(userCfg)
	require.NoError(t, err)

	_, err = uic.NetworkingV1().VirtualServices(ns).Get(ctx, "model", metav1.GetOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err), "without RBAC: want 403, got %v", err)

	// Bind through the group, so the test also proves groups reach the server.
	kc, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	_, err = kc.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "vs-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"networking.istio.io"},
			Resources: []string{"virtualservices"},
			Verbs:     []string{"get", "list"},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kc.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vs-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "vs-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "shadowsplit-routers"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The RBAC authorizer reads through an informer: the binding takes
	// effect a moment after it is created.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := uic.NetworkingV1().VirtualServices(ns).Get(ctx, "model", metav1.GetOptions{})
		if assert.NoError(c, err) {
			assert.Equal(c, "model", got.Name)
		}
	}, 20*time.Second, 50*time.Millisecond)

	// Only what the Role grants, only where it is bound.
	_, err = uic.NetworkingV1().VirtualServices(ns).Create(ctx, testVirtualService("another"), metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "create is not granted: want 403, got %v", err)
	_, err = uic.NetworkingV1().VirtualServices(other).List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "other namespace: want 403, got %v", err)
}

func TestWriteKubeconfigGivesAdminAccess(t *testing.T) {
	ctx := testCtx(t)
	path := t.TempDir() + "/kubeconfig"
	require.NoError(t, env.WriteKubeconfig(path))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the file holds the admin key")

	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	assert.Equal(t, env.Config().Host, cfg.Host)
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kubeconfig-"},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "the kubeconfig identity is cluster admin")
}
