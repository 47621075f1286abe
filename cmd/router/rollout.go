package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shadowsplit/shadowsplit/internal/evidence"
	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/pipeline"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
)

// RolloutConfig configures the rollout loop and the VirtualService it
// manages (docs/rollout.md). Off unless Enabled.
type RolloutConfig struct {
	Enabled bool `json:"enabled"`
	// Target is "kube" (the API server; in-cluster credentials unless
	// Kubeconfig is set) or "file" (a manifest at File, for GitOps output
	// and the demo).
	Target     string `json:"target"`
	File       string `json:"file"`
	Kubeconfig string `json:"kubeconfig"`
	// Namespace and Name of the VirtualService; Route the managed HTTP
	// route's name (default "shadowsplit"). The shape follows mode.
	Namespace string       `json:"namespace"`
	Name      string       `json:"name"`
	Route     string       `json:"route"`
	Hosts     RolloutHosts `json:"hosts"`
	// Interval between rollout ticks.
	Interval Duration `json:"interval"`
	// Plan is the canary weight of each step (default [0,5,10,25,50,100]).
	Plan     []int32         `json:"plan"`
	Gates    RolloutGates    `json:"gates"`
	Evidence RolloutEvidence `json:"evidence"`
	Leader   RolloutLeader   `json:"leaderElection"`
	// WebhookURL, when set, receives every transition as Slack-compatible
	// JSON ({"text": ...}).
	WebhookURL string `json:"webhookURL"`
}

// RolloutHosts are the Services the managed route points at.
type RolloutHosts struct {
	Router string `json:"router"`
	Stable string `json:"stable"`
	Canary string `json:"canary"`
}

// RolloutGates mirror rollout.Gates; zero values take its defaults.
type RolloutGates struct {
	AgreementThreshold float64  `json:"agreementThreshold"`
	PromoteAlpha       float64  `json:"promoteAlpha"`
	RollbackAlpha      float64  `json:"rollbackAlpha"`
	MinPairs           int64    `json:"minPairs"`
	MinDwell           Duration `json:"minDwell"`
	MaxDwell           Duration `json:"maxDwell"`
	MaxCanaryErrorRate float64  `json:"maxCanaryErrorRate"`
	MaxStableErrorRate float64  `json:"maxStableErrorRate"`
	LatencyP99Ratio    float64  `json:"latencyP99Ratio"`
	LatencySlack       Duration `json:"latencySlack"`
	MinLatencySamples  int64    `json:"minLatencySamples"`
	LatencyFailTicks   int      `json:"latencyFailTicks"`
	MaxFailedChecks    int      `json:"maxFailedChecks"`
	NoiseBaseline      bool     `json:"noiseBaseline"`
}

// RolloutEvidence picks where the evidence comes from: "inprocess" (this
// replica only; the default, right for one replica) or "prometheus" (every
// replica, through PromQL).
type RolloutEvidence struct {
	Source        string   `json:"source"`
	PrometheusURL string   `json:"prometheusURL"`
	Selector      string   `json:"selector"`
	Timeout       Duration `json:"timeout"`
}

// RolloutLeader configures the Lease (kube target only). Every replica
// serves; only the Lease holder runs the loop.
type RolloutLeader struct {
	// Disabled runs the loop without a Lease (one replica only).
	Disabled       bool     `json:"disabled"`
	LeaseName      string   `json:"leaseName"`
	LeaseNamespace string   `json:"leaseNamespace"`
	Identity       string   `json:"identity"`
	LeaseDuration  Duration `json:"leaseDuration"`
	RenewDeadline  Duration `json:"renewDeadline"`
	RetryPeriod    Duration `json:"retryPeriod"`
}

