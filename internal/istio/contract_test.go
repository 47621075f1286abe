package istio

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// backend is the contract both Kube and File implement; rollout will declare
// its own narrow subset of it.
type backend interface {
	Routes(ctx context.Context) (Routes, error)
	Observe(ctx context.Context) (Observed, error)
	SetRoutes(ctx context.Context, want Routes, opts ...SetOption) error
	AcceptDrift(ctx context.Context) error
	Watch(ctx context.Context, fn func(Routes, error)) error
}

var (
	_ backend = (*Kube)(nil)
	_ backend = (*File)(nil)
)

// harness is one fresh world (an empty namespace, or an empty directory)
// with a backend configured for it and direct access that bypasses it.
type harness struct {
	cfg Config // Namespace filled in by the factory
	b   backend
	sh  *shell
	reg *prometheus.Registry
	// seed stores vs as is (the user's manifest) behind the backend's back.
	seed func(vs *unstructured.Unstructured)
	// stored returns the object as stored, without server-owned metadata.
	stored func() *unstructured.Unstructured
	// version returns the resourceVersion (Kube) or content hash (File).
	version func() string
	// edit is an external writer: read, change, write, outside the backend.
	edit func(change func(vs *unstructured.Unstructured))
}

type factory func(t *testing.T, ctx context.Context, cfg Config) harness

func contractCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fixtureFor returns the fixture placed in the harness's namespace.
func fixtureFor(t *testing.T, name string, h harness) *unstructured.Unstructured {
	vs := decodeYAML(t, readFixture(t, name))
	vs.SetNamespace(h.cfg.Namespace)
	return vs
}

// setWeights is an external hand edit of the managed weights.
func setWeights(cfg Config, p, c int64) func(*unstructured.Unstructured) {
	return func(vs *unstructured.Unstructured) {
		mr, err := findRoute(vs, cfg.withDefaults())
		if err != nil {
			panic(err)
		}
		mr.route["route"].([]any)[0].(map[string]any)["weight"] = p
		mr.route["route"].([]any)[1].(map[string]any)["weight"] = c
	}
}

