package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// ErrRejected: an operator command does not apply to the rollout's phase
// (e.g. resume when not paused, anything once terminal).
var ErrRejected = errors.New("command rejected")

// ControllerConfig configures a Controller. Zero values are documented.
type ControllerConfig struct {
	// Rollout is the plan and gates; zero values take their defaults.
	Rollout Config
	// Interval is the time between ticks in Run; zero means 10s.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID names a new rollout; nil means a timestamp plus random hex.
	NewID func() string
}

// ControllerDeps are the Controller's collaborators.
type ControllerDeps struct {
	// Target is the managed VirtualService. Required.
	Target Target
	// Evidence measures the canary. Required.
	Evidence evidence.Source
	// Recorder emits an Event on the VirtualService per transition; nil
	// emits none (the File target has no API server to send them to).
	Recorder record.EventRecorder
	// Registerer receives the shadowsplit_rollout_* metrics; nil leaves
	// them unregistered.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnTransition, when set, is called after each transition (the same
	// moments as Events), e.g. Webhook.Notify. It must not block.
	OnTransition func(State, Decision)
}

// Controller is the thin shell around Next: Tick reads, decides, writes.
// Tick, Command and Status are safe for concurrent use (they serialise on
// a mutex: one read-decide-write at a time per process) and block on I/O
// bounded by ctx. Across processes, every write is conditional on the read
// it was decided on.
type Controller struct {
	cfg ControllerConfig
	tg  Target
	ev  evidence.Source
	rec record.EventRecorder
	log *slog.Logger
	m   *metrics
	on  func(State, Decision)

	mu sync.Mutex
	// cache is the State of the last tick including what is not written
	// (counters, holds on drift); it is used while the annotation still
	// shows base, the material part it derived from.
	cache     State
	cacheBase material
	hasCache  bool
}

