package istio

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// FileDeps are the File backend's settings and collaborators.
type FileDeps struct {
	// Path of the VirtualService manifest (one YAML document). Required.
	Path string
	// PollInterval is how often Watch checks the file; zero means 1s.
	PollInterval time.Duration
	// Registerer receives shadowsplit_virtualservice_drift_total; nil
	// leaves it unregistered.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// CreateFrom, when non-nil, is written by SetRoutes if the file does not
	// exist. Nil (the default) means a missing file is ErrNotFound.
	CreateFrom *unstructured.Unstructured
}

// File manages the route in a VirtualService manifest on disk, for GitOps
// users who want the router to produce the manifest (and for `make demo`).
// It has the Kube backend's contract: the same transform, drift detection
// (via the same annotation in the file) and optimistic concurrency, where the
// "resourceVersion" is the SHA-256 of the file's bytes. Writes are atomic: a
// temporary file in the same directory, fsync, rename, fsync of the
// directory; readers see the old or the new file, never a mix.
//
// A write edits the YAML in place (preserveEdit): comments, key order,
// quoting and the indent width survive, and a review shows only the managed
// values changing. When that cannot reproduce the intended object exactly it
// falls back to canonical form (keys sorted, as kubectl writes them). A JSON
// manifest is written back as indented JSON. All methods are safe for
// concurrent use within one process; they block on file I/O.
type File struct {
	*shell
	path string
	poll time.Duration
	mu   sync.Mutex // serialises compare-and-rename within this process
}

// NewFile checks cfg and deps and returns the backend. It does no I/O.
// cfg.Namespace may be empty: the manifest's namespace (or none) is taken.
func NewFile(cfg Config, deps FileDeps) (*File, error) {
	if deps.Path == "" {
		return nil, errors.New("istio: FileDeps.Path is required")
	}
	sh, err := newShell(cfg, deps.CreateFrom, deps.Registerer, deps.Logger)
	if err != nil {
		return nil, err
	}
	f := &File{shell: sh, path: deps.Path, poll: deps.PollInterval}
	if f.poll <= 0 {
		f.poll = time.Second
	}
	sh.store = fileStore{f}
	return f, nil
}

type fileStore struct{ f *File }

func (s fileStore) get(context.Context) (*unstructured.Unstructured, error) {
	vs, _, _, err := s.f.load()
	return vs, err
}

// load reads and decodes the file, stamping the content hash as the
// resourceVersion. It also returns the bytes read.
func (f *File) load() (*unstructured.Unstructured, string, []byte, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil, fmt.Errorf("%s: file %s: %w: %w", f.cfg.id(), f.path, ErrNotFound, err)
	}
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: read %s: %w", f.cfg.id(), f.path, err)
	}
	vs, err := decodeManifest(b)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: file %s: %w", f.cfg.id(), f.path, err)
	}
	if vs.GetName() != f.cfg.Name || (vs.GetNamespace() != "" && f.cfg.Namespace != "" && vs.GetNamespace() != f.cfg.Namespace) {
		return nil, "", nil, fmt.Errorf("%s: file %s holds %s %s/%s: %w", f.cfg.id(), f.path, vs.GetKind(), vs.GetNamespace(), vs.GetName(), ErrNotFound)
	}
	rv := contentVersion(b)
	vs.SetResourceVersion(rv)
	return vs, rv, b, nil
}

func contentVersion(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (s fileStore) update(_ context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	_, rv, src, err := s.f.load()
	if err != nil {
		return nil, err
	}
	if rv != vs.GetResourceVersion() {
		return nil, apierrors.NewConflict(VirtualServiceGVR.GroupResource(), s.f.cfg.Name,
			fmt.Errorf("file %s changed since it was read", s.f.path))
	}
	return s.f.write(vs, src)
}

func (s fileStore) create(_ context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if _, err := os.Stat(s.f.path); err == nil {
		return nil, apierrors.NewConflict(VirtualServiceGVR.GroupResource(), s.f.cfg.Name,
			fmt.Errorf("file %s appeared while creating it", s.f.path))
	}
	return s.f.write(vs, nil)
}

// write replaces the file atomically and returns what it now holds. With
// the previous content src it edits that text in place (comments survive);
// otherwise, or when that cannot reproduce vs exactly, it writes vs in
// canonical form.
func (f *File) write(vs *unstructured.Unstructured, src []byte) (*unstructured.Unstructured, error) {
	vs = vs.DeepCopy()
	vs.SetResourceVersion("") // the hash is ours, not the manifest's
	var (
		b  []byte
		ok bool
	)
	if strings.HasSuffix(f.path, ".json") || bytes.HasPrefix(bytes.TrimSpace(src), []byte("{")) {
		// A JSON manifest stays JSON (YAML flow style is not JSON).
		j, err := json.MarshalIndent(vs.Object, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("%s: encode: %w", f.cfg.id(), err)
		}
		b, ok, src = append(j, '\n'), true, nil
	} else {
		b, ok = preserveEdit(src, vs, f.cfg)
	}
	if !ok {
		var err error
		if b, err = encodeManifest(vs); err != nil {
			return nil, fmt.Errorf("%s: encode: %w", f.cfg.id(), err)
		}
		if src != nil {
			f.log.Info("rewrote the manifest in canonical form (comments dropped): could not edit it in place", "path", f.path)
		}
	}
	if err := writeAtomic(f.path, b); err != nil {
		return nil, fmt.Errorf("%s: write %s: %w", f.cfg.id(), f.path, err)
	}
	vs.SetResourceVersion(contentVersion(b))
	return vs, nil
}

func writeAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
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
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Persist the rename itself.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Watch calls fn with the managed Routes when the file's content changes
// (and once at start), polling every PollInterval, until ctx is done; it
// then returns nil. err has the same meaning as for Kube.Watch. fn is called
// from the calling goroutine and should return quickly.
func (f *File) Watch(ctx context.Context, fn func(Routes, error)) error {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	last := ""
	for {
		vs, rv, _, err := f.load()
		key := rv
		if err != nil {
			key = "error: " + err.Error()
		}
		if key != last {
			last = key
			if err != nil {
				fn(Routes{}, err)
			} else {
				fn(f.observe(vs))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// decodeManifest decodes one YAML (or JSON) document. More than one
// document is refused: rewriting would drop the others.
func decodeManifest(b []byte) (*unstructured.Unstructured, error) {
	if n := countDocuments(b); n != 1 {
		return nil, fmt.Errorf("%w: want exactly one YAML document, found %d", ErrInvalid, n)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: yaml: %w", ErrInvalid, err)
	}
	vs := &unstructured.Unstructured{}
	if err := vs.UnmarshalJSON(j); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if gvk := vs.GroupVersionKind(); gvk.Group != VirtualServiceGVR.Group || gvk.Kind != "VirtualService" {
		return nil, fmt.Errorf("%w: apiVersion/kind %s %s: want a networking.istio.io VirtualService", ErrInvalid, vs.GetAPIVersion(), vs.GetKind())
	}
	return vs, nil
}

func encodeManifest(vs *unstructured.Unstructured) ([]byte, error) {
	j, err := vs.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// countDocuments counts YAML documents with content, split on `---` lines.
func countDocuments(b []byte) int {
	n, content := 0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "---") && (len(line) == 3 || line[3] == ' ' || line[3] == '#') {
			if content {
				n++
			}
			content = false
			continue
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			content = true
		}
	}
	if content {
		n++
	}
	return n
}
