package istio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var (
	// The inline fixture names the canary by FQDN, so it matches in any
	// namespace the API server tests use.
	inlineCfg = Config{Namespace: "models", Name: "iris", Shape: ShapeInline,
		Hosts: Hosts{Router: "iris-router", Canary: "iris-canary.models.svc.cluster.local"}}
	tapCfg = Config{Namespace: "models", Name: "iris", Shape: ShapeTap,
		Hosts: Hosts{Router: "iris-router", Canary: "iris-canary", Stable: "iris-stable"}}
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func decodeYAML(t *testing.T, b []byte) *unstructured.Unstructured {
	t.Helper()
	vs, err := decodeManifest(b)
	require.NoError(t, err)
	return vs
}

func encodeYAML(t *testing.T, vs *unstructured.Unstructured) string {
	t.Helper()
	b, err := encodeManifest(vs)
	require.NoError(t, err)
	return string(b)
}

func TestFixturesAreCanonical(t *testing.T) {
	// The byte-for-byte tests below are only meaningful if decoding and
	// encoding an untouched fixture gives the same bytes.
	for _, name := range []string{"rich-inline.yaml", "rich-tap.yaml"} {
		b := readFixture(t, name)
		assert.Equal(t, string(b), encodeYAML(t, decodeYAML(t, b)), name)
	}
}

func TestReadFixtures(t *testing.T) {
	got, err := Read(decodeYAML(t, readFixture(t, "rich-inline.yaml")), inlineCfg)
	require.NoError(t, err)
	assert.Equal(t, inlineRoutes(90, 10), got)

	got, err = Read(decodeYAML(t, readFixture(t, "rich-tap.yaml")), tapCfg)
	require.NoError(t, err)
	assert.Equal(t, tapRoutes(90, 10, 20), got)
}

func TestApplyRoundTripsEverythingButTheManagedFields(t *testing.T) {
	in := readFixture(t, "rich-inline.yaml")
	vs := decodeYAML(t, in)
	before := vs.DeepCopy()

	out, changed, err := Apply(vs, inlineCfg, Change{Routes: inlineRoutes(75, 25),
		Annotations: map[string]string{AnnotationPrefix + "rollout": "step-2"}})
	require.NoError(t, err)
	require.True(t, changed)
	assert.Equal(t, before, vs, "Apply must not modify its input")

	want := string(in)
	want = strings.Replace(want, "      weight: 90\n", "      weight: 75\n", 1)
	want = strings.Replace(want, "      weight: 10\n", "      weight: 25\n", 1)
	want = strings.Replace(want, "    team.example.com/owner", "    shadowsplit.io/last-applied-weights: '{\"weights\":[75,25]}'\n"+
		"    shadowsplit.io/rollout: step-2\n    team.example.com/owner", 1)
	assert.Equal(t, want, encodeYAML(t, out))

	// Applying the same change again is a no-op: nothing to write.
	again, changed, err := Apply(out, inlineCfg, Change{Routes: inlineRoutes(75, 25),
		Annotations: map[string]string{AnnotationPrefix + "rollout": "step-2"}})
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, encodeYAML(t, out), encodeYAML(t, again))
}

func TestApplyTap(t *testing.T) {
	in := readFixture(t, "rich-tap.yaml")
	out, changed, err := Apply(decodeYAML(t, in), tapCfg, Change{Routes: tapRoutes(50, 50, 37.5)})
	require.NoError(t, err)
	require.True(t, changed)
	want := string(in)
	want = strings.Replace(want, "      value: 20\n", "      value: 37.5\n", 1)
	want = strings.Replace(want, "      weight: 90\n", "      weight: 50\n", 1)
	want = strings.Replace(want, "      weight: 10\n", "      weight: 50\n", 1)
	want = strings.Replace(want, "    team.example.com/owner", "    shadowsplit.io/last-applied-weights: '{\"weights\":[50,50],\"mirrorPercent\":37.5}'\n"+
		"    team.example.com/owner", 1)
	assert.Equal(t, want, encodeYAML(t, out))
}