// validate reports every problem of the rollout section, each naming its
// field. mode is the router's mode (the route's shape).
func (r RolloutConfig) validate(mode string) []error {
	if !r.Enabled {
		return nil
	}
	r = withRolloutDefaults(r)
	var errs []error
	bad := func(field string, value any, msg string) {
		errs = append(errs, &fieldError{Field: "rollout." + field, Value: fmt.Sprintf("%q", fmt.Sprint(value)), Msg: msg})
	}
	switch r.Target {
	case "kube":
		if r.Namespace == "" {
			bad("namespace", r.Namespace, "is required with target kube outside a pod (inside one it defaults to the pod's namespace)")
		}
	case "file":
		if r.File == "" {
			bad("file", r.File, "is required with target file (the VirtualService manifest path)")
		}
	default:
		bad("target", r.Target, "must be kube or file")
	}
	if r.Name == "" {
		bad("name", r.Name, "is required (the VirtualService's name)")
	}
	if r.Hosts.Router == "" {
		bad("hosts.router", r.Hosts.Router, "is required (the router's Service host in the VirtualService)")
	}
	if r.Hosts.Canary == "" {
		bad("hosts.canary", r.Hosts.Canary, "is required (the canary's Service host)")
	}
	if mode == "tap" && r.Hosts.Stable == "" {
		bad("hosts.stable", r.Hosts.Stable, "is required in tap mode (route[0] is stable)")
	}
	if r.Interval < Duration(100*time.Millisecond) {
		bad("interval", time.Duration(r.Interval), "must be at least 100ms")
	}
	g := r.Gates
	for _, f := range []struct {
		name string
		v    float64
	}{{"agreementThreshold", g.AgreementThreshold}, {"promoteAlpha", g.PromoteAlpha}, {"rollbackAlpha", g.RollbackAlpha},
		{"maxCanaryErrorRate", g.MaxCanaryErrorRate}, {"maxStableErrorRate", g.MaxStableErrorRate}} {
		if f.v != 0 && (math.IsNaN(f.v) || f.v <= 0 || f.v >= 1) {
			bad("gates."+f.name, f.v, "must be strictly between 0 and 1 (or unset for the default)")
		}
	}
	if g.LatencyP99Ratio != 0 && g.LatencyP99Ratio < 1 {
		bad("gates.latencyP99Ratio", g.LatencyP99Ratio, "must be 1 or more")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"minPairs", g.MinPairs}, {"minLatencySamples", g.MinLatencySamples}, {"latencyFailTicks", int64(g.LatencyFailTicks)}, {"maxFailedChecks", int64(g.MaxFailedChecks)}} {
		if f.v < 0 {
			bad("gates."+f.name, f.v, "must not be negative")
		}
	}
	if g.MinDwell < 0 || g.MaxDwell < 0 {
		bad("gates.minDwell", time.Duration(g.MinDwell), "minDwell and maxDwell must not be negative")
	}
	if err := r.rolloutConfig().WithDefaults().Validate(); err != nil && len(errs) == 0 {
		bad("plan", r.Plan, err.Error())
	}
	switch r.Evidence.Source {
	case "", "inprocess":
	case "prometheus":
		if r.Evidence.PrometheusURL == "" {
			bad("evidence.prometheusURL", "", "is required with evidence.source prometheus (e.g. http://prometheus.monitoring:9090)")
		}
	default:
		bad("evidence.source", r.Evidence.Source, "must be inprocess or prometheus")
	}
	if r.WebhookURL != "" {
		if u, err := url.Parse(r.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhookURL", r.WebhookURL, "must be an absolute http or https URL")
		}
	}
	if r.Target == "kube" && !r.Leader.Disabled {
		l := r.Leader
		if l.LeaseDuration != 0 && !(l.LeaseDuration > l.RenewDeadline && l.RenewDeadline > l.RetryPeriod && l.RetryPeriod > 0) {
			bad("leaderElection.leaseDuration", time.Duration(l.LeaseDuration), "must exceed renewDeadline, which must exceed retryPeriod (>0)")
		}
	}
	return errs
}

func (r RolloutConfig) rolloutConfig() rollout.Config {
	g := r.Gates
	return rollout.Config{Plan: r.Plan, Gates: rollout.Gates{
		AgreementThreshold: g.AgreementThreshold, PromoteAlpha: g.PromoteAlpha, RollbackAlpha: g.RollbackAlpha,
		MinPairs: g.MinPairs, MinDwell: time.Duration(g.MinDwell), MaxDwell: time.Duration(g.MaxDwell),
		MaxCanaryErrorRate: g.MaxCanaryErrorRate, MaxStableErrorRate: g.MaxStableErrorRate,
		LatencyP99Ratio: g.LatencyP99Ratio, LatencySlack: time.Duration(g.LatencySlack),
		MinLatencySamples: g.MinLatencySamples, LatencyFailTicks: g.LatencyFailTicks,
		MaxFailedChecks: g.MaxFailedChecks, NoiseBaseline: g.NoiseBaseline,
	}}
}

func (r RolloutConfig) istioConfig(mode string) istio.Config {
	shape := istio.ShapeInline
	if mode == "tap" {
		shape = istio.ShapeTap
	}
	return istio.Config{Namespace: r.Namespace, Name: r.Name, Route: r.Route, Shape: shape,
		Hosts: istio.Hosts{Router: r.Hosts.Router, Stable: r.Hosts.Stable, Canary: r.Hosts.Canary}}
}

