package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// NewFileTarget returns the Target for a VirtualService manifest on disk
// (GitOps output, `make demo`). The version is a hash of the file's bytes;
// writes are compare-and-rename (atomic) within this process, like
// internal/istio's File backend, whose manifest format it shares. It does
// no I/O.
func NewFileTarget(cfg istio.Config, path string) (Target, error) {
	if path == "" {
		return nil, errors.New("rollout: file target: path is required")
	}
	return &fenced{cfg: cfg, store: &fileStore{cfg: cfg, path: path}}, nil
}

type fileStore struct {
	cfg  istio.Config
	path string
	mu   sync.Mutex
}

func (s *fileStore) get(context.Context) (*unstructured.Unstructured, error) {
	vs, _, err := s.load()
	return vs, err
}

func (s *fileStore) load() (*unstructured.Unstructured, string, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("virtualservice file %s: %w: %w", s.path, istio.ErrNotFound, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("virtualservice file %s: %w", s.path, err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, "", fmt.Errorf("virtualservice file %s: %w: %w", s.path, istio.ErrInvalid, err)
	}
	vs := &unstructured.Unstructured{}
	if err := vs.UnmarshalJSON(j); err != nil {
		return nil, "", fmt.Errorf("virtualservice file %s: %w: %w", s.path, istio.ErrInvalid, err)
	}
	sum := sha256.Sum256(b)
	v := hex.EncodeToString(sum[:8])
	vs.SetResourceVersion(v)
	return vs, v, nil
}

func (s *fileStore) update(_ context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.load()
	if err != nil {
		return nil, err
	}
	if v != vs.GetResourceVersion() {
		return nil, fmt.Errorf("virtualservice file %s: %w", s.path, ErrConflict)
	}
	out := vs.DeepCopy()
	out.SetResourceVersion("")
	j, err := out.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("virtualservice file %s: encode: %w", s.path, err)
	}
	b, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("virtualservice file %s: encode: %w", s.path, err)
	}
	if err := writeFileAtomic(s.path, b); err != nil {
		return nil, fmt.Errorf("virtualservice file %s: write: %w", s.path, err)
	}
	return out, nil
}

// writeFileAtomic writes a temporary file in the same directory, syncs it
// and renames it over path: readers see the old or the new manifest.
func writeFileAtomic(path string, b []byte) (err error) {
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
