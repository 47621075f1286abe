package istio

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docJQExpressions extracts the jqPathExpressions of the Argo CD stanza in
// docs/virtualservice.md, so the documented text itself is what is tested.
func docJQExpressions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/virtualservice.md")
	require.NoError(t, err)
	var exprs []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "jqPathExpressions:":
			in = true
		case in && strings.HasPrefix(trimmed, "- ."):
			exprs = append(exprs, strings.TrimPrefix(trimmed, "- "))
		case in:
			in = false
		}
	}
	require.Len(t, exprs, 3, "the stanza lists weights, mirror and mirrorPercentage")
	return exprs
}

// jqDel runs `del(expr)` over doc with the jq binary, as Argo CD's
// normalizer does with gojq.
func jqDel(t *testing.T, doc any, exprs []string) map[string]any {
	t.Helper()
	in, err := json.Marshal(doc)
	require.NoError(t, err)
	for _, e := range exprs {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		cmd := exec.CommandContext(ctx, "jq", "-c", "del("+e+")")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		cancel()
		require.NoError(t, err, "jq del(%s)", e)
		in = out
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(in, &m))
	return m
}

// TestDocumentedArgoCDIgnoreDifferences checks that the documented
// expressions hide exactly what the router changes: Git's manifest and the
// live object after router writes normalise to the same spec, while the
// other routes' weights stay visible.
func TestDocumentedArgoCDIgnoreDifferences(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq not installed (Debian package jq); this checks the docs' jq expressions")
	}
	exprs := docJQExpressions(t)
	for _, tc := range []struct {
		fixture string
		cfg     Config
		routes  Routes
	}{
		{"rich-inline.yaml", inlineCfg, inlineRoutes(60, 40)},
		{"rich-tap.yaml", tapCfg, tapRoutes(50, 50, 37.5)},
	} {
		git := decodeYAML(t, readFixture(t, tc.fixture))
		live, changed, err := Apply(git, tc.cfg, Change{Routes: tc.routes})
		require.NoError(t, err)
		require.True(t, changed)

		g := jqDel(t, git.Object, exprs)
		l := jqDel(t, live.Object, exprs)
		assert.Equal(t, g["spec"], l["spec"], "%s: only ignored fields differ", tc.fixture)
		assert.NotEqual(t, git.Object["spec"], g["spec"], "%s: the expressions matched something", tc.fixture)
		if tc.fixture == "rich-inline.yaml" {
			fallback := g["spec"].(map[string]any)["http"].([]any)[2].(map[string]any)
			assert.Equal(t, float64(100), fallback["route"].([]any)[0].(map[string]any)["weight"],
				"weights of other routes are still compared")
		}
	}
}
