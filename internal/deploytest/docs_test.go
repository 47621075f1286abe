package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jqExpression matches one jqPathExpressions item of an Argo CD stanza.
var jqExpression = regexp.MustCompile(`(?m)^\s*- (\.spec\.http\[\] \| select\(.*)$`)

// TestInstallGuideArgoCDStanza keeps the Application in docs/install.md on
// the ignoreDifferences expressions of docs/virtualservice.md, which
// internal/istio's TestDocumentedArgoCDIgnoreDifferences runs with jq over
// real router writes.
func TestInstallGuideArgoCDStanza(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", name))
		require.NoError(t, err)
		return string(b)
	}
	exprs := func(doc string) []string {
		var out []string
		for _, m := range jqExpression.FindAllStringSubmatch(doc, -1) {
			out = append(out, m[1])
		}
		return out
	}
	tested := exprs(read("virtualservice.md"))
	require.NotEmpty(t, tested, "no jqPathExpressions found in docs/virtualservice.md")
	assert.Equal(t, tested, exprs(read("install.md")))
}