// defaultRolloutConfig is the section's defaults (applied by startRollout
// on zero fields, since defaultConfig lives in config.go).
func withRolloutDefaults(r RolloutConfig) RolloutConfig {
	if r.Target == "" {
		r.Target = "kube"
	}
	if r.Interval == 0 {
		r.Interval = Duration(10 * time.Second)
	}
	if r.Evidence.Source == "" {
		r.Evidence.Source = "inprocess"
	}
	if r.Namespace == "" && r.Target == "kube" {
		// In a pod, default to the pod's own namespace, so one config
		// file serves every namespace the manifests are installed in.
		r.Namespace = podNamespace()
	}
	if r.Leader.LeaseName == "" {
		// The name deploy/kustomize/base/rbac.yaml grants (resourceNames).
		r.Leader.LeaseName = defaultLeaseName
	}
	if r.Leader.LeaseNamespace == "" {
		r.Leader.LeaseNamespace = r.Namespace
	}
	return r
}

// defaultLeaseName is the Lease the shipped Role allows the router to update.
const defaultLeaseName = "shadowsplit-router"

// podNamespace reads the namespace Kubernetes mounts into every pod with a
// ServiceAccount token; "" outside a cluster. A variable so tests can stub it.
var podNamespace = func() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rolloutDeps is what the rollout loop gets from serve.
type rolloutDeps struct {
	pipeline *pipeline.Pipeline
	reg      prometheus.Registerer
	log      *slog.Logger
	// onTransition, when set, hears every transition (the diff store
	// stamps records with the rollout id and step). Must not block.
	onTransition func(rollout.State, rollout.Decision)
}

// rolloutWiring is what serve needs from the rollout loop.
type rolloutWiring struct {
	mount adminMount
	// stop ends the loop (and gives up leadership) before the servers stop.
	stop func(context.Context) error
}

// startRollout builds the controller and starts its loop in the
// background (behind a Lease for the kube target). Disabled: nothing runs,
// no routes are mounted.
func startRollout(ctx context.Context, cfg Config, deps rolloutDeps) (*rolloutWiring, error) {
	noop := &rolloutWiring{stop: func(context.Context) error { return nil }}
	if !cfg.Rollout.Enabled {
		return noop, nil
	}
	rc := withRolloutDefaults(cfg.Rollout)
	if err := errors.Join(rc.validate(cfg.Mode)...); err != nil {
		return nil, err
	}
	log := deps.log.With("component", "rollout")
	ev, err := buildEvidence(rc, deps)
	if err != nil {
		return nil, err
	}
	cdeps := rollout.ControllerDeps{Evidence: ev, Registerer: deps.reg, Logger: log}
	var webhook *rollout.Webhook
	cdeps.OnTransition = deps.onTransition
	if rc.WebhookURL != "" {
		webhook = rollout.NewWebhook(rc.WebhookURL, 5*time.Second, log)
		cdeps.OnTransition = func(st rollout.State, d rollout.Decision) {
			if deps.onTransition != nil {
				deps.onTransition(st, d)
			}
			webhook.Notify(st, d)
		}
	}
	var kube kubernetes.Interface
	var stopEvents func()
	switch rc.Target {
	case "file":
		cdeps.Target, err = rollout.NewFileTarget(rc.istioConfig(cfg.Mode), istio.FileDeps{Path: rc.File, Registerer: deps.reg, Logger: log})
	case "kube":
		var rcfg *rest.Config
		if rcfg, err = kubeRestConfig(rc.Kubeconfig); err != nil {
			return nil, err
		}
		var dyn dynamic.Interface
		if dyn, err = dynamic.NewForConfig(rcfg); err != nil {
			return nil, fmt.Errorf("rollout: kube client: %w", err)
		}
		if kube, err = kubernetes.NewForConfig(rcfg); err != nil {
			return nil, fmt.Errorf("rollout: kube client: %w", err)
		}
		cdeps.Recorder, stopEvents = istio.NewEventRecorder(kube)
		cdeps.Target, err = rollout.NewKubeTarget(rc.istioConfig(cfg.Mode), istio.KubeDeps{Client: dyn, Recorder: cdeps.Recorder, Registerer: deps.reg, Logger: log})
	}
	if err != nil {
		return nil, err
	}
	ctrl, err := rollout.NewController(rollout.ControllerConfig{Rollout: rc.rolloutConfig(), Interval: time.Duration(rc.Interval)}, cdeps)
	if err != nil {
		return nil, fmt.Errorf("config: rollout: %w", err)
	}

	var leader *rollout.Leader
	if rc.Target == "kube" && !rc.Leader.Disabled {
		if rc.Evidence.Source == "inprocess" {
			log.Warn("rollout: evidence.source inprocess with leader election: the leader judges only its own share of the traffic; use prometheus with more than one replica")
		}
		id := rc.Leader.Identity
		if id == "" {
			if id, err = os.Hostname(); err != nil {
				return nil, fmt.Errorf("rollout: leaderElection.identity: empty and no hostname: %w", err)
			}
		}
		leader, err = rollout.NewLeader(rollout.LeaderConfig{Namespace: rc.Leader.LeaseNamespace, Name: rc.Leader.LeaseName, Identity: id,
			LeaseDuration: time.Duration(rc.Leader.LeaseDuration), RenewDeadline: time.Duration(rc.Leader.RenewDeadline),
			RetryPeriod: time.Duration(rc.Leader.RetryPeriod)}, kube, deps.reg, log)
		if err != nil {
			return nil, fmt.Errorf("config: rollout.leaderElection: %w", err)
		}
	}

	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if leader != nil {
			_ = leader.Run(lctx, func(c context.Context) { _ = ctrl.Run(c) })
			return
		}
		_ = ctrl.Run(lctx)
	}()
	log.Info("rollout loop started", "target", rc.Target, "virtualservice", rc.Namespace+"/"+rc.Name,
		"evidence", rc.Evidence.Source, "leaderElection", leader != nil, "plan", ctrl.Config().Plan)

	controlEnabled := cfg.Admin.TokenFile != ""
	return &rolloutWiring{
		mount: rolloutAPI(ctrl, leader, controlEnabled),
		stop: func(sctx context.Context) error {
			cancel()
			defer func() {
				if stopEvents != nil {
					stopEvents()
				}
			}()
			select {
			case <-done:
			case <-sctx.Done():
				return fmt.Errorf("rollout: loop did not stop: %w", sctx.Err())
			}
			if webhook != nil {
				return webhook.Close(sctx)
			}
			return nil
		},
	}, nil
}

