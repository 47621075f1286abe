package deploytest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// TestRenderedRoleIsLeastPrivilege acts as the router's ServiceAccount
// against the applied overlay: what leader election and Events need works;
// Secrets, ConfigMaps, Pods, other VirtualServices, creating or deleting
// the managed one, and other namespaces are forbidden.
func TestRenderedRoleIsLeastPrivilege(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := applyOverlay(t, overlays[0])
	_, adminDyn, adminCS := adminClients(t, &warningRecorder{})

	// A second VirtualService in the same namespace, and the managed name in
	// another namespace: neither is the router's.
	other := Find(a.objs, "VirtualService", vsName).DeepCopy()
	other.SetName("other-model")
	other.SetResourceVersion("")
	_, err := adminDyn.Resource(istio.VirtualServiceGVR).Namespace(a.ns).Create(ctx, other, metav1.CreateOptions{})
	require.NoError(t, err)
	elsewhere := uniqueNamespace(t, "elsewhere")
	_, err = adminCS.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: elsewhere}}, metav1.CreateOptions{})
	require.NoError(t, err)
	same := Find(a.objs, "VirtualService", vsName).DeepCopy()
	same.SetNamespace(elsewhere)
	_, err = adminDyn.Resource(istio.VirtualServiceGVR).Namespace(elsewhere).Create(ctx, same, metav1.CreateOptions{})
	require.NoError(t, err)

	sa, err := env.UserConfig(fmt.Sprintf("system:serviceaccount:%s:%s", a.ns, routerName),
		"system:serviceaccounts", "system:serviceaccounts:"+a.ns, "system:authenticated")
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(sa)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(sa)
	require.NoError(t, err)
	vs := dyn.Resource(istio.VirtualServiceGVR).Namespace(a.ns)

	// Allowed: the managed VirtualService, by name and by the informer's
	// field-selected list and watch.
	_, err = vs.Get(ctx, vsName, metav1.GetOptions{})
	require.NoError(t, err)
	byName := metav1.ListOptions{FieldSelector: "metadata.name=" + vsName}
	_, err = vs.List(ctx, byName)
	require.NoError(t, err)
	w, err := vs.Watch(ctx, byName)
	require.NoError(t, err)
	w.Stop()

	// Allowed: leader election on the Lease named in the Role.
	leases := cs.CoordinationV1().Leases(a.ns)
	holder := "router-0"
	lease, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: routerName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	lease, err = leases.Get(ctx, routerName, metav1.GetOptions{})
	require.NoError(t, err)
	holder2 := "router-1"
	lease.Spec.HolderIdentity = &holder2
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	require.NoError(t, err)

	// Allowed: Events (drift, rollout transitions).
	_, err = cs.CoreV1().Events(a.ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "model."},
		InvolvedObject: corev1.ObjectReference{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Namespace: a.ns, Name: vsName},
		Reason:         "WeightsChanged", Message: "test", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// Forbidden.
	_, err = vs.Get(ctx, "other-model", metav1.GetOptions{})
	forbidden(t, err, "get another VirtualService")
	_, err = vs.List(ctx, metav1.ListOptions{})
	forbidden(t, err, "list every VirtualService")
	err = vs.Delete(ctx, vsName, metav1.DeleteOptions{})
	forbidden(t, err, "delete the managed VirtualService")
	created := other.DeepCopy()
	created.SetName("new-model")
	_, err = vs.Create(ctx, created, metav1.CreateOptions{})
	forbidden(t, err, "create a VirtualService")
	_, err = dyn.Resource(istio.VirtualServiceGVR).Namespace(elsewhere).Get(ctx, vsName, metav1.GetOptions{})
	forbidden(t, err, "get the same name in another namespace")
	_, err = leases.Get(ctx, "someone-elses-lease", metav1.GetOptions{})
	forbidden(t, err, "get another Lease")
	_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: routerName}}, metav1.CreateOptions{})
	// Allowed by RBAC (create cannot be limited by name): the server answers
	// AlreadyExists, not Forbidden.
	assert.True(t, apierrors.IsAlreadyExists(err), "create the existing Lease: %v", err)
	err = leases.Delete(ctx, routerName, metav1.DeleteOptions{})
	forbidden(t, err, "delete the Lease")
	_, err = cs.CoreV1().Secrets(a.ns).Get(ctx, routerSecret, metav1.GetOptions{})
	forbidden(t, err, "read the router's Secret through the API")
	_, err = cs.CoreV1().ConfigMaps(a.ns).List(ctx, metav1.ListOptions{})
	forbidden(t, err, "list ConfigMaps")
	_, err = cs.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{})
	forbidden(t, err, "list Pods")
	_, err = cs.AppsV1().Deployments(a.ns).Get(ctx, routerName, metav1.GetOptions{})
	forbidden(t, err, "get its own Deployment")
	_, err = cs.CoreV1().Events(elsewhere).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "x."},
		InvolvedObject: corev1.ObjectReference{Kind: "VirtualService", Namespace: elsewhere, Name: vsName},
		Reason:         "X", Message: "x", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	forbidden(t, err, "create an Event in another namespace")
}

