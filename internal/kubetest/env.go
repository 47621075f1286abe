package kubetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 20 * time.Second
	// crdWaitTimeout bounds the wait for the CRDs to be served and
	// Established; a quiet machine needs well under a second.
	crdWaitTimeout = 60 * time.Second
)

// Env is a running etcd + kube-apiserver pair with the CRDs installed.
// Its methods are safe for concurrent use; the rest.Configs it returns are
// fresh copies that the caller may modify.
type Env struct {
	te      *envtest.Environment
	cfg     *rest.Config
	crds    []string // names of the installed CRDs, for error messages and tests
	cleanup func()   // removes the launcher directory

	mu      sync.Mutex // serialises AddUser (the envtest CA is not safe for concurrent use) and Stop
	stopped bool
	stopErr error
}

// Start starts etcd and kube-apiserver on free 127.0.0.1 ports and installs
// the CRDs, with Options taken from the SHADOWSPLIT_* environment variables
// (OptionsFromEnv). It blocks until every CRD is Established: about 6 s on
// a quiet machine, 10 s on a loaded one. ctx's deadline also bounds each
// process's start; a cancellation is noticed between steps (envtest's start
// takes no context). A missing binary or CRD file is an error wrapping
// ErrAssetsMissing. On any error nothing is left running; otherwise the
// caller must call Stop.
func Start(ctx context.Context) (*Env, error) {
	return StartWith(ctx, OptionsFromEnv(os.Getenv))
}

var setLoggerOnce sync.Once

// StartWith is Start with explicit Options.
func StartWith(ctx context.Context, o Options) (*Env, error) {
	// envtest logs through controller-runtime's global logger, which warns
	// with a stack trace when nobody sets it. Route it to slog (its V(1)
	// chatter is debug level and so dropped by default).
	setLoggerOnce.Do(func() { ctrllog.SetLogger(logr.FromSlogHandler(slog.Default().Handler())) })

	a, err := resolveAssets(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kubetest: start: %w", err)
	}

	startTimeout := orDefault(o.StartTimeout, defaultStartTimeout)
	// envtest's Start takes no context; bounding each process's start by the
	// context's deadline keeps Start from outliving it by much.
	if d, ok := ctx.Deadline(); ok && time.Until(d) < startTimeout {
		startTimeout = max(time.Until(d), time.Second)
	}

	l, err := newLauncher(a)
	if err != nil {
		return nil, err
	}
	etcdOut := &tailWriter{sink: o.Output}
	apiOut := &tailWriter{sink: o.Output}
	te := &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			Etcd:      &envtest.Etcd{Path: l.etcd, Out: etcdOut, Err: etcdOut},
			APIServer: &envtest.APIServer{Path: l.apiServer, Out: apiOut, Err: apiOut},
		},
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              []string{a.crdFile},
			ErrorIfPathMissing: true,
			MaxTime:            crdWaitTimeout,
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  orDefault(o.StopTimeout, defaultStopTimeout),
	}

	e := &Env{te: te, cleanup: l.cleanup}
	if e.cfg, err = te.Start(); err != nil {
		// Start may fail after the processes are up (CRD install): stop
		// whatever runs so a failed start leaves nothing behind.
		stopErr := e.Stop()
		return nil, fmt.Errorf("kubetest: start etcd (%s) and kube-apiserver (%s) with CRDs from %s: %w%s",
			a.etcd, a.apiServer, a.crdFile, errors.Join(err, stopErr), outputTails(etcdOut, apiOut))
	}
	for _, crd := range te.CRDs {
		e.crds = append(e.crds, crd.Name)
	}
	if len(e.crds) == 0 {
		_ = e.Stop()
		return nil, fmt.Errorf("kubetest: %s holds no CustomResourceDefinition", a.crdFile)
	}

	waitCtx, cancel := context.WithTimeout(ctx, crdWaitTimeout)
	defer cancel()
	if err := waitEstablished(waitCtx, e.cfg, e.crds); err != nil {
		return nil, errors.Join(fmt.Errorf("kubetest: CRDs from %s: %w", a.crdFile, err), e.Stop())
	}
	return e, nil
}

func outputTails(etcd, api *tailWriter) string {
	return fmt.Sprintf("\n--- last etcd output ---\n%s\n--- last kube-apiserver output ---\n%s", etcd, api)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Config returns a copy of the admin (system:masters) client config.
func (e *Env) Config() *rest.Config {
	return rest.CopyConfig(e.cfg)
}

// CRDs returns the names of the installed CustomResourceDefinitions.
func (e *Env) CRDs() []string {
	return append([]string(nil), e.crds...)
}

// UserConfig returns a client config that authenticates with a fresh client
// certificate as user name in groups. The identity has no permissions
// until the test binds a Role or ClusterRole to it (RBAC is on).
func (e *Env) UserConfig(name string, groups ...string) (*rest.Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil, fmt.Errorf("kubetest: user %q: environment already stopped", name)
	}
	u, err := e.te.AddUser(envtest.User{Name: name, Groups: groups}, e.Config())
	if err != nil {
		return nil, fmt.Errorf("kubetest: user %q groups %v: %w", name, groups, err)
	}
	return u.Config(), nil
}

// WriteKubeconfig writes an admin kubeconfig (certificates inlined, mode
// 0600) to path, replacing it atomically so a reader never sees half a file.
func (e *Env) WriteKubeconfig(path string) error {
	kc, err := kubeconfig(e.Config())
	if err != nil {
		return fmt.Errorf("kubetest: kubeconfig %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("kubetest: kubeconfig %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(kc); err != nil {
		tmp.Close()
		return fmt.Errorf("kubetest: kubeconfig %s: write: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("kubetest: kubeconfig %s: write: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("kubetest: kubeconfig %s: %w", path, err)
	}
	return nil
}

func kubeconfig(cfg *rest.Config) ([]byte, error) {
	const name = "shadowsplit-test"
	c := clientcmdapi.NewConfig()
	c.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	c.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	c.CurrentContext = name
	return clientcmd.Write(*c)
}

// Stop stops kube-apiserver, then etcd (the reverse order makes the API
// server wait about 30 s for its storage), and removes their data and
// certificate directories. It blocks until both processes have exited (at
// most StopTimeout each, then they are killed). Calling it again returns the
// first result.
func (e *Env) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return e.stopErr
	}
	e.stopped = true
	if err := e.te.Stop(); err != nil {
		e.stopErr = fmt.Errorf("kubetest: stop: %w", err)
	}
	e.cleanup()
	return e.stopErr
}