func buildEvidence(rc RolloutConfig, deps rolloutDeps) (evidence.Source, error) {
	if rc.Evidence.Source == "prometheus" {
		return evidence.NewPrometheus(evidence.PrometheusConfig{URL: rc.Evidence.PrometheusURL, Selector: rc.Evidence.Selector,
			Timeout: time.Duration(rc.Evidence.Timeout)})
	}
	g, ok := deps.reg.(prometheus.Gatherer)
	if !ok || deps.pipeline == nil {
		return nil, errors.New("rollout: evidence.source inprocess needs the pipeline and a gathering registry")
	}
	return evidence.NewInProcess(evidence.InProcessConfig{Gatherer: g, Summary: deps.pipeline.Snapshot})
}

func kubeRestConfig(path string) (*rest.Config, error) {
	if path != "" {
		c, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("config: rollout.kubeconfig: %s: %w", path, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("config: rollout.kubeconfig: empty and not running in a cluster: %w", err)
	}
	return c, nil
}

// rolloutStatusJSON is GET /api/v1/rollout.
type rolloutStatusJSON struct {
	rollout.Status
	// Leader says whether this replica runs the loop (always true without
	// leader election).
	Leader bool `json:"leader"`
	// ControlEnabled says whether the POST endpoints are available (an
	// admin token is configured).
	ControlEnabled bool `json:"controlEnabled"`
}

// rolloutAPI mounts the status and control endpoints. Control changes
// traffic, so it is refused outright when no token protects the API.
func rolloutAPI(ctrl *rollout.Controller, leader *rollout.Leader, controlEnabled bool) adminMount {
	return func(g *echo.Group) {
		g.GET("/api/v1/rollout", func(c echo.Context) error {
			st, err := ctrl.Status(c.Request().Context())
			if err != nil {
				return echo.NewHTTPError(http.StatusBadGateway, "rollout status: "+err.Error())
			}
			return c.JSON(http.StatusOK, rolloutStatusJSON{Status: st, Leader: leader == nil || leader.IsLeader(), ControlEnabled: controlEnabled})
		})
		g.POST("/api/v1/rollout/:command", func(c echo.Context) error {
			if !controlEnabled {
				return echo.NewHTTPError(http.StatusForbidden, "rollout control is disabled: configure admin.tokenFile to enable it")
			}
			cmd := rollout.Command(c.Param("command"))
			known := false
			for _, k := range rollout.Commands {
				known = known || k == cmd
			}
			if !known {
				return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("unknown rollout command %q: want pause, resume, promote or abort", cmd))
			}
			d, err := ctrl.Command(c.Request().Context(), cmd)
			switch {
			case errors.Is(err, rollout.ErrRejected):
				return echo.NewHTTPError(http.StatusConflict, err.Error())
			case errors.Is(err, rollout.ErrConflict):
				return echo.NewHTTPError(http.StatusConflict, "the VirtualService kept changing; try again: "+err.Error())
			case err != nil:
				return echo.NewHTTPError(http.StatusBadGateway, err.Error())
			}
			return c.JSON(http.StatusOK, d)
		})
	}
}
