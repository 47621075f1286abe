package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowsplit/shadowsplit/loadtest"
)

// Keys of the runs; the report looks results up by them.
const (
	kDirect     = "direct"
	kBare       = "baseline-bare"
	kMirror     = "baseline-mirror"
	kMirrorSlow = "baseline-mirror-slow"
	kRouter0    = "router-0"
	kRouter100  = "router-100"
	kRouterSlow = "router-100-slow"
)

// runResult is one measurement. Shadow holds, for router runs, how much
// each shadow/comparison counter series grew during the run.
type runResult struct {
	Key      string             `json:"key"`
	Endpoint string             `json:"endpoint"`
	Round    int                `json:"round"`
	Result   loadtest.Result    `json:"result"`
	Shadow   map[string]float64 `json:"shadow,omitempty"`
	// ProxyCPU and ModelsCPU are the CPU time the proxy process and the
	// model servers used during the run, warm-up included (divide by
	// Result.Issued). Unlike latency on a shared machine, CPU per request
	// barely depends on what else is running.
	ProxyCPU  time.Duration `json:"proxy_cpu_ns"`
	ModelsCPU time.Duration `json:"models_cpu_ns"`
}

// perRequest returns d divided over the run's issued requests.
func (r runResult) perRequest(d time.Duration) time.Duration {
	if r.Result.Issued == 0 {
		return 0
	}
	return d / time.Duration(r.Result.Issued)
}

func cpuOf(ps []*proc) time.Duration {
	var t time.Duration
	for _, p := range ps {
		t += p.cpu()
	}
	return t
}

type results struct {
	Open   []runResult `json:"open"`
	Closed []runResult `json:"closed"`
	// LoadBefore and LoadAfter are /proc/loadavg's first three fields,
	// quoted so a reader can tell a quiet run from a contended one.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

type step struct {
	key string
	ep  endpoint
}

// measure runs the plan round by round. Paths alternate inside a round so
// that a burst of load from elsewhere on the machine spreads over all of
// them instead of landing on one.
func measure(ctx context.Context, o options, b binaries, env environment, stderr io.Writer) (results, error) {
	open := []step{
		{kDirect, env.direct}, {kBare, env.baseBare}, {kRouter0, env.router0},
		{kMirror, env.baseMirror}, {kRouter100, env.router100},
		{kMirrorSlow, env.baseMirrorSlow}, {kRouterSlow, env.router100Slow},
	}
	closed := []step{
		{kDirect, env.direct}, {kBare, env.baseBare}, {kRouter0, env.router0},
		{kMirror, env.baseMirror}, {kRouter100, env.router100},
	}
	res := results{LoadBefore: loadAvg()}
	for round := 1; round <= o.rounds; round++ {
		for _, mode := range []string{"open", "closed"} {
			plan := open
			if mode == "closed" {
				plan = closed
			}
			for _, s := range plan {
				if s.ep.base == "" || (o.only != nil && !o.only[s.key]) {
					continue // router not available, or not asked for
				}
				fmt.Fprintf(stderr, "bench: round %d/%d %s loop: %s\n", round, o.rounds, mode, s.ep.name)
				before := scrape(s.ep.metrics)
				proxyCPU, modelsCPU := s.ep.proxy.cpu(), cpuOf(env.models)
				r, err := loadgen(ctx, o, b, s.ep, mode)
				if err != nil {
					return res, err
				}
				rr := runResult{Key: s.key, Endpoint: s.ep.name, Round: round, Result: r}
				if s.ep.metrics != "" {
					// Shadows finish after their client answers: let the
					// queue drain before reading the counters and the CPU
					// (the work of finishing them is part of the cost).
					waitDrained(ctx, s.ep.metrics, 10*time.Second)
					rr.Shadow = delta(before, scrape(s.ep.metrics))
				}
				rr.ProxyCPU, rr.ModelsCPU = s.ep.proxy.cpu()-proxyCPU, cpuOf(env.models)-modelsCPU
				if mode == "open" {
					res.Open = append(res.Open, rr)
				} else {
					res.Closed = append(res.Closed, rr)
				}
			}
		}
	}
	res.LoadAfter = loadAvg()
	return res, nil
}

// median returns the run of key whose figure by(r) is the median over the
// rounds.
func median(rs []runResult, key string, by func(loadtest.Result) float64) (runResult, bool) {
	var sel []runResult
	for _, r := range rs {
		if r.Key == key {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		return runResult{}, false
	}
	slices.SortFunc(sel, func(a, b runResult) int {
		x, y := by(a.Result), by(b.Result)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return sel[(len(sel)-1)/2], true
}

// scrapedPrefixes are the router counters the report quotes.
var scrapedPrefixes = []string{"shadowsplit_shadow_total", "shadowsplit_comparisons_total", "shadowsplit_compare"}

// queueDepth is the router's gauge of shadow jobs waiting.
const queueDepth = "shadowsplit_shadow_queue_depth"

// waitDrained polls the router's queue-depth gauge until it reads 0 (plus a
// short grace for the jobs in the workers' hands), or the timeout.
func waitDrained(ctx context.Context, url string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := scrapeWith(url, []string{queueDepth})
		if v, ok := m[queueDepth]; !ok || v == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// scrape reads the counters from a Prometheus text endpoint; nil on any
// failure (the report then says the counters were unavailable).
func scrape(url string) map[string]float64 { return scrapeWith(url, scrapedPrefixes) }

func scrapeWith(url string, prefixes []string) map[string]float64 {
	if url == "" {
		return nil
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !hasAnyPrefix(line, prefixes) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func delta(before, after map[string]float64) map[string]float64 {
	if after == nil {
		return nil
	}
	d := map[string]float64{}
	for k, v := range after {
		if dv := v - before[k]; dv != 0 {
			d[k] = dv
		}
	}
	return d
}
