// Command bench is `make bench`: in one run it builds and starts the demo
// model servers (stable, canary, and a canary 20 ms slower), the baseline
// proxies (loadtest/baseline, bare and with a fire-and-forget mirror) and
// the router (shadow 0% and 100%), then measures every path with the
// project's own load generator pinned to one CPU, and prints the tables
// with the ratios the README quotes. Every figure is relative to another
// measured in the same run, because the machine is shared and absolute
// numbers drift.
//
//	go run ./loadtest/cmd/bench                       # defaults: 2000 rps, 10s windows
//	go run ./loadtest/cmd/bench --duration 3s --warmup 1s
//
// Every process it starts is stopped by PID at the end, on error and on
// Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/loadtest"
)

type options struct {
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	workers     int
	canaryDelay time.Duration
	protocol    string
	batch       int
	rounds      int
	binDir      string
	noBuild     bool
	routerBin   string
	routerCfg   string
	noRouter    bool
	pinCPU      string
	serverCPUs  string
	jsonOut     string
	only        map[string]bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&o.rate, "rate", 2000, "open-loop arrival rate, requests per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window of each run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each window")
	fs.IntVar(&o.workers, "workers", 32, "closed-loop concurrent workers")
	fs.DurationVar(&o.canaryDelay, "canary-delay", 20*time.Millisecond, "extra latency of the slow canary")
	fs.StringVar(&o.protocol, "protocol", "v1", "request protocol: v1 or v2")
	fs.IntVar(&o.batch, "batch", 1, "rows per request (1 = small requests)")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat every run this many times, interleaved; figures are medians")
	fs.StringVar(&o.binDir, "bin-dir", "bin", "where binaries are built")
	fs.BoolVar(&o.noBuild, "no-build", false, "use the binaries already in --bin-dir")
	fs.StringVar(&o.routerBin, "router-bin", "", "router binary (default: build ./cmd/router into --bin-dir)")
	fs.StringVar(&o.routerCfg, "router-config", "", "YAML config passed to every router as --config (the flags still set listen, upstreams and percent)")
	fs.BoolVar(&o.noRouter, "no-router", false, "measure only direct and baseline paths")
	fs.StringVar(&o.pinCPU, "pin-cpu", "0", `CPU list for the load generator (taskset -c); "" to not pin`)
	fs.StringVar(&o.serverCPUs, "server-cpus", "", `CPU list for the servers under test (taskset -c); "" = not pinned`)
	fs.StringVar(&o.jsonOut, "json", "", "also write every raw result to this JSON file")
	only := fs.String("only", "", "comma-separated run keys to measure (direct, baseline-bare, baseline-mirror, baseline-mirror-slow, router-0, router-100, router-100-slow); default all")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, k := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(k)] = true
		}
	}
	if o.rounds < 1 || o.workers < 1 || o.batch < 1 || o.rate <= 0 {
		return o, errors.New("--rounds, --workers, --batch and --rate must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logDir, err := os.MkdirTemp("", "shadowsplit-bench-")
	if err != nil {
		return err
	}
	// Server logs are kept only when something went wrong. Registered
	// first, so it runs after every process has stopped.
	defer func() {
		if err == nil {
			os.RemoveAll(logDir)
		} else {
			fmt.Fprintf(stderr, "bench: server logs kept in %s\n", logDir)
		}
	}()
	sup := &supervisor{logDir: logDir}
	if o.serverCPUs != "" {
		p, err := exec.LookPath("taskset")
		if err != nil {
			return fmt.Errorf("--server-cpus %q: %w", o.serverCPUs, err)
		}
		sup.wrap = []string{p, "-c", o.serverCPUs}
	}
	defer func() {
		if killed := sup.stopAll(); len(killed) > 0 {
			fmt.Fprintf(stderr, "bench: had to SIGKILL %s\n", strings.Join(killed, ", "))
		}
	}()

	bins, err := buildAll(ctx, o, stderr)
	if err != nil {
		return err
	}
	env, err := startAll(ctx, sup, o, bins, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: all servers ready (logs in %s)\n", logDir)

	res, err := measure(ctx, o, bins, env, stderr)
	if err != nil {
		return err
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("--json %s: %w", o.jsonOut, err)
		}
	}
	report(stdout, o, bins, res)
	return nil
}

type binaries struct {
	modelserver, baseline, loadgen, router string
	taskset                                string
	routerWhyNot                           string
}

func buildAll(ctx context.Context, o options, stderr io.Writer) (binaries, error) {
	var b binaries
	if p, err := exec.LookPath("taskset"); err == nil && o.pinCPU != "" {
		b.taskset = p
	}
	if o.noBuild {
		b.modelserver = filepath.Join(o.binDir, "modelserver")
		b.baseline = filepath.Join(o.binDir, "baseline")
		b.loadgen = filepath.Join(o.binDir, "loadgen")
	} else {
		if err := os.MkdirAll(o.binDir, 0o755); err != nil {
			return b, err
		}
		for _, t := range []struct {
			dst       *string
			name, pkg string
		}{
			{&b.modelserver, "modelserver", "./cmd/modelserver"},
			{&b.baseline, "baseline", "./loadtest/cmd/baseline"},
			{&b.loadgen, "loadgen", "./loadtest/cmd/loadgen"},
		} {
			fmt.Fprintf(stderr, "bench: go build %s\n", t.pkg)
			p, err := build(ctx, o.binDir, t.name, t.pkg)
			if err != nil {
				return b, err
			}
			*t.dst = p
		}
	}
	switch {
	case o.noRouter:
		b.routerWhyNot = "--no-router"
	case o.routerBin != "":
		b.router = o.routerBin
	case o.noBuild:
		b.router = filepath.Join(o.binDir, "router")
	default:
		fmt.Fprintln(stderr, "bench: go build ./cmd/router")
		p, err := build(ctx, o.binDir, "router", "./cmd/router")
		if err != nil {
			// The router rows print as TODO rather than failing the baseline.
			b.routerWhyNot = "build failed: " + firstLine(err.Error())
			fmt.Fprintf(stderr, "bench: %v\n", err)
		}
		b.router = p
	}
	if b.router != "" {
		if _, err := os.Stat(b.router); err != nil {
			b.routerWhyNot, b.router = err.Error(), ""
		}
	}
	return b, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// endpoint is one path under test: where the load goes, and for a router
// where its metrics are.
type endpoint struct {
	name    string
	base    string
	metrics string
	// proxy is the process between the generator and stable; nil for the
	// direct path.
	proxy *proc
}

type environment struct {
	direct                               endpoint
	baseBare, baseMirror, baseMirrorSlow endpoint
	router0, router100, router100Slow    endpoint
	haveRouter                           bool
	// models are the model servers, whose CPU every run also reads.
	models []*proc
}

func startAll(ctx context.Context, sup *supervisor, o options, b binaries, stderr io.Writer) (environment, error) {
	var env environment
	ports, err := freePorts(12)
	if err != nil {
		return env, err
	}
	next := func() string { p := ports[0]; ports = ports[1:]; return p }
	url := func(addr string) string { return "http://" + addr }

	type model struct {
		name, variant string
		delay         time.Duration
		addr          string
	}
	models := []*model{
		{name: "stable", variant: "stable"},
		{name: "canary", variant: "canary"},
		{name: "canary-slow", variant: "canary", delay: o.canaryDelay},
	}
	for _, m := range models {
		m.addr = next()
		p, err := sup.start(m.name, b.modelserver, "--listen", m.addr, "--variant", m.variant, "--delay", m.delay.String())
		if err != nil {
			return env, err
		}
		if err := waitReady(ctx, p, url(m.addr)+"/v2/health/ready", 20*time.Second); err != nil {
			return env, err
		}
		env.models = append(env.models, p)
	}
	stable, canary, canarySlow := url(models[0].addr), url(models[1].addr), url(models[2].addr)
	env.direct = endpoint{name: "direct → stable", base: stable}

	baselines := []struct {
		ep      *endpoint
		name    string
		label   string
		canary  string
		percent int
	}{
		{&env.baseBare, "baseline-bare", "baseline: bare ReverseProxy", "", 0},
		{&env.baseMirror, "baseline-mirror", "baseline: ReverseProxy + mirror 100%", canary, 100},
		{&env.baseMirrorSlow, "baseline-mirror-slow", "baseline + mirror 100%, slow canary", canarySlow, 100},
	}
	for _, bl := range baselines {
		addr := next()
		args := []string{"--listen", addr, "--stable", stable, "--mirror-percent", strconv.Itoa(bl.percent)}
		if bl.canary != "" {
			args = append(args, "--canary", bl.canary)
		}
		p, err := sup.start(bl.name, b.baseline, args...)
		if err != nil {
			return env, err
		}
		if err := waitReady(ctx, p, url(addr)+"/v2/health/ready", 10*time.Second); err != nil {
			return env, err
		}
		*bl.ep = endpoint{name: bl.label, base: url(addr), proxy: p}
	}

	env.router0 = endpoint{name: "router: shadow 0%"}
	env.router100 = endpoint{name: "router: shadow 100% + compare"}
	env.router100Slow = endpoint{name: "router: shadow 100%, slow canary"}
	if b.router == "" {
		return env, nil
	}
	routers := []struct {
		ep      *endpoint
		name    string
		canary  string
		percent int
	}{
		{&env.router0, "router-0", canary, 0},
		{&env.router100, "router-100", canary, 100},
		{&env.router100Slow, "router-100-slow", canarySlow, 100},
	}
	for _, r := range routers {
		data, admin := next(), next()
		args := []string{"serve", "--listen", data, "--admin-listen", admin,
			"--stable", stable, "--canary", r.canary, "--shadow-percent", strconv.Itoa(r.percent)}
		if o.routerCfg != "" {
			args = append(args, "--config", o.routerCfg)
		}
		p, err := sup.start(r.name, b.router, args...)
		if err != nil {
			return env, err
		}
		if err := waitReady(ctx, p, url(admin)+"/readyz", 15*time.Second); err != nil {
			fmt.Fprintf(stderr, "bench: router not usable, its rows will be TODO: %v\n", err)
			return env, nil
		}
		if err := waitReady(ctx, p, url(data)+"/v2/health/ready", 10*time.Second); err != nil {
			fmt.Fprintf(stderr, "bench: router does not proxy health to stable, its rows will be TODO: %v\n", err)
			return env, nil
		}
		r.ep.base, r.ep.metrics, r.ep.proxy = url(data), url(admin)+"/metrics", p
	}
	env.haveRouter = true
	return env, nil
}

// loadgen runs one measurement in a child process pinned to o.pinCPU.
func loadgen(ctx context.Context, o options, b binaries, ep endpoint, mode string) (loadtest.Result, error) {
	args := []string{"--url", ep.base, "--protocol", o.protocol, "--batch", strconv.Itoa(o.batch),
		"--duration", o.duration.String(), "--warmup", o.warmup.String(), "--json", "--mode", mode}
	if mode == "open" {
		args = append(args, "--rate", strconv.FormatFloat(o.rate, 'f', -1, 64))
	} else {
		args = append(args, "--workers", strconv.Itoa(o.workers))
	}
	bin := b.loadgen
	if b.taskset != "" {
		args = append([]string{"-c", o.pinCPU, bin}, args...)
		bin = b.taskset
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// On Ctrl-C let the generator stop cleanly (it is our child, by PID).
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return loadtest.Result{}, ctx.Err()
		}
		return loadtest.Result{}, fmt.Errorf("loadgen %s against %s: %w: %s", mode, ep.name, err, stderr.String())
	}
	var r loadtest.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("loadgen output: %w", err)
	}
	return r, nil
}