func TestApplyTapAddsMissingMirror(t *testing.T) {
	vs := decodeYAML(t, readFixture(t, "rich-tap.yaml"))
	mr, err := findRoute(vs, tapCfg.withDefaults())
	require.NoError(t, err)
	delete(mr.route, "mirror")
	delete(mr.route, "mirrorPercentage")

	cur, err := Read(vs, tapCfg)
	require.NoError(t, err)
	assert.Equal(t, 0.0, cur.MirrorPercent, "no mirror reads as 0%")
	assert.Equal(t, "iris-router", cur.Mirror.Host)

	want := cur
	want.MirrorPercent = 10
	want.Mirror = &Destination{Host: "iris-router", Port: 8080}
	_, _, err = Apply(vs, tapCfg, Change{Routes: want})
	require.ErrorIs(t, err, ErrHostMismatch, "port 8080 differs from the implicit mirror read back")

	want.Mirror = cur.Mirror
	out, changed, err := Apply(vs, tapCfg, Change{Routes: want})
	require.NoError(t, err)
	require.True(t, changed)
	got, err := Read(out, tapCfg)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestApplyRejects(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		fixture string
		edit    func(vs *unstructured.Unstructured)
		want    Routes
		ann     map[string]string
		is      error
		msg     string
	}{
		{name: "route not found", cfg: withRoute(inlineCfg, "canary"), want: inlineRoutes(90, 10), is: ErrRouteNotFound,
			msg: `virtualservice models/iris: spec.http[name="canary"]: http route not found (routes: ["debug" "shadowsplit" "fallback"])`},
		{name: "canary host not configured", cfg: withCanary(inlineCfg, "iris-canary-v3"), want: inlineRoutes(90, 10), is: ErrHostMismatch,
			msg: `spec.http[1].route[1].destination.host "iris-canary.models.svc.cluster.local"`},
		{name: "requested subset differs", want: func() Routes { r := inlineRoutes(90, 10); r.Canary.Subset = "v3"; return r }(),
			is: ErrHostMismatch, msg: "spec.http[1].route[1].destination"},
		{name: "weights sum to 110", want: inlineRoutes(100, 10), is: ErrInvalid, msg: "virtualservice models/iris: invalid routes: weights 100+10=110"},
		{name: "negative weight", want: inlineRoutes(110, -10), is: ErrInvalid, msg: "canary.weight -10"},
		{name: "shape differs from config", want: tapRoutes(90, 10, 5), is: ErrInvalid, msg: `shape "tap"`},
		{name: "foreign annotation", want: inlineRoutes(90, 10), ann: map[string]string{"team.example.com/owner": "x"}, is: ErrInvalid,
			msg: `metadata.annotations["team.example.com/owner"]`},
		{name: "three destinations", want: inlineRoutes(90, 10), is: ErrHostMismatch, msg: "has 3 destinations",
			edit: func(vs *unstructured.Unstructured) {
				mr, _ := findRoute(vs, inlineCfg.withDefaults())
				mr.route["route"] = append(mr.route["route"].([]any), map[string]any{"destination": map[string]any{"host": "x"}})
			}},
		{name: "weight as float in file", want: inlineRoutes(90, 10), is: ErrInvalid, msg: "spec.http[1].route[0].weight 89.5",
			edit: func(vs *unstructured.Unstructured) {
				mr, _ := findRoute(vs, inlineCfg.withDefaults())
				mr.route["route"].([]any)[0].(map[string]any)["weight"] = 89.5
			}},
		{name: "tap with mirrors list", cfg: tapCfg, fixture: "rich-tap.yaml", want: tapRoutes(90, 10, 5), is: ErrInvalid, msg: "spec.http[1].mirrors",
			edit: func(vs *unstructured.Unstructured) {
				mr, _ := findRoute(vs, tapCfg.withDefaults())
				mr.route["mirrors"] = []any{}
			}},
		{name: "tap mirror is not the router", cfg: tapCfg, fixture: "rich-tap.yaml", want: tapRoutes(90, 10, 5), is: ErrHostMismatch,
			msg: `spec.http[1].mirror.host "elsewhere"`,
			edit: func(vs *unstructured.Unstructured) {
				mr, _ := findRoute(vs, tapCfg.withDefaults())
				mr.route["mirror"].(map[string]any)["host"] = "elsewhere"
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, fixture := tc.cfg, tc.fixture
			if cfg.Name == "" {
				cfg = inlineCfg
			}
			if fixture == "" {
				fixture = "rich-inline.yaml"
			}
			vs := decodeYAML(t, readFixture(t, fixture))
			if tc.edit != nil {
				tc.edit(vs)
			}
			out, changed, err := Apply(vs, cfg, Change{Routes: tc.want, Annotations: tc.ann})
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Nil(t, out)
			assert.False(t, changed)
		})
	}
}

func TestDrifted(t *testing.T) {
	vs := decodeYAML(t, readFixture(t, "rich-inline.yaml"))
	cur, err := Read(vs, inlineCfg)
	require.NoError(t, err)
	require.NoError(t, Drifted(vs, inlineCfg, cur), "no record of a write is not drift")

	out, _, err := Apply(vs, inlineCfg, Change{Routes: inlineRoutes(75, 25)})
	require.NoError(t, err)
	cur, err = Read(out, inlineCfg)
	require.NoError(t, err)
	require.NoError(t, Drifted(out, inlineCfg, cur))

	// Someone edits the weights by hand.
	mr, _ := findRoute(out, inlineCfg.withDefaults())
	mr.route["route"].([]any)[1].(map[string]any)["weight"] = int64(50)
	mr.route["route"].([]any)[0].(map[string]any)["weight"] = int64(50)
	cur, err = Read(out, inlineCfg)
	require.NoError(t, err)
	err = Drifted(out, inlineCfg, cur)
	require.ErrorIs(t, err, ErrDrift)
	assert.Contains(t, err.Error(), "weights 50/50 mirror 0%, last written 75/25")

	out.SetAnnotations(map[string]string{AnnotationLastApplied: "not json"})
	require.ErrorIs(t, Drifted(out, inlineCfg, cur), ErrDrift, "an unreadable record cannot prove the weights are ours")
}

func withRoute(c Config, r string) Config  { c.Route = r; return c }
func withCanary(c Config, h string) Config { c.Hosts.Canary = h; return c }

var _ = yaml.Marshal
