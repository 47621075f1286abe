package istio

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const rbacManifest = "../../deploy/kustomize/base/rbac.yaml"

// loadRBAC parses deploy/kustomize/base/rbac.yaml and does what the kustomize
// overlay does: set the namespace and the managed VirtualService's name.
func loadRBAC(t *testing.T, ns, vsName string) (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding) {
	t.Helper()
	b, err := os.ReadFile(rbacManifest)
	require.NoError(t, err)
	var (
		sa   *corev1.ServiceAccount
		role *rbacv1.Role
		rb   *rbacv1.RoleBinding
	)
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var meta metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta))
		switch meta.Kind {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), sa))
		case "Role":
			role = &rbacv1.Role{}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), role))
		case "RoleBinding":
			rb = &rbacv1.RoleBinding{}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), rb))
		default:
			t.Fatalf("%s: unexpected kind %q", rbacManifest, meta.Kind)
		}
	}
	require.NotNil(t, sa)
	require.NotNil(t, role)
	require.NotNil(t, rb)
	sa.Namespace, role.Namespace, rb.Namespace = ns, ns, ns
	placeholders := 0
	for i, r := range role.Rules {
		if len(r.Resources) == 1 && r.Resources[0] == "virtualservices" {
			require.Equal(t, []string{"model"}, r.ResourceNames, "the base uses the placeholder name")
			role.Rules[i].ResourceNames = []string{vsName}
			placeholders++
		}
	}
	require.Equal(t, 1, placeholders)
	for i := range rb.Subjects {
		rb.Subjects[i].Namespace = ns // kustomize's namespace transformer does this
	}
	return sa, role, rb
}

func TestRBACRoleAllowsOnlyTheManagedVirtualService(t *testing.T) {
	ctx := contractCtx(t)
	admin := env.Config()
	ns, other := newNamespace(ctx, t), newNamespace(ctx, t)
	kc, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)

	sa, role, rb := loadRBAC(t, ns, "iris")
	_, err = kc.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kc.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kc.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
	require.NoError(t, err)

	// Two VirtualServices in the router's namespace, one in another.
	adminVS := vsClient(t, admin, ns)
	for _, name := range []string{"iris", "other"} {
		vs := decodeYAML(t, readFixture(t, "rich-inline.yaml"))
		vs.SetNamespace(ns)
		vs.SetName(name)
		_, err := adminVS.Create(ctx, vs, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	elsewhere := decodeYAML(t, readFixture(t, "rich-inline.yaml"))
	elsewhere.SetNamespace(other)
	_, err = vsClient(t, admin, other).Create(ctx, elsewhere, metav1.CreateOptions{})
	require.NoError(t, err)

	// The router's identity: a client certificate for the ServiceAccount's
	// user name, so the RoleBinding's ServiceAccount subject applies as is.
	user, err := env.UserConfig("system:serviceaccount:"+ns+":shadowsplit-router",
		"system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
	require.NoError(t, err)
	userDyn, err := dynamic.NewForConfig(user)
	require.NoError(t, err)
	userKC, err := kubernetes.NewForConfig(user)
	require.NoError(t, err)
	rec, stop := NewEventRecorder(userKC)
	t.Cleanup(stop)
	cfg := inlineCfg
	cfg.Namespace = ns
	k, err := NewKube(cfg, KubeDeps{Client: userDyn, Recorder: rec, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)

	// The authorizer reads bindings through an informer: wait until ours is seen.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := k.Routes(ctx)
		assert.NoError(c, err)
	}, 20*time.Second, 50*time.Millisecond)

	t.Run("can manage its VirtualService", func(t *testing.T) {
		require.NoError(t, k.SetRoutes(ctx, inlineRoutes(70, 30)))
		got, err := k.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, inlineRoutes(70, 30), got)
	})

	t.Run("can watch it through the name-restricted informer", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		seen := make(chan Routes, 4)
		done := make(chan error, 1)
		go func() {
			done <- k.Watch(wctx, func(r Routes, err error) {
				if err == nil {
					seen <- r
				}
			})
		}()
		select {
		case r := <-seen:
			assert.Equal(t, int32(30), r.CanaryWeight())
		case <-ctx.Done():
			t.Fatal("watch delivered nothing: list/watch with the field selector was not allowed")
		}
		cancel()
		require.NoError(t, <-done)
	})

	t.Run("can record its drift Event", func(t *testing.T) {
		_, err := userKC.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: "iris."},
			InvolvedObject: corev1.ObjectReference{Kind: "VirtualService", Namespace: ns, Name: "iris"},
			Reason:         EventReasonDrifted, Message: "rbac probe", Type: corev1.EventTypeWarning,
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	})

	forbidden := func(t *testing.T, what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		assert.True(t, apierrors.IsForbidden(err), "%s: want 403, got %v", what, err)
	}
	userVS := userDyn.Resource(VirtualServiceGVR)

	t.Run("is forbidden on another VirtualService in its namespace", func(t *testing.T) {
		vs, err := adminVS.Get(ctx, "other", metav1.GetOptions{})
		require.NoError(t, err)
		unstructured.SetNestedField(vs.Object, "hijack", "metadata", "labels", "touched")
		_, err = userVS.Namespace(ns).Update(ctx, vs, metav1.UpdateOptions{})
		forbidden(t, "update other", err)
		_, err = userVS.Namespace(ns).Get(ctx, "other", metav1.GetOptions{})
		forbidden(t, "get other", err)
		_, err = userVS.Namespace(ns).List(ctx, metav1.ListOptions{})
		forbidden(t, "list all", err)
		forbidden(t, "delete iris", userVS.Namespace(ns).Delete(ctx, "iris", metav1.DeleteOptions{}))
		_, err = userVS.Namespace(ns).Create(ctx, elsewhere, metav1.CreateOptions{})
		forbidden(t, "create", err)
	})

	t.Run("is forbidden on anything in another namespace", func(t *testing.T) {
		_, err := userVS.Namespace(other).Get(ctx, "iris", metav1.GetOptions{})
		forbidden(t, "get iris in the other namespace", err)
		vs, err := vsClient(t, admin, other).Get(ctx, "iris", metav1.GetOptions{})
		require.NoError(t, err)
		_, err = userVS.Namespace(other).Update(ctx, vs, metav1.UpdateOptions{})
		forbidden(t, "update iris in the other namespace", err)
		_, err = userKC.CoreV1().ConfigMaps(other).List(ctx, metav1.ListOptions{})
		forbidden(t, "list configmaps in the other namespace", err)
		_, err = userKC.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		forbidden(t, "list secrets in its own namespace", err)
	})
}
