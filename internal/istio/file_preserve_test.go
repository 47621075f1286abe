package istio

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A hand-written manifest keeps its comments, key order, flow lists and
// quoting through a write: the commit shows only the managed values.
func TestFileWriteKeepsCommentsAndLayout(t *testing.T) {
	ctx := contractCtx(t)
	h := newFileHarness(t, ctx, tapCfg)
	f := h.b.(*File)
	src := readFixture(t, "commented-tap.yaml")
	require.NoError(t, os.WriteFile(f.path, src, 0o644))

	require.NoError(t, h.b.SetRoutes(ctx, tapRoutes(75, 25, 12.5)))
	want := string(src)
	want = strings.Replace(want, "weight: 90 # stable share", "weight: 75 # stable share", 1)
	want = strings.Replace(want, "weight: 10 # canary share", "weight: 25 # canary share", 1)
	want = strings.Replace(want, "      value: 20\n", "      value: 12.5\n", 1)
	want = strings.Replace(want, `    team.example.com/owner: "ml-platform"`+"\n",
		`    team.example.com/owner: "ml-platform"`+"\n"+
			`    shadowsplit.io/last-applied-weights: '{"weights":[75,25],"mirrorPercent":12.5}'`+"\n", 1)
	assert.Equal(t, want, string(readFile(t, f.path)))

	got, err := h.b.Routes(ctx)
	require.NoError(t, err)
	assert.Equal(t, tapRoutes(75, 25, 12.5), got)
}

// A manifest with 4-space indents and lists indented under their keys keeps
// that indent and key order (yaml.v3 re-lays out "-   key" as "- key").
func TestFileWriteKeepsIndentedSequences(t *testing.T) {
	ctx := contractCtx(t)
	h := newFileHarness(t, ctx, tapCfg)
	f := h.b.(*File)
	require.NoError(t, os.WriteFile(f.path, readFixture(t, "indented-tap.yaml"), 0o644))

	require.NoError(t, h.b.SetRoutes(ctx, tapRoutes(60, 40, 20)))
	assert.Equal(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
    name: iris
    namespace: models
    annotations:
        shadowsplit.io/last-applied-weights: '{"weights":[60,40],"mirrorPercent":20}'
spec:
    hosts:
        - iris.models.svc.cluster.local
    http:
        - name: shadowsplit
          route:
            - destination:
                host: iris-stable
              weight: 60
            - destination:
                host: iris-canary
              weight: 40
          mirror:
            host: iris-router
            port:
                number: 8080
          mirrorPercentage:
            value: 20
`, string(readFile(t, f.path)))
	got, err := h.b.Routes(ctx)
	require.NoError(t, err)
	assert.Equal(t, tapRoutes(60, 40, 20), got)
}

// A JSON manifest stays JSON, and the route gains its mirror: the object is
// exactly what the transform says.
func TestFileWriteJSONManifestGainsMirror(t *testing.T) {
	ctx := contractCtx(t)
	h := newFileHarness(t, ctx, tapCfg)
	f := h.b.(*File)
	src := []byte(`{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
 "metadata": {"name": "iris", "namespace": "models"},
 "spec": {"http": [{"name": "shadowsplit", "route": [
   {"destination": {"host": "iris-stable"}, "weight": 100},
   {"destination": {"host": "iris-canary"}, "weight": 0}]}]}}
`)
	require.NoError(t, os.WriteFile(f.path, src, 0o644))
	cur, err := h.b.Routes(ctx)
	require.NoError(t, err)
	want := cur.WithCanaryWeight(5)
	want.MirrorPercent = 10
	require.NoError(t, h.b.SetRoutes(ctx, want))
	got, err := h.b.Routes(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	expect, _, err := Apply(decodeYAML(t, src), h.cfg, Change{Routes: want})
	require.NoError(t, err)
	assert.Equal(t, encodeYAML(t, expect), encodeYAML(t, decodeYAML(t, readFile(t, f.path))))
	assert.True(t, json.Valid(readFile(t, f.path)), "still JSON:\n%s", readFile(t, f.path))
}
