package istio

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func newFileHarness(t *testing.T, _ context.Context, cfg Config) harness {
	t.Helper()
	cfg.Namespace = "models"
	path := filepath.Join(t.TempDir(), "virtualservice.yaml")
	reg := prometheus.NewRegistry()
	f, err := NewFile(cfg, FileDeps{Path: path, PollInterval: 10 * time.Millisecond, Registerer: reg})
	require.NoError(t, err)
	write := func(vs *unstructured.Unstructured) {
		require.NoError(t, os.WriteFile(path, []byte(encodeYAML(t, vs)), 0o644))
	}
	stored := func() *unstructured.Unstructured { return decodeYAML(t, readFile(t, path)) }
	return harness{
		cfg: cfg, b: f, sh: f.shell, reg: reg,
		seed:   write,
		stored: stored,
		version: func() string {
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return ""
			}
			require.NoError(t, err)
			return contentVersion(b)
		},
		edit: func(change func(*unstructured.Unstructured)) {
			vs := stored()
			change(vs)
			write(vs)
		},
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestFileContract(t *testing.T) { runContract(t, newFileHarness) }

func TestFileWriteIsAtomicAndKeepsMode(t *testing.T) {
	ctx := contractCtx(t)
	h := newFileHarness(t, ctx, inlineCfg)
	f := h.b.(*File)
	h.seed(fixtureFor(t, "rich-inline.yaml", h))
	require.NoError(t, os.Chmod(f.path, 0o640))
	require.NoError(t, h.b.SetRoutes(ctx, inlineRoutes(70, 30)))

	st, err := os.Stat(f.path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), st.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(f.path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestFileRefusesWhatItCannotRewriteFaithfully(t *testing.T) {
	ctx := contractCtx(t)
	h := newFileHarness(t, ctx, inlineCfg)
	f := h.b.(*File)
	two := string(readFixture(t, "rich-inline.yaml")) + "---\n" + string(readFixture(t, "rich-tap.yaml"))
	require.NoError(t, os.WriteFile(f.path, []byte(two), 0o644))
	err := h.b.SetRoutes(ctx, inlineRoutes(70, 30))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "want exactly one YAML document, found 2")
	assert.Equal(t, two, string(readFile(t, f.path)), "the file is untouched")

	require.NoError(t, os.WriteFile(f.path, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: iris\n"), 0o644))
	_, err = h.b.Routes(ctx)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "want a networking.istio.io VirtualService")

	other := fixtureFor(t, "rich-inline.yaml", h)
	other.SetName("other")
	h.seed(other)
	_, err = h.b.Routes(ctx)
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "holds VirtualService models/other")
}

func TestCountDocuments(t *testing.T) {
	for in, want := range map[string]int{
		"a: 1\n":                1,
		"---\na: 1\n":           1,
		"# c\n---\na: 1\n---\n": 1,
		"a: 1\n---\nb: 2\n":     2,
		"a: 1\n--- # x\nb: 2\n": 2,
		"a: |\n  ---x\n":        1,
		"":                      0,
	} {
		assert.Equal(t, want, countDocuments([]byte(in)), "%q", in)
	}
}