func runContract(t *testing.T, newHarness factory) {
	t.Run("reads both shapes", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		got, err := h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, inlineRoutes(90, 10), got)

		h = newHarness(t, ctx, tapCfg)
		h.seed(fixtureFor(t, "rich-tap.yaml", h))
		got, err = h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, tapRoutes(90, 10, 20), got)
	})

	t.Run("changes only the managed fields", func(t *testing.T) {
		for _, tc := range []struct {
			cfg     Config
			fixture string
			want    Routes
		}{
			{inlineCfg, "rich-inline.yaml", inlineRoutes(75, 25)},
			{tapCfg, "rich-tap.yaml", tapRoutes(50, 50, 12.5)},
		} {
			t.Run(string(tc.cfg.Shape), func(t *testing.T) {
				ctx := contractCtx(t)
				h := newHarness(t, ctx, tc.cfg)
				seeded := fixtureFor(t, tc.fixture, h)
				h.seed(seeded)
				before := h.stored()
				ann := map[string]string{AnnotationPrefix + "rollout": `{"step":2}`}

				require.NoError(t, h.b.SetRoutes(ctx, tc.want, WithAnnotations(ann)))
				got, err := h.b.Routes(ctx)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				obs, err := h.b.Observe(ctx)
				require.NoError(t, err)
				assert.Equal(t, Observed{Routes: tc.want, Annotations: ann, Version: h.version()}, obs,
					"the state annotation comes back with the weights, from one version")

				// What is stored is exactly the pure transform of what was
				// there: every other field byte for byte.
				expect, changed, err := Apply(before, h.cfg, Change{Routes: tc.want, Annotations: ann})
				require.NoError(t, err)
				require.True(t, changed)
				assert.Equal(t, encodeYAML(t, expect), encodeYAML(t, h.stored()))
			})
		}
	})

	t.Run("writes nothing when nothing changes", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(60, 40)))
		v := h.version()
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(60, 40)))
		assert.Equal(t, v, h.version(), "an unchanged route must not be written")
	})

	t.Run("rejects invalid routes before writing", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, tapCfg)
		h.seed(fixtureFor(t, "rich-tap.yaml", h))
		v := h.version()
		var writes atomic.Int32
		h.sh.beforeWrite = func() { writes.Add(1) }
		for _, bad := range []Routes{tapRoutes(100, 10, 5), tapRoutes(110, -10, 5), tapRoutes(90, 10, 150), inlineRoutes(90, 10)} {
			err := h.b.SetRoutes(ctx, bad)
			require.ErrorIs(t, err, ErrInvalid, "%+v", bad)
		}
		assert.Zero(t, writes.Load())
		assert.Equal(t, v, h.version())
	})

	t.Run("errors name the object and field", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, withRoute(inlineCfg, "canary"))
		_, err := h.b.Routes(ctx)
		require.ErrorIs(t, err, ErrNotFound)
		assert.Contains(t, err.Error(), "virtualservice "+h.cfg.Namespace+"/iris")

		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		_, err = h.b.Routes(ctx)
		require.ErrorIs(t, err, ErrRouteNotFound)
		assert.Contains(t, err.Error(), `virtualservice `+h.cfg.Namespace+`/iris: spec.http[name="canary"]: http route not found (routes: ["debug" "shadowsplit" "fallback"])`)

		h = newHarness(t, ctx, withCanary(inlineCfg, "iris-canary-v3"))
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		v := h.version()
		for _, call := range []func() error{
			func() error { _, err := h.b.Routes(ctx); return err },
			func() error { return h.b.SetRoutes(ctx, inlineRoutes(50, 50)) },
		} {
			err = call()
			require.ErrorIs(t, err, ErrHostMismatch)
			assert.Contains(t, err.Error(), `virtualservice `+h.cfg.Namespace+`/iris: spec.http[1].route[1].destination.host "iris-canary.models.svc.cluster.local": destinations do not match the configured hosts (want "iris-canary-v3")`)
		}
		assert.Equal(t, v, h.version())
	})

	t.Run("drift is reported, never overwritten, and can be accepted", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(75, 25)))

		h.edit(setWeights(h.cfg, 40, 60)) // someone edits the weights by hand
		v := h.version()

		err := h.b.SetRoutes(ctx, inlineRoutes(50, 50))
		require.ErrorIs(t, err, ErrDrift)
		assert.Contains(t, err.Error(), "weights 40/60 mirror 0%, last written 75/25")
		got, err := h.b.Routes(ctx)
		require.ErrorIs(t, err, ErrDrift)
		assert.Equal(t, inlineRoutes(40, 60), got, "Routes returns the current weights with ErrDrift")
		assert.Equal(t, v, h.version(), "drifted weights are left untouched")
		assert.Equal(t, 1.0, testutil.ToFloat64(h.sh.drift), "one drift, however often it is seen")

		require.NoError(t, h.b.AcceptDrift(ctx))
		got, err = h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, inlineRoutes(40, 60), got, "accepting keeps the traffic as it is")
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(50, 50)))
		got, err = h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, inlineRoutes(50, 50), got)
		assert.Equal(t, 1.0, testutil.ToFloat64(h.sh.drift))
		n, err := testutil.GatherAndCount(h.reg, "shadowsplit_virtualservice_drift_total")
		require.NoError(t, err)
		assert.Equal(t, 1, n, "the counter is registered on the given registerer")
	})

	t.Run("a concurrent write between read and write is retried, nothing lost", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		var once sync.Once
		var attempts atomic.Int32
		h.sh.beforeWrite = func() {
			attempts.Add(1)
			once.Do(func() {
				h.edit(func(vs *unstructured.Unstructured) {
					// Another controller edits an unrelated field.
					labels := vs.GetLabels()
					labels["concurrent"] = "writer"
					vs.SetLabels(labels)
				})
			})
		}
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(80, 20)))
		assert.Equal(t, int32(2), attempts.Load(), "the first write conflicts, the recomputed one lands")
		got, err := h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, inlineRoutes(80, 20), got)
		assert.Equal(t, "writer", h.stored().GetLabels()["concurrent"], "the other writer's change survives")
	})

	t.Run("a concurrent weight change found on retry is drift", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(90, 10)))
		var once sync.Once
		h.sh.beforeWrite = func() { once.Do(func() { h.edit(setWeights(h.cfg, 0, 100)) }) }
		err := h.b.SetRoutes(ctx, inlineRoutes(80, 20))
		require.ErrorIs(t, err, ErrDrift)
		got, _ := h.b.Routes(ctx)
		assert.Equal(t, inlineRoutes(0, 100), got, "the concurrent writer's weights stand")
	})

	t.Run("a write fenced by IfVersion never lands on a newer object", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, inlineCfg)
		h.seed(fixtureFor(t, "rich-inline.yaml", h))
		obs, err := h.b.Observe(ctx)
		require.NoError(t, err)
		require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(80, 20), IfVersion(obs.Version)), "at the read version: lands")

		// Decided on the old read: refused, nothing written, not retried.
		v := h.version()
		err = h.b.SetRoutes(ctx, inlineRoutes(50, 50), IfVersion(obs.Version))
		require.ErrorIs(t, err, ErrStale)
		assert.Equal(t, v, h.version())

		// The object changes between our read and our write: the update
		// conflicts and is reported stale instead of being recomputed.
		obs, err = h.b.Observe(ctx)
		require.NoError(t, err)
		var attempts atomic.Int32
		h.sh.beforeWrite = func() {
			if attempts.Add(1) == 1 {
				h.edit(func(vs *unstructured.Unstructured) { vs.SetLabels(map[string]string{"other": "writer"}) })
			}
		}
		err = h.b.SetRoutes(ctx, inlineRoutes(70, 30), IfVersion(obs.Version))
		require.ErrorIs(t, err, ErrStale)
		assert.Equal(t, int32(1), attempts.Load())
		got, _ := h.b.Routes(ctx)
		assert.Equal(t, inlineRoutes(80, 20), got)
	})

	t.Run("creating is opt-in", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, tapCfg)
		err := h.b.SetRoutes(ctx, tapRoutes(100, 0, 10))
		require.ErrorIs(t, err, ErrNotFound)
		h.sh.template = fixtureFor(t, "rich-tap.yaml", h)
		require.NoError(t, h.b.SetRoutes(ctx, tapRoutes(100, 0, 10)))
		got, err := h.b.Routes(ctx)
		require.NoError(t, err)
		assert.Equal(t, tapRoutes(100, 0, 10), got)
	})

	t.Run("watch sees an external edit", func(t *testing.T) {
		ctx := contractCtx(t)
		h := newHarness(t, ctx, tapCfg)
		h.seed(fixtureFor(t, "rich-tap.yaml", h))
		type seen struct {
			r   Routes
			err error
		}
		events := make(chan seen, 16)
		wctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- h.b.Watch(wctx, func(r Routes, err error) { events <- seen{r, err} }) }()
		next := func() seen {
			select {
			case s := <-events:
				return s
			case <-ctx.Done():
				t.Fatal("watch delivered nothing")
			}
			return seen{}
		}
		first := next()
		require.NoError(t, first.err)
		assert.Equal(t, tapRoutes(90, 10, 20), first.r)

		h.edit(func(vs *unstructured.Unstructured) {
			mr, _ := findRoute(vs, h.cfg.withDefaults())
			mr.route["mirrorPercentage"] = map[string]any{"value": int64(55)}
		})
		s := next()
		require.NoError(t, s.err, "no write of ours yet, so not drift")
		assert.Equal(t, 55.0, s.r.MirrorPercent)

		stop()
		require.NoError(t, <-done)
	})
}
