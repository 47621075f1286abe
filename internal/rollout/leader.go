package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig names the coordination.k8s.io Lease and its timings. Zero
// durations take client-go's usual values.
type LeaderConfig struct {
	// Namespace and Name of the Lease. Required.
	Namespace, Name string
	// Identity of this replica (usually the pod name). Required, unique.
	Identity string
	// LeaseDuration is how long followers wait before taking over a lease
	// that was not renewed (default 15s); RenewDeadline how long the leader
	// keeps trying to renew before it steps down (default 10s);
	// RetryPeriod the interval between attempts (default 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Leader runs a function only while this replica holds the Lease. Every
// replica keeps serving and shadowing; only the loop is exclusive. Holding
// the lease is not fencing: the rollout's writes stay conditional on the
// resourceVersion they were decided on.
type Leader struct {
	cfg     LeaderConfig
	client  kubernetes.Interface
	log     *slog.Logger
	leading atomic.Bool
	gauge   prometheus.Gauge
}

// NewLeader checks cfg; it does no I/O. reg (may be nil) receives
// shadowsplit_rollout_leader.
func NewLeader(cfg LeaderConfig, client kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (*Leader, error) {
	if cfg.Namespace == "" || cfg.Name == "" || cfg.Identity == "" {
		return nil, fmt.Errorf("rollout leader: namespace %q, name %q and identity %q are all required", cfg.Namespace, cfg.Name, cfg.Identity)
	}
	if client == nil {
		return nil, errors.New("rollout leader: client is required")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	if !(cfg.LeaseDuration > cfg.RenewDeadline && cfg.RenewDeadline > cfg.RetryPeriod) {
		return nil, fmt.Errorf("rollout leader: want leaseDuration %v > renewDeadline %v > retryPeriod %v", cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if log == nil {
		log = slog.Default()
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shadowsplit_rollout_leader",
		Help: "1 while this replica holds the rollout Lease and runs the rollout loop.",
	})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("rollout leader: register metric: %w", err)
			}
			g = are.ExistingCollector.(prometheus.Gauge)
		}
	}
	return &Leader{cfg: cfg, client: client, log: log.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity), gauge: g}, nil
}

// IsLeader reports whether this replica leads now. Safe for concurrent use.
func (l *Leader) IsLeader() bool { return l.leading.Load() }

// Run campaigns for the Lease and runs fn while leading, with a context
// cancelled when leadership is lost; then it campaigns again. It returns
// nil when ctx is done and fn has returned. With ctx done, the Lease is
// released (ReleaseOnCancel), so a follower takes over at once rather
// than after LeaseDuration.
func (l *Leader) Run(ctx context.Context, fn func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.cfg.Namespace, Name: l.cfg.Name},
		Client:     l.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.cfg.Identity},
	}
	// client-go runs OnStartedLeading on a goroutine of its own that can
	// outlive le.Run: runMu makes one term's fn finish before the next
	// term's starts, and before Run returns.
	var runMu sync.Mutex
	defer func() { runMu.Lock(); runMu.Unlock() }() // wait for a running fn
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   l.cfg.LeaseDuration,
			RenewDeadline:   l.cfg.RenewDeadline,
			RetryPeriod:     l.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            l.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					runMu.Lock()
					defer runMu.Unlock()
					if lctx.Err() != nil {
						return // the term ended before the previous fn did
					}
					l.leading.Store(true)
					l.gauge.Set(1)
					defer func() {
						l.leading.Store(false)
						l.gauge.Set(0)
					}()
					l.log.Info("rollout: leading; running the rollout loop")
					fn(lctx)
				},
				OnStoppedLeading: func() {
					l.log.Info("rollout: not leading")
				},
			},
		})
		if err != nil {
			return fmt.Errorf("rollout leader: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx is done
	}
	return nil
}
