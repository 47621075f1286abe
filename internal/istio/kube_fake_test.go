package istio

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Narrow units on a fake dynamic client: what the real server cannot be made
// to do on demand (a 5xx), and the exact options our writes carry.
func newFakeKube(t *testing.T) (*Kube, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	vs := decodeYAML(t, readFixture(t, "rich-inline.yaml"))
	vs.SetResourceVersion("7")
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{VirtualServiceGVR: "VirtualServiceList"}, vs)
	k, err := NewKube(inlineCfg, KubeDeps{Client: client})
	require.NoError(t, err)
	return k, client
}

func TestKubeServerErrorIsNotRetriedAndNamesTheObject(t *testing.T) {
	k, client := newFakeKube(t)
	var updates atomic.Int32
	client.PrependReactor("update", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates.Add(1)
		return true, nil, apierrors.NewInternalError(errors.New("etcdserver: leader changed"))
	})
	err := k.SetRoutes(t.Context(), inlineRoutes(70, 30))
	require.Error(t, err)
	assert.True(t, apierrors.IsInternalError(err), "the API error stays inspectable: %v", err)
	assert.Contains(t, err.Error(), "virtualservice models/iris: update")
	assert.Equal(t, int32(1), updates.Load(), "only conflicts are retried; the caller's next tick retries the rest")
}

func TestKubeConflictsAreRetriedUntilTheBudgetEnds(t *testing.T) {
	k, client := newFakeKube(t)
	var updates atomic.Int32
	client.PrependReactor("update", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates.Add(1)
		return true, nil, apierrors.NewConflict(VirtualServiceGVR.GroupResource(), "iris", errors.New("stale"))
	})
	err := k.SetRoutes(t.Context(), inlineRoutes(70, 30))
	require.Error(t, err)
	assert.True(t, apierrors.IsConflict(err))
	assert.Equal(t, int32(5), updates.Load(), "retry.DefaultRetry allows 5 attempts")
}

func TestKubeUpdateOptions(t *testing.T) {
	k, client := newFakeKube(t)
	var opts metav1.UpdateOptions
	var rv string
	client.PrependReactor("update", "virtualservices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.UpdateActionImpl)
		opts = u.UpdateOptions
		rv = u.Object.(metav1.Object).GetResourceVersion()
		return false, nil, nil // let the tracker store it
	})
	require.NoError(t, k.SetRoutes(t.Context(), inlineRoutes(70, 30)))
	assert.Equal(t, FieldManager, opts.FieldManager)
	assert.Equal(t, metav1.FieldValidationStrict, opts.FieldValidation)
	assert.Equal(t, "7", rv, "the update carries the resourceVersion it read (optimistic concurrency)")
}
