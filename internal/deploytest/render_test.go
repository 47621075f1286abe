package deploytest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindRendererOrder(t *testing.T) {
	root := t.TempDir()
	noEnv := func(string) string { return "" }
	noKubectl := func(string) (string, error) { return "", errors.New("not found") }
	kubectl := func(string) (string, error) { return "/usr/bin/kubectl", nil }

	_, err := FindRenderer(root, noEnv, noKubectl)
	require.ErrorIs(t, err, ErrNoRenderer)
	assert.Contains(t, err.Error(), "make kustomize-bin", "the error says how to get one")

	r, err := FindRenderer(root, noEnv, kubectl)
	require.NoError(t, err)
	assert.Equal(t, []string{"/usr/bin/kubectl", "kustomize"}, r.Command)

	// The pinned binary in bin/tools wins over kubectl.
	bin := filepath.Join(root, "bin", "tools", "kustomize")
	require.NoError(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	r, err = FindRenderer(root, noEnv, kubectl)
	require.NoError(t, err)
	assert.Equal(t, []string{bin, "build"}, r.Command)

	// The environment variable wins over both, and must name an executable.
	env := func(k string) string {
		if k == EnvKustomize {
			return filepath.Join(root, "missing")
		}
		return ""
	}
	_, err = FindRenderer(root, env, kubectl)
	require.ErrorIs(t, err, ErrNoRenderer)
}

func TestDecode(t *testing.T) {
	objs, err := Decode([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n"))
	require.NoError(t, err)
	require.Len(t, objs, 2)
	assert.Equal(t, "Service", objs[1].GetKind())
	assert.NotNil(t, Find(objs, "ConfigMap", "a"))
	assert.Nil(t, Find(objs, "ConfigMap", "b"))

	_, err = Decode([]byte("metadata: {name: x}\n"))
	assert.ErrorContains(t, err, "missing apiVersion or kind")
}
