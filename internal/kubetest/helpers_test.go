package kubetest

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTailWriterKeepsTheLastBytesAndCopiesAll(t *testing.T) {
	var sink bytes.Buffer
	w := &tailWriter{sink: &sink}
	head := strings.Repeat("h", tailSize)
	_, _ = w.Write([]byte(head))
	_, _ = w.Write([]byte("the reason it failed\n"))

	assert.Len(t, w.String(), tailSize)
	assert.True(t, strings.HasSuffix(w.String(), "the reason it failed\n"))
	assert.Equal(t, head+"the reason it failed\n", sink.String(), "the sink sees everything")
}

func TestFindModuleRootWalksUp(t *testing.T) {
	root := t.TempDir()
	deep := root + "/a/b/c"
	require.NoError(t, os.MkdirAll(deep, 0o755))
	require.NoError(t, os.WriteFile(root+"/go.mod", []byte("module x\n"), 0o644))

	got, err := findModuleRoot(deep)
	require.NoError(t, err)
	assert.Equal(t, root, got)

	_, err = findModuleRoot(t.TempDir())
	assert.ErrorContains(t, err, "no go.mod")
}
