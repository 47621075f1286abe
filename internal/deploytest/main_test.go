package deploytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shadowsplit/shadowsplit/internal/kubetest"
)

// env is the real API server shared by every test of the package.
var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }

// overlay is one directory under deploy/kustomize/overlays and what the
// tests expect of it.
type overlay struct {
	name  string
	shape string // the router's mode and the VirtualService shape
}

var overlays = []overlay{{name: "inline", shape: "inline"}, {name: "tap", shape: "tap"}}

// The names the example overlays use; the tests check the manifests agree
// with each other on them.
const (
	exampleNamespace = "models"
	routerName       = "shadowsplit-router"
	routerSecret     = "shadowsplit-router-secret"
	vsName           = "model"
	stableService    = "model-stable"
	canaryService    = "model-canary"
)

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// repoRoot is the main module's root: the nearest directory above the test's
// working directory that holds a go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		var wd string
		if wd, rootErr = os.Getwd(); rootErr != nil {
			return
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				root = d
				return
			}
			if filepath.Dir(d) == d {
				rootErr = errors.New("no go.mod above " + wd)
				return
			}
		}
	})
	require.NoError(t, rootErr)
	return root
}

// renderer finds kustomize, or skips the test locally and fails it in CI,
// as kubetest.Main does for the API server binaries.
func renderer(t *testing.T) Renderer {
	t.Helper()
	r, err := FindRenderer(repoRoot(t), os.Getenv, exec.LookPath)
	if errors.Is(err, ErrNoRenderer) {
		if os.Getenv(kubetest.EnvCI) == "true" || os.Getenv(kubetest.EnvRequire) == "1" {
			t.Fatalf("%v (CI=true or %s=1: a missing renderer fails)", err, kubetest.EnvRequire)
		}
		t.Skipf("%v", err)
	}
	require.NoError(t, err)
	return r
}

func overlayDir(t *testing.T, name string) string {
	return filepath.Join(repoRoot(t), "deploy", "kustomize", "overlays", name)
}

// render renders an overlay as shipped (namespace models).
func render(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderer(t).Render(context.Background(), overlayDir(t, name))
	require.NoError(t, err)
	require.NotEmpty(t, objs)
	return objs
}

// renderIn renders the overlay the way a user's own overlay on top of it
// would, with `namespace: ns`: a kustomization in a temporary directory that
// lists the overlay as its resource. (kustomize refuses absolute resource
// paths, hence the relative one.)
func renderIn(t *testing.T, name, ns string) []*unstructured.Unstructured {
	t.Helper()
	return renderUserOverlay(t, name, "namespace: "+ns+"\n")
}

// renderUserOverlay renders a kustomization in a temporary directory that
// lists the overlay as its resource, plus extra (kustomization YAML).
func renderUserOverlay(t *testing.T, name, extra string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, overlayDir(t, name))
	require.NoError(t, err)
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + extra +
		"resources:\n- " + filepath.ToSlash(rel) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644))
	objs, err := renderer(t).Render(context.Background(), dir)
	require.NoError(t, err)
	return objs
}

// uniqueNamespace returns a fresh namespace name: the API server is shared
// by every test and never reset.
func uniqueNamespace(t *testing.T, prefix string) string {
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return prefix + "-" + hex.EncodeToString(b)
}
