// Command demo runs shadowsplit's embedded default on this machine: two
// local model servers (stable and a canary that disagrees on a known slice),
// the router in front of them, and an open-loop load. It prints a live line
// every few seconds and stops by itself, leaving no process behind.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	bin       string
	dir       string
	threshold float64
	duration  time.Duration
	rate      float64
	every     time.Duration
	percent   float64
	model     string
	verbose   bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "folder with the router and modelserver binaries (make demo builds them)")
	fs.StringVar(&o.dir, "dir", filepath.Join("out", "demo"), "folder for the VirtualService file, the diff database and the router config (kept after the demo)")
	fs.Float64Var(&o.threshold, "threshold", 0.99, "agreement the canary must show to be promoted (the demo canary agrees about 96%: 0.99 rolls it back, 0.95 promotes it step by step)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send load before stopping")
	fs.Float64Var(&o.rate, "rate", 200, "requests per second sent to the router")
	fs.DurationVar(&o.every, "every", 3*time.Second, "how often to print the live line")
	fs.Float64Var(&o.percent, "shadow-percent", 100, "share of requests shadowed to the canary")
	fs.StringVar(&o.model, "model", "demo", "model name served by both model servers")
	fs.BoolVar(&o.verbose, "v", false, "show the child processes' logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.duration <= 0 || o.duration > loadtest.MaxDuration {
		return fmt.Errorf("--duration %v: want between 1s and %v", o.duration, loadtest.MaxDuration)
	}
	routerBin, modelBin := filepath.Join(o.bin, "router"), filepath.Join(o.bin, "modelserver")
	for _, b := range []string{routerBin, modelBin} {
		if !exists(b) {
			return fmt.Errorf("%s not found: run `make demo` (it builds the binaries first)", b)
		}
	}
	var logw io.Writer
	if o.verbose {
		logw = os.Stderr
	}

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].stop(10 * time.Second); err != nil {
				fmt.Fprintf(out, "stopping %s: %v\n", procs[i].name, err)
			}
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"`)
	model := func(variant string) (string, error) {
		p, err := startProc("modelserver-"+variant, logw, modelBin, "--listen", "127.0.0.1:0", "--variant", variant, "--model-name", o.model)
		if err != nil {
			return "", err
		}
		procs = append(procs, p)
		m, err := p.waitFor(startCtx, addrRE)
		if err != nil {
			return "", err
		}
		return "http://" + m[1], nil
	}
	stableURL, err := model("stable")
	if err != nil {
		return err
	}
	canaryURL, err := model("canary")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("--dir %s: %w", o.dir, err)
	}
	vsPath := filepath.Join(o.dir, "virtualservice.yaml")
	dbPath := filepath.Join(o.dir, "diffs.db")
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		_ = os.Remove(p) // each demo starts from an empty store
	}
	// The file backend of the VirtualService: the router moves the weights
	// in this manifest exactly as it would on a cluster.
	if err := os.WriteFile(vsPath, []byte(demoVirtualService), 0o644); err != nil {
		return err
	}
	cfgPath := filepath.Join(o.dir, "router.yaml")
	cfg := fmt.Sprintf(`# written by make demo
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
stable: {url: %q}
canary: {url: %q}
shadow: {percent: %g}
compare:
  window: 1m
  models:
    %s: {mode: probabilities}
store:
  sqlite: {path: %q}
  agreementSample: 1   # keep every pair: the demo is small, the report exact
  inputs:
    fields:
    - {name: region, index: 6}
    - {name: x0, index: 0, buckets: [-1, 0, 1, 2]}
  report: {minSliceCount: 10}
rollout:
  enabled: true
  target: file
  file: %q
  name: model
  hosts: {router: model-router, canary: model-canary}
  interval: 1s
  gates:
    agreementThreshold: %g
    minPairs: 200
    minDwell: 5s
    latencySlack: 50ms   # a shared laptop's jitter is not the canary's fault
`, stableURL, canaryURL, o.percent, o.model, dbPath, vsPath, o.threshold)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	rp, err := startProc("router", logw, routerBin, "serve", "--config", cfgPath)
	if err != nil {
		return err
	}
	procs = append(procs, rp)
	m, err := rp.waitFor(startCtx, listenRE)
	if err != nil {
		return err
	}
	dataURL, adminURL := "http://"+m[1], "http://"+m[2]

	fmt.Fprintf(out, "shadowsplit demo\n  stable model  %s\n  canary model  %s (disagrees on a known slice: region=north with a high x0)\n  router        %s  (admin %s)\n", stableURL, canaryURL, dataURL, adminURL)
	fmt.Fprintf(out, "  summary JSON  %s/api/v1/summary\n  metrics       %s/metrics\n", adminURL, adminURL)
	fmt.Fprintf(out, "  diff report   %s/reports  (export: %s/api/v1/diffs?format=parquet)\n", adminURL, adminURL)
	fmt.Fprintf(out, "  rollout       %s/api/v1/rollout  (weights in %s, threshold %g)\n", adminURL, vsPath, o.threshold)
	fmt.Fprintf(out, "sending %.0f requests/s for %v (Ctrl-C stops early)\n\n", o.rate, o.duration)

	bodies, err := loadtest.DemoBodies("v1", 512, 1, 42)
	if err != nil {
		return err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		_, err := loadtest.RunOpen(loadCtx, loadtest.OpenConfig{
			Target:   loadtest.Target{URL: dataURL + loadtest.DemoPath("v1", o.model), Bodies: bodies},
			Rate:     o.rate,
			Duration: o.duration,
		})
		loadDone <- err
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			stopLoad()
			<-loadDone
			fmt.Fprintln(out, "\ninterrupted; final figures:")
			printLine(out, client, adminURL, time.Since(start))
			finish(out, routerBin, o.dir, cfgPath, vsPath)
			return nil
		case err := <-loadDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("load: %w", err)
			}
			// Let the last shadows land before the final line.
			time.Sleep(500 * time.Millisecond)
			fmt.Fprintln(out, "\nload finished; final figures:")
			printLine(out, client, adminURL, time.Since(start))
			finish(out, routerBin, o.dir, cfgPath, vsPath)
			return nil
		case <-tick.C:
			printLine(out, client, adminURL, time.Since(start))
		}
	}
}