// NewController checks cfg and returns a Controller. It does no I/O.
func NewController(cfg ControllerConfig, deps ControllerDeps) (*Controller, error) {
	cfg.Rollout = cfg.Rollout.WithDefaults()
	if err := cfg.Rollout.Validate(); err != nil {
		return nil, err
	}
	if deps.Target == nil || deps.Evidence == nil {
		return nil, errors.New("rollout: ControllerDeps.Target and Evidence are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string {
			var b [3]byte
			_, _ = rand.Read(b[:])
			return cfg.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
		}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	return &Controller{cfg: cfg, tg: deps.Target, ev: deps.Evidence, rec: deps.Recorder, log: deps.Logger, m: m, on: deps.OnTransition}, nil
}

// Config returns the defaulted configuration.
func (c *Controller) Config() Config { return c.cfg.Rollout }

// Tick runs one read-decide-write round and returns the decision. An error
// means nothing was written this round (the VirtualService could not be
// read, the write failed, or ErrConflict); the next Tick starts afresh.
func (c *Controller) Tick(ctx context.Context) (Decision, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.round(ctx, CommandNone)
}

// Command applies an operator command through Next and writes it, retrying
// a few times if the VirtualService changes meanwhile (e.g. the leader's
// own tick). A command that does not apply returns ErrRejected. Any replica
// may call it: the write is conditional like every other.
func (c *Controller) Command(ctx context.Context, cmd Command) (Decision, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lastErr error
	for range 5 {
		d, err := c.round(ctx, cmd)
		if errors.Is(err, istio.ErrDrift) && (cmd == CommandPromote || cmd == CommandAbort) {
			// An explicit promote/abort is the operator resolving the
			// hand edit: take the current weights as ours, then apply it.
			c.log.Info("rollout: accepting drifted weights for an operator command", "command", cmd)
			if err = c.tg.AcceptDrift(ctx); err == nil {
				err = ErrConflict // go round again on the new version
			}
		}
		if !errors.Is(err, ErrConflict) {
			return d, err
		}
		lastErr = err
	}
	return Decision{}, lastErr
}

// round is one read, Next, write. Callers hold c.mu.
func (c *Controller) round(ctx context.Context, cmd Command) (Decision, error) {
	now := c.cfg.Now()
	snap, err := c.tg.Read(ctx)
	if err != nil {
		c.m.errors.WithLabelValues("read").Inc()
		c.log.Warn("rollout: cannot read the virtualservice; holding", "err", err)
		return Decision{Action: ActionHold, Reason: ReasonTargetUnreadable, Message: err.Error()}, err
	}
	obs := Observation{Now: now, Command: cmd, Weight: snap.Routes.CanaryWeight()}
	s, err := c.current(snap)
	if err != nil {
		obs.TargetErr = err.Error()
	}
	if snap.RoutesErr != nil {
		obs.TargetErr = snap.RoutesErr.Error()
	}
	if snap.Drift != nil {
		obs.Drift = snap.Drift.Error()
	}
	if cmd == CommandNone && s.ID != "" && !s.Phase.Terminal() && s.Phase != PhasePaused && obs.TargetErr == "" && obs.Drift == "" {
		ev, err := c.ev.Evidence(ctx, s.StepStartedAt)
		if err != nil {
			c.m.errors.WithLabelValues("evidence").Inc()
			obs.EvidenceErr = err.Error()
		} else {
			obs.Evidence = &ev
		}
	}
	if s.ID == "" {
		obs.NewID = c.cfg.NewID()
	}
	next, d := Next(c.cfg.Rollout, s, obs)
	if d.Action == ActionReject {
		return d, fmt.Errorf("%w: %s", ErrRejected, d.Message)
	}
	if d.Write {
		enc, err := next.Encode()
		if err != nil {
			return d, err
		}
		if err := c.tg.Write(ctx, snap, snap.Routes.WithCanaryWeight(d.Weight), map[string]string{AnnotationState: enc}); err != nil {
			label := "write"
			if errors.Is(err, ErrConflict) {
				label = "conflict"
			}
			c.m.errors.WithLabelValues(label).Inc()
			c.log.Info("rollout: write not done; deciding again next tick", "decision", d.Action, "reason", d.Reason, "err", err)
			return d, err
		}
		c.cache, c.cacheBase, c.hasCache = next, next.material(), true
	} else if next.ID != "" && snap.State != "" {
		// Counters that change every tick stay in memory while the
		// annotation still says what it said when they were cached.
		if base, err := DecodeState(snap.State); err == nil {
			c.cache, c.cacheBase, c.hasCache = next, base.material(), true
		}
	}
	weight := snap.Routes.CanaryWeight()
	if d.Write {
		weight = d.Weight // what the VirtualService now holds
	}
	c.report(ctx, weight, s, next, d)
	return d, nil
}

// current is the State to decide on: the annotation's, or the cached one
// (with its in-memory counters) while the annotation is what it came from.
func (c *Controller) current(snap Snapshot) (State, error) {
	if snap.State == "" {
		return State{}, nil
	}
	s, err := DecodeState(snap.State)
	if err != nil {
		// Unreadable state: hold on a non-zero State so Next never starts
		// over on top of it.
		return State{ID: "unreadable", Phase: PhaseHolding}, err
	}
	if c.hasCache && c.cacheBase == s.material() && c.cache.ID == s.ID {
		return c.cache, nil
	}
	return s, nil
}

// report logs, counts and emits the Event of a decision.
func (c *Controller) report(ctx context.Context, weight int32, prev, next State, d Decision) {
	c.m.observe(next, weight)
	changed := d.Write || prev.Phase != next.Phase || (next.Phase == PhaseHolding && prev.Reason != next.Reason)
	if !changed {
		c.log.Debug("rollout: tick", "rollout", next.ID, "phase", next.Phase, "step", next.Step, "reason", d.Reason, "message", d.Message)
		return
	}
	c.m.transitions.WithLabelValues(string(d.Reason)).Inc()
	if c.on != nil {
		c.on(next, d)
	}
	c.log.Info("rollout: "+string(d.Action), "rollout", next.ID, "from", prev.Phase, "to", next.Phase, "step", next.Step,
		"weight", next.Weight, "reason", d.Reason, "message", d.Message)
	if obj := c.eventObject(ctx); obj != nil {
		typ := corev1.EventTypeNormal
		switch next.Phase {
		case PhaseHolding, PhaseRolledBack:
			typ = corev1.EventTypeWarning
		}
		c.rec.Eventf(obj, typ, string(d.Reason), "rollout %s: %s -> %s, step %d, canary %d%%: %s",
			next.ID, phaseOrNew(prev.Phase), next.Phase, next.Step, next.Weight, d.Message)
	}
}

func (c *Controller) eventObject(ctx context.Context) runtime.Object {
	if c.rec == nil {
		return nil
	}
	return c.tg.EventObject(ctx)
}

func phaseOrNew(p Phase) Phase {
	if p == "" {
		return "New"
	}
	return p
}

// Status is what an operator sees: the state on the VirtualService (or
// this process's fresher copy of it) and the weights read back.
type Status struct {
	State         State  `json:"state"`
	CanaryWeight  int32  `json:"canaryWeight"`
	PrimaryWeight int32  `json:"primaryWeight"`
	Drift         string `json:"drift,omitempty"`
	RouteError    string `json:"routeError,omitempty"`
}

// Status reads the VirtualService. Safe for concurrent use; blocks on I/O.
func (c *Controller) Status(ctx context.Context) (Status, error) {
	snap, err := c.tg.Read(ctx)
	if err != nil {
		return Status{}, err
	}
	c.mu.Lock()
	s, serr := c.current(snap)
	c.mu.Unlock()
	st := Status{State: s, CanaryWeight: snap.Routes.Canary.Weight, PrimaryWeight: snap.Routes.Primary.Weight}
	if snap.Drift != nil {
		st.Drift = snap.Drift.Error()
	}
	if snap.RoutesErr != nil {
		st.RouteError = snap.RoutesErr.Error()
	} else if serr != nil {
		st.RouteError = serr.Error()
	}
	return st, nil
}

// Run ticks every Interval until ctx is done, then returns nil. Errors of
// a tick are logged and counted; the next tick tries again.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.Interval)
		_, _ = c.Tick(tctx)
		cancel()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}
