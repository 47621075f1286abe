package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables read by OptionsFromEnv (and so by Start and Main).
const (
	// EnvAssets names a directory holding the etcd and kube-apiserver
	// binaries, overriding <repo root>/bin/kube.
	EnvAssets = "SHADOWSPLIT_KUBE_ASSETS"
	// EnvCRDs names a multi-document YAML file of CRDs to install instead of
	// Istio's file from the istio.io/api module.
	EnvCRDs = "SHADOWSPLIT_ISTIO_CRDS"
	// EnvLog set to "1" copies both processes' logs to stderr.
	EnvLog = "SHADOWSPLIT_KUBE_LOG"
)

// istioAPIModule is the module whose CRD file is installed; its version is
// whatever the repository's go.mod requires, so the CRDs always match the
// istio.io/client-go types the code compiles against.
const (
	istioAPIModule = "istio.io/api"
	istioCRDFile   = "kubernetes/customresourcedefinitions.gen.yaml"
)

// ErrAssetsMissing reports that a binary or the CRD file is not where it is
// expected, as opposed to a server that failed to start. Main turns it into
// a skip locally and a failure in CI; the wrapped message says what to run.
var ErrAssetsMissing = errors.New("kube test assets missing")

// Options says where the test environment's parts come from. The zero value
// means: binaries in <repo root>/bin/kube, Istio's CRDs from the module cache,
// process logs kept only for error messages, 60 s start timeout per process.
type Options struct {
	// AssetsDir holds the etcd and kube-apiserver binaries. Empty means
	// bin/kube under the repository root (the nearest directory above the
	// working directory that holds a go.mod).
	AssetsDir string
	// CRDFile is a multi-document YAML file of CRDs to install and wait for.
	// Empty means istio.io/api's kubernetes/customresourcedefinitions.gen.yaml
	// for the version in the repository's go.mod.
	CRDFile string
	// Output, when set, receives both processes' stdout and stderr as they run.
	// The last few KB are always kept and quoted when the start fails.
	Output io.Writer
	// StartTimeout bounds the start of each process. Zero means 60 s, which
	// leaves room for a busy shared machine (a quiet one needs about 6 s).
	StartTimeout time.Duration
	// StopTimeout bounds the stop of each process. Zero means 20 s.
	StopTimeout time.Duration
}

// OptionsFromEnv builds Options from the SHADOWSPLIT_* variables above;
// getenv is usually os.Getenv. It is the only place this package reads the
// environment, so callers that want full control use StartWith instead.
func OptionsFromEnv(getenv func(string) string) Options {
	o := Options{
		AssetsDir: getenv(EnvAssets),
		CRDFile:   getenv(EnvCRDs),
	}
	if getenv(EnvLog) == "1" {
		o.Output = os.Stderr
	}
	return o
}

// assets are the resolved absolute paths of everything Start needs.
type assets struct {
	etcd, apiServer, crdFile string
}

// resolveAssets finds the binaries and the CRD file. A missing piece is an
// error wrapping ErrAssetsMissing that names the path and the fix.
func resolveAssets(ctx context.Context, o Options) (assets, error) {
	var root string
	if o.AssetsDir == "" || o.CRDFile == "" {
		wd, err := os.Getwd()
		if err != nil {
			return assets{}, fmt.Errorf("kubetest: working directory: %w", err)
		}
		root, err = findModuleRoot(wd)
		if err != nil {
			return assets{}, fmt.Errorf("%w: %w (set %s and %s to run outside the repository)",
				ErrAssetsMissing, err, EnvAssets, EnvCRDs)
		}
	}

	dir := o.AssetsDir
	if dir == "" {
		dir = filepath.Join(root, "bin", "kube")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return assets{}, fmt.Errorf("kubetest: assets dir %q: %w", o.AssetsDir, err)
	}
	a := assets{etcd: filepath.Join(dir, "etcd"), apiServer: filepath.Join(dir, "kube-apiserver")}
	var missing []string
	for _, p := range []string{a.etcd, a.apiServer} {
		if !isExecutable(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return assets{}, fmt.Errorf("%w: no executable %s; run `make kube-bin` (hack/kube/build.sh) "+
			"to build etcd and kube-apiserver from Go module sources (once; cold it takes 5-11 min and 2.2 GB of memory), or point %s at a directory holding them",
			ErrAssetsMissing, strings.Join(missing, " or "), EnvAssets)
	}

	a.crdFile = o.CRDFile
	if a.crdFile == "" {
		modDir, err := moduleDir(ctx, root, istioAPIModule)
		if err != nil {
			return assets{}, fmt.Errorf("%w: Istio CRDs: %w", ErrAssetsMissing, err)
		}
		a.crdFile = filepath.Join(modDir, istioCRDFile)
	}
	if _, err := os.Stat(a.crdFile); err != nil {
		return assets{}, fmt.Errorf("%w: CRD file: %w (run `go mod download %s` at the repository root, or set %s)",
			ErrAssetsMissing, err, istioAPIModule, EnvCRDs)
	}
	return a, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// findModuleRoot walks up from dir to the nearest directory with a go.mod.
// Test binaries run in their package directory, so this is the repository
// root for every package of the main module.
func findModuleRoot(dir string) (string, error) {
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", dir)
		}
		d = parent
	}
}

// moduleDir returns where the module cache holds module at the version the
// go.mod in root requires. `go list -m` answers from the cache without the
// network; only when the module is not downloaded yet does it fall back to
// `go mod download`, which uses the module proxy.
func moduleDir(ctx context.Context, root, module string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	out, err := goCmd(ctx, root, "list", "-m", "-f", "{{.Dir}}", module)
	if err != nil {
		return "", err
	}
	if dir := strings.TrimSpace(string(out)); dir != "" {
		return dir, nil
	}

	out, err = goCmd(ctx, root, "mod", "download", "-json", module)
	if err != nil {
		return "", err
	}
	var dl struct{ Dir, Error string }
	if err := json.Unmarshal(out, &dl); err != nil {
		return "", fmt.Errorf("go mod download %s: decode output: %w", module, err)
	}
	if dl.Error != "" || dl.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, dl.Error)
	}
	return dl.Dir, nil
}

func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// A go.work above the repository would answer for the wrong module set.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s (in %s): %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