// TestRBACShape checks the rendered RBAC objects without a server: nothing
// cluster-scoped, no wildcards, the VirtualService rule names exactly the
// overlay's VirtualService, and the binding ties the Role to the
// ServiceAccount the router's pods run as.
func TestRBACShape(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, ov.name)
			for _, o := range objs {
				assert.NotContains(t, []string{"ClusterRole", "ClusterRoleBinding", "Namespace",
					"CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"},
					o.GetKind(), "overlay %s renders a cluster-scoped %s %s", ov.name, o.GetKind(), o.GetName())
			}
			roles := OfKind(objs, "Role")
			require.Len(t, roles, 1)
			var role rbacv1.Role
			fromUnstructured(t, roles[0], &role)

			vsObjs := OfKind(objs, "VirtualService")
			require.Len(t, vsObjs, 1)
			var sawVS, sawLeaseCreate, sawLeaseUpdate, sawEvents bool
			for i, r := range role.Rules {
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
					assert.NotContains(t, list, "*", "rule %d has a wildcard", i)
				}
				assert.Empty(t, r.NonResourceURLs, "rule %d", i)
				for _, res := range r.Resources {
					assert.NotContains(t, []string{"secrets", "configmaps", "pods", "pods/exec", "serviceaccounts/token",
						"roles", "rolebindings", "deployments"}, res, "rule %d grants %s", i, res)
					switch res {
					case "virtualservices":
						sawVS = true
						assert.Equal(t, []string{vsObjs[0].GetName()}, r.ResourceNames,
							"the VirtualService rule must name exactly the overlay's VirtualService")
						assert.NotContains(t, r.Verbs, "create")
						assert.NotContains(t, r.Verbs, "delete")
						assert.NotContains(t, r.Verbs, "deletecollection")
						assert.Subset(t, r.Verbs, []string{"get", "update"})
					case "leases":
						assert.NotContains(t, r.Verbs, "delete")
						if slices.Contains(r.Verbs, "create") {
							sawLeaseCreate = true
						}
						if slices.Contains(r.Verbs, "update") {
							sawLeaseUpdate = true
							assert.Equal(t, []string{routerName}, r.ResourceNames, "lease get/update must be limited by name")
						}
					case "events":
						sawEvents = sawEvents || slices.Contains(r.Verbs, "create")
					}
				}
			}
			assert.True(t, sawVS, "no VirtualService rule")
			assert.True(t, sawLeaseCreate && sawLeaseUpdate, "leader election needs leases create and get/update")
			assert.True(t, sawEvents, "no events create")

			bindings := OfKind(objs, "RoleBinding")
			require.Len(t, bindings, 1)
			var rb rbacv1.RoleBinding
			fromUnstructured(t, bindings[0], &rb)
			assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}, rb.RoleRef)
			require.Len(t, rb.Subjects, 1)
			assert.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: routerName, Namespace: exampleNamespace}, rb.Subjects[0])

			router := deployment(t, objs, routerName)
			assert.Equal(t, routerName, router.Spec.Template.Spec.ServiceAccountName)
			require.NotNil(t, Find(objs, "ServiceAccount", routerName))
		})
	}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true),
		"%s %s", u.GetKind(), u.GetName())
}
