package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// EnvKustomize names a kustomize binary that FindRenderer prefers to every
// other choice.
const EnvKustomize = "SHADOWSPLIT_KUSTOMIZE"

// KustomizeVersion is the kustomize that hack/deps.d/30-kustomize.sh builds
// into bin/tools. Change both together.
const KustomizeVersion = "v5.8.1"

// ErrNoRenderer reports that no kustomize was found; the message says how to
// get one.
var ErrNoRenderer = errors.New("no kustomize found")

// renderTimeout bounds one kustomize run; rendering these overlays takes
// well under a second.
const renderTimeout = time.Minute

// Renderer renders a kustomization directory. The zero value is not usable;
// get one from FindRenderer. Safe for concurrent use (each Render runs its
// own process).
type Renderer struct {
	// Command is the program and its leading arguments; Render appends the
	// directory: {"/repo/bin/tools/kustomize", "build"} or
	// {"/usr/bin/kubectl", "kustomize"}.
	Command []string
}

// String names the renderer for test logs.
func (r Renderer) String() string { return strings.Join(r.Command, " ") }

// FindRenderer picks kustomize: $SHADOWSPLIT_KUSTOMIZE, then
// <root>/bin/tools/kustomize, then `kubectl kustomize` from the PATH
// (lookPath is usually exec.LookPath). Errors wrap ErrNoRenderer.
func FindRenderer(root string, getenv func(string) string, lookPath func(string) (string, error)) (Renderer, error) {
	if p := getenv(EnvKustomize); p != "" {
		if !isExecutable(p) {
			return Renderer{}, fmt.Errorf("%w: %s=%q is not an executable file", ErrNoRenderer, EnvKustomize, p)
		}
		return Renderer{Command: []string{p, "build"}}, nil
	}
	if p := filepath.Join(root, "bin", "tools", "kustomize"); isExecutable(p) {
		return Renderer{Command: []string{p, "build"}}, nil
	}
	if p, err := lookPath("kubectl"); err == nil {
		return Renderer{Command: []string{p, "kustomize"}}, nil
	}
	return Renderer{}, fmt.Errorf("%w: no %s, no %s, no kubectl on the PATH; run `make kustomize-bin` "+
		"(hack/deps.d/30-kustomize.sh builds kustomize %s from the Go module proxy into bin/tools, about 1 min)",
		ErrNoRenderer, EnvKustomize, filepath.Join(root, "bin", "tools", "kustomize"), KustomizeVersion)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Render runs kustomize on dir and decodes the output. It blocks until the
// process exits, at most one minute or until ctx ends.
func (r Renderer) Render(ctx context.Context, dir string) ([]*unstructured.Unstructured, error) {
	raw, err := r.RenderYAML(ctx, dir)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: output: %w", dir, err)
	}
	return objs, nil
}

// RenderYAML runs kustomize on dir and returns its output unparsed.
func (r Renderer) RenderYAML(ctx context.Context, dir string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, renderTimeout)
	defer cancel()
	args := append(append([]string(nil), r.Command[1:]...), dir)
	cmd := exec.CommandContext(ctx, r.Command[0], args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", r, dir, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Decode splits a multi-document YAML stream into objects, skipping empty
// documents. An object without apiVersion or kind is an error.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("document %d (name %q): missing apiVersion or kind", i, u.GetName())
		}
		objs = append(objs, u)
	}
}

// Find returns the rendered object of that kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// OfKind returns the rendered objects of that kind, in render order.
func OfKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}
