// Package kubee2e proves the rollout loop against a real kube-apiserver with
// Istio's CRDs (internal/kubetest): steps, rollback, resume after a
// restart, the fenced write, drift, Events and leader election. It holds
// only tests, kept apart so the rollout package's own tests run without the
// API server binaries.
package kubee2e

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/kubetest"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
	"github.com/shadowsplit/shadowsplit/internal/rollout/rollouttest"
)

var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }

const manifest = rollouttest.InlineManifest

type fixture struct {
	ns    string
	route istio.Config
	dyn   dynamic.Interface
	kube  kubernetes.Interface
	vs    dynamic.ResourceInterface
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newFixture creates a namespace holding the VirtualService.
func newFixture(ctx context.Context, t *testing.T) *fixture {
	t.Helper()
	kc, err := kubernetes.NewForConfig(env.Config())
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(env.Config())
	require.NoError(t, err)
	ns, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rollout-"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	obj := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(manifest), &obj.Object))
	f := &fixture{ns: ns.Name, dyn: dyn, kube: kc,
		route: istio.Config{Namespace: ns.Name, Name: "model", Hosts: istio.Hosts{Router: "model-router", Canary: "model-canary"}}}
	f.vs = dyn.Resource(istio.VirtualServiceGVR).Namespace(ns.Name)
	_, err = f.vs.Create(ctx, obj, metav1.CreateOptions{})
	require.NoError(t, err)
	return f
}

// controller builds a Controller on the fixture, as one router replica.
func (f *fixture) controller(t *testing.T, src evidence.Source, clk *clock, withEvents bool) *rollout.Controller {
	t.Helper()
	kd := istio.KubeDeps{Client: f.dyn, Logger: slog.New(slog.DiscardHandler)}
	deps := rollout.ControllerDeps{Evidence: src, Logger: slog.New(slog.DiscardHandler)}
	if withEvents {
		rec, stop := istio.NewEventRecorder(f.kube)
		t.Cleanup(stop)
		deps.Recorder, kd.Recorder = rec, rec
	}
	tg, err := rollout.NewKubeTarget(f.route, kd)
	require.NoError(t, err)
	deps.Target = tg
	c, err := rollout.NewController(rollout.ControllerConfig{
		Rollout:  rollout.Config{Gates: rollout.Gates{MinPairs: 500, MinDwell: 2 * time.Minute}},
		Interval: 100 * time.Millisecond, Now: clk.Now, NewID: func() string { return "r1" },
	}, deps)
	require.NoError(t, err)
	return c
}

// read returns the weights and the state on the server.
func (f *fixture) read(ctx context.Context, t *testing.T) (istio.Routes, rollout.State, *unstructured.Unstructured) {
	t.Helper()
	vs, err := f.vs.Get(ctx, "model", metav1.GetOptions{})
	require.NoError(t, err)
	r, err := istio.Read(vs, f.route)
	require.NoError(t, err)
	var s rollout.State
	if v, ok := vs.GetAnnotations()[rollout.AnnotationState]; ok {
		s, err = rollout.DecodeState(v)
		require.NoError(t, err)
	}
	return r, s, vs
}

// The shared fixtures, under the names these tests use.
type (
	clock        = rollouttest.Clock
	steadyCanary = rollouttest.SteadyCanary
)

var newClock = rollouttest.NewClock