func printLine(out io.Writer, c *http.Client, adminURL string, elapsed time.Duration) {
	var s liveSummary
	resp, err := c.Get(adminURL + "/api/v1/summary")
	if err != nil {
		fmt.Fprintf(out, "%5.0fs  summary unavailable: %v\n", elapsed.Seconds(), err)
		return
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		fmt.Fprintf(out, "%5.0fs  summary unreadable: %v\n", elapsed.Seconds(), err)
		return
	}
	sc, err := readShadowCounts(c, adminURL)
	if err != nil {
		fmt.Fprintf(out, "%5.0fs  metrics unreadable: %v\n", elapsed.Seconds(), err)
		return
	}
	fmt.Fprintln(out, s.line(elapsed, sc))
	if r, err := readRollout(c, adminURL); err == nil {
		fmt.Fprintf(out, "       rollout: %s, step %d, canary weight %d%%", r.State.Phase, r.State.Step, r.CanaryWeight)
		if r.State.Reason != "" {
			fmt.Fprintf(out, " (%s: %s)", r.State.Reason, r.State.Message)
		}
		fmt.Fprintln(out)
	}
}

// finish writes the offline report from the kept diff store and says where
// everything the demo produced is.
func finish(out io.Writer, routerBin, dir, cfgPath, vsPath string) {
	report := filepath.Join(dir, "report.html")
	cmd := exec.Command(routerBin, "report", "html", "--config", cfgPath, "--out", report)
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(out, "\nwriting %s: %v\n%s", report, err, b)
	} else {
		fmt.Fprintf(out, "\nreport (offline, self-contained): %s\n", report)
	}
	fmt.Fprintf(out, "VirtualService as the router left it: %s\n", vsPath)
	fmt.Fprintf(out, "diffs for pandas/DuckDB: %s report export --config %s --format parquet --out %s\n",
		routerBin, cfgPath, filepath.Join(dir, "diffs.parquet"))
}

// rolloutStatus is the part of /api/v1/rollout the demo prints.
type rolloutStatus struct {
	State struct {
		Phase   string `json:"phase"`
		Step    int    `json:"step"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"state"`
	CanaryWeight int32 `json:"canaryWeight"`
}

func readRollout(c *http.Client, adminURL string) (rolloutStatus, error) {
	var r rolloutStatus
	resp, err := c.Get(adminURL + "/api/v1/rollout")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("rollout status: %s", resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// demoVirtualService is the model's VirtualService in the inline shape, at
// 100/0: the router in the stable path, no live canary traffic yet.
const demoVirtualService = `# The demo's VirtualService. The router manages only the weights of the
# "shadowsplit" route and its own shadowsplit.io/ annotations.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: model
  namespace: models
spec:
  hosts: [model]
  http:
  - name: shadowsplit
    route:
    - destination: {host: model-router}
      weight: 100
    - destination: {host: model-canary}
      weight: 0
`

// liveSummary is the part of the router's /api/v1/summary the demo prints.
type liveSummary struct {
	Exchanges int64            `json:"exchanges"`
	Outcomes  map[string]int64 `json:"outcomes"`
	Instances int64            `json:"instances"`
	Agreement *struct {
		Rate, Lower, Upper float64
	} `json:"agreement"`
	Latency struct {
		Stable, Canary, Delta struct {
			Count    int64
			P50, P99 float64
		}
	} `json:"latency_seconds"`
}

func (s liveSummary) line(elapsed time.Duration, sc shadowCounts) string {
	agree := "agreement  n/a (nothing compared yet)"
	if s.Agreement != nil {
		agree = fmt.Sprintf("agreement %5.1f%% [%5.1f, %5.1f]", 100*s.Agreement.Rate, 100*s.Agreement.Lower, 100*s.Agreement.Upper)
	}
	failed := s.Exchanges - s.Outcomes["agree"] - s.Outcomes["disagree"]
	ms := func(v float64) float64 { return v * 1000 }
	return fmt.Sprintf("%4.0fs  requests %6.0f  shadowed %6.0f  skipped %3.0f  dropped %3.0f | window: compared %6d  %s  failed %3d | stable p50/p99 %.1f/%.1f ms  canary p50/p99 %.1f/%.1f ms",
		elapsed.Seconds(), sc.requests, sc.sent, sc.skipped, sc.dropped, s.Exchanges, agree, failed,
		ms(s.Latency.Stable.P50), ms(s.Latency.Stable.P99), ms(s.Latency.Canary.P50), ms(s.Latency.Canary.P99))
}
