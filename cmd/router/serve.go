package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	rolloutpkg "github.com/shadowsplit/shadowsplit/internal/rollout"
)

// resolveServeConfig turns defaults, the config file and the flags (in that
// order of precedence, lowest first) into one validated Config.
func resolveServeConfig(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("router serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (flags override it)")
	listen := fs.String("listen", "", "data address (default :8080)")
	adminListen := fs.String("admin-listen", "", "admin address for /metrics, /healthz, /readyz and the API (default :9090)")
	stable := fs.String("stable", "", "stable model Service URL, e.g. http://model-stable:8080")
	canary := fs.String("canary", "", "canary model Service URL")
	canaryModel := fs.String("canary-model", "", "model name the canary serves, when it differs from stable's")
	shadowPercent := fs.Float64("shadow-percent", 0, "percentage of requests shadowed to the canary (0-100)")
	mode := fs.String("mode", "", "inline (router on the client path) or tap (Istio mirrors to the router)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	traces := fs.String("traces", "", "trace exporter: none, stdout or otlp")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin API bearer token")
	if err := fs.Parse(args); err != nil {
		return Config{}, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "router serve: unexpected argument %q\n", fs.Arg(0))
		return Config{}, errUsage
	}
	cfg := defaultConfig()
	if *configPath != "" {
		if err := loadConfigFile(&cfg, *configPath); err != nil {
			return Config{}, err
		}
	}
	// Only flags the user actually set override the file; a flag's zero
	// default must not erase a value from the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "admin-listen":
			cfg.AdminListen = *adminListen
		case "stable":
			cfg.Stable.URL = *stable
		case "canary":
			cfg.Canary.URL = *canary
		case "canary-model":
			cfg.Canary.Model = *canaryModel
		case "shadow-percent":
			cfg.Shadow.Percent = *shadowPercent
		case "mode":
			cfg.Mode = *mode
		case "log-level":
			cfg.Telemetry.LogLevel = *logLevel
		case "traces":
			cfg.Telemetry.Traces = *traces
		case "admin-token-file":
			cfg.Admin.TokenFile = *tokenFile
		}
	})
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	cfg, err := resolveServeConfig(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Telemetry.LogLevel)

	tp, shutdownTraces, err := newTracerProvider(ctx, cfg.Telemetry, stdout)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTraces(sctx); err != nil {
			log.Warn("flushing traces", "err", err)
		}
	}()

	token, err := readToken(cfg.Admin.TokenFile)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := buildStore(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := store.close(sctx); err != nil {
			log.Warn("diff store shutdown", "err", err)
		}
	}()
	wiring, err := buildDataPlane(cfg, reg, tp, log, store.onResult)
	if err != nil {
		return err
	}
	rollout, err := startRollout(ctx, cfg, rolloutDeps{pipeline: wiring.pipeline, reg: reg, log: log,
		onTransition: func(st rolloutpkg.State, _ rolloutpkg.Decision) {
			store.setRollout(st.ID, st.Step, string(st.Phase))
		}})
	if err != nil {
		wiring.close(context.WithoutCancel(ctx))
		return err
	}

	dataLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: data address %s: %w", cfg.Listen, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		dataLn.Close()
		return fmt.Errorf("adminListen: admin address %s: %w", cfg.AdminListen, err)
	}

	var ready atomic.Bool
	data := newDataServer(wiring.handler, tp)
	var mounts []adminMount
	if cfg.Admin.Pprof {
		mounts = append(mounts, pprofMount)
	}
	for _, m := range []adminMount{store.mount, rollout.mount} {
		if m != nil {
			mounts = append(mounts, m)
		}
	}
	admin := newAdmin(reg, &ready, wiring.pipeline, token, mounts...)
	dataSrv := &http.Server{Handler: data, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	errc := make(chan error, 2)
	go func() { errc <- dataSrv.Serve(dataLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	ready.Store(true)
	log.Info("router started", "mode", cfg.Mode, "data", dataLn.Addr().String(), "admin", adminLn.Addr().String(),
		"stable", cfg.Stable.URL, "canary", cfg.Canary.URL, "shadow_percent", cfg.Shadow.Percent)
	// A machine-readable line for scripts and tests that bind port 0.
	fmt.Fprintf(stdout, "shadowsplit router listening data=%s admin=%s\n", dataLn.Addr(), adminLn.Addr())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Shutdown: first stop advertising readiness so the mesh drains us,
	// then stop accepting, then let in-flight shadows finish.
	ready.Store(false)
	{
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := rollout.stop(rctx); err != nil {
			log.Warn("rollout loop shutdown", "err", err)
		}
		cancel()
	}
	if d := time.Duration(cfg.ShutdownDrain); d > 0 && serveErr == nil {
		log.Info("draining before shutdown", "for", d.String())
		select {
		case <-time.After(d):
		case serveErr = <-errc:
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := dataSrv.Shutdown(sctx); err != nil {
		log.Warn("data server shutdown", "err", err)
	}
	if err := wiring.close(sctx); err != nil {
		log.Warn("shadow pool shutdown", "err", err)
	}
	if err := adminSrv.Shutdown(sctx); err != nil {
		log.Warn("admin server shutdown", "err", err)
	}
	log.Info("router stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// newDataServer puts echo at the edge and hands every request to the proxy
// core untouched: the router is transparent, so any method and path is
// forwarded. Routing of inference paths (including V1's "name:predict",
// which echo's router would read as a parameter) is the proxy's job.
func newDataServer(h http.Handler, tp trace.TracerProvider) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = jsonErrorHandler
	if _, isNoop := tp.(noop.TracerProvider); !isNoop {
		e.Use(serverSpan(tp.Tracer("shadowsplit/router")))
	}
	wrapped := echo.WrapHandler(h)
	e.Any("/*", wrapped)
	e.RouteNotFound("/*", wrapped)
	return e
}

// serverSpan starts the server span from the incoming W3C trace context. It
// is only installed when tracing is on, so the default path allocates
// nothing for it.
func serverSpan(tr trace.Tracer) echo.MiddlewareFunc {
	prop := otel.GetTextMapPropagator()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			ctx := prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tr.Start(ctx, spanName(req), trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			span.SetAttributes(httpStatusAttr(c.Response().Status))
			return err
		}
	}
}

// spanName keeps span names low-cardinality: model names go in attributes.
func spanName(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/models/"):
		return r.Method + " /v1/models/{name}"
	case strings.HasPrefix(r.URL.Path, "/v2/"):
		return r.Method + " /v2/..."
	default:
		return r.Method
	}
}
