// Command loadgen sends demo-model requests to a 127.0.0.1 target, open-loop
// at a fixed rate (latency from the intended send time) or closed-loop with N
// workers, and prints the latency quantiles, or the raw result as JSON.
//
//	loadgen --url http://127.0.0.1:8080 --rate 2000 --duration 10s
//	loadgen --url http://127.0.0.1:8080 --mode closed --workers 32 --duration 10s --json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "target base URL on 127.0.0.1, e.g. http://127.0.0.1:8080 (required)")
	path := fs.String("path", "", "request path; default the demo model's predict/infer path for --protocol")
	model := fs.String("model", "demo", "model name in the default path")
	protocol := fs.String("protocol", "v1", "request bodies: v1 (KServe V1) or v2 (OIP V2)")
	batch := fs.Int("batch", 1, "rows per request")
	bodies := fs.Int("bodies", 1024, "distinct request bodies to rotate through")
	seed := fs.Uint64("seed", 42, "data generator seed")
	mode := fs.String("mode", "open", "open (fixed rate) or closed (workers as fast as possible)")
	rate := fs.Float64("rate", 1000, "open loop: requests per second")
	maxInFlight := fs.Int("max-inflight", 1000, "open loop: cap on concurrent requests")
	workers := fs.Int("workers", 16, "closed loop: concurrent workers")
	duration := fs.Duration("duration", 10*time.Second, "measured window")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before the window")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		return errors.New("flag --url is required")
	}
	bs, err := loadtest.DemoBodies(*protocol, *bodies, *batch, *seed)
	if err != nil {
		return err
	}
	if *path == "" {
		*path = loadtest.DemoPath(*protocol, *model)
	}
	target := loadtest.Target{URL: strings.TrimSuffix(*base, "/") + *path, Bodies: bs, Timeout: *timeout}

	var res loadtest.Result
	switch *mode {
	case "open":
		res, err = loadtest.RunOpen(ctx, loadtest.OpenConfig{Target: target, Rate: *rate, Duration: *duration, Warmup: *warmup, MaxInFlight: *maxInFlight})
	case "closed":
		res, err = loadtest.RunClosed(ctx, loadtest.ClosedConfig{Target: target, Workers: *workers, Duration: *duration, Warmup: *warmup})
	default:
		return fmt.Errorf("flag --mode %q: want open or closed", *mode)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printResult(stdout, res)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

func printResult(w io.Writer, r loadtest.Result) {
	fmt.Fprintf(w, "%s loop  %s\n", r.Mode, r.URL)
	if r.Mode == "open" {
		fmt.Fprintf(w, "rate %.0f/s  window %v\n", r.Rate, r.Elapsed)
	} else {
		fmt.Fprintf(w, "workers %d  window %v\n", r.Workers, r.Elapsed)
	}
	fmt.Fprintf(w, "sent %d  ok %d  errors %d  throughput %.0f/s\n", r.Sent, r.OK, r.Errors, r.Throughput)
	l := r.Latency
	fmt.Fprintf(w, "latency  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean))
	if r.Mode == "open" {
		fmt.Fprintf(w, "send lag p99 %s (generator's own lateness)\n", ms(r.SendLag.P99))
	}
	if r.Errors > 0 {
		codes := make([]int, 0, len(r.Statuses))
		for c := range r.Statuses {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			fmt.Fprintf(w, "  status %d: %d\n", c, r.Statuses[c])
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
		}
	}
}
