package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Target is what every request is sent to.
type Target struct {
	// URL must point at a loopback address (127.0.0.1, ::1 or localhost).
	URL string
	// Method; "" means POST.
	Method string
	// ContentType; "" means application/json.
	ContentType string
	// Bodies are sent in turn (request i gets Bodies[i%len]); none means an
	// empty body. They are only read, so callers may share them.
	Bodies [][]byte
	// Timeout bounds one request; 0 means 5s. A timed-out request counts as
	// an error.
	Timeout time.Duration
}

// Result is what one run measured. Latency covers successful (2xx)
// requests only; everything else is counted in Errors and Statuses.
type Result struct {
	Mode string `json:"mode"` // "open" or "closed"
	URL  string `json:"url"`
	// Rate is the open-loop target rate (0 for closed loop).
	Rate float64 `json:"rate"`
	// Workers is the closed-loop concurrency, or the open-loop in-flight cap.
	Workers int `json:"workers"`
	// Elapsed is the measured window (warm-up excluded).
	Elapsed time.Duration `json:"elapsed_ns"`
	// Sent counts requests issued in the window; OK those answered 2xx.
	Sent uint64 `json:"sent"`
	// Issued counts every request, warm-up included: the denominator for
	// per-request costs measured outside the generator (e.g. server CPU).
	Issued uint64 `json:"issued"`
	OK     uint64 `json:"ok"`
	Errors uint64 `json:"errors"`
	// Statuses counts answers by status code; transport errors count as 0.
	Statuses map[int]uint64 `json:"statuses"`
	// Throughput is OK / Elapsed, in requests per second.
	Throughput float64 `json:"throughput"`
	// Latency is measured from the intended send time (open loop) or the
	// actual send time (closed loop) to the end of the response body.
	Latency Summary `json:"latency"`
	// SendLag (open loop only) is how late the generator itself was in
	// issuing requests; a large SendLag means the generator, not the target,
	// was the bottleneck and the run should be repeated at a lower rate.
	SendLag Summary `json:"send_lag"`
	// FirstError is one transport error message, for diagnosis.
	FirstError string `json:"first_error,omitempty"`
}

// ErrNotLoopback is returned for a target URL outside this machine.
var ErrNotLoopback = errors.New("load target is not a loopback address")

func checkTarget(t Target) error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return fmt.Errorf("target URL %q: %w", t.URL, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("target URL %q: scheme %q, want http", t.URL, u.Scheme)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("target URL %q: %w (use 127.0.0.1)", t.URL, ErrNotLoopback)
	}
	return nil
}

// NewTransport returns a keep-alive transport sized for conns concurrent
// connections to one host, with no proxy from the environment.
func NewTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// worker holds one goroutine's client state and private histograms.
type worker struct {
	target   Target
	client   *http.Client
	lat, lag *Histogram
	statuses map[int]uint64
	sent, ok uint64
	issued   uint64
	firstErr string
}

func newWorker(t Target, c *http.Client) *worker {
	return &worker{target: t, client: c, lat: NewHistogram(), lag: NewHistogram(), statuses: map[int]uint64{}}
}

// do sends request number i and returns the status (0 on a transport
// error) and the transport error, if any.
func (w *worker) do(ctx context.Context, i uint64) (int, error) {
	var body io.Reader = http.NoBody
	if n := len(w.target.Bodies); n > 0 {
		body = bytes.NewReader(w.target.Bodies[i%uint64(n)])
	}
	req, err := http.NewRequestWithContext(ctx, w.target.Method, w.target.URL, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", w.target.ContentType)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// count records one measured request; latency only for 2xx answers.
func (w *worker) count(status int, err error, latency time.Duration) {
	w.sent++
	w.statuses[status]++
	if err != nil && w.firstErr == "" {
		w.firstErr = err.Error()
	}
	if status >= 200 && status < 300 {
		w.ok++
		w.lat.Record(latency)
	}
}

func (t Target) withDefaults() Target {
	if t.Method == "" {
		t.Method = http.MethodPost
	}
	if t.ContentType == "" {
		t.ContentType = "application/json"
	}
	if t.Timeout == 0 {
		t.Timeout = 5 * time.Second
	}
	return t
}

func collect(r *Result, ws []*worker) {
	lat, lag := NewHistogram(), NewHistogram()
	r.Statuses = map[int]uint64{}
	for _, w := range ws {
		lat.Merge(w.lat)
		lag.Merge(w.lag)
		r.Sent += w.sent
		r.Issued += w.issued
		r.OK += w.ok
		for s, c := range w.statuses {
			r.Statuses[s] += c
		}
		if r.FirstError == "" {
			r.FirstError = w.firstErr
		}
	}
	r.Errors = r.Sent - r.OK
	r.Latency = lat.Summary()
	if r.Mode == "open" {
		r.SendLag = lag.Summary()
	}
	if r.Elapsed > 0 {
		r.Throughput = float64(r.OK) / r.Elapsed.Seconds()
	}
}

// sleepUntil waits until t or ctx ends; it reports false if ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startWorkers runs n workers over fn and returns a function that waits for
// them and returns their states.
func startWorkers(t Target, n int, fn func(w *worker)) func() []*worker {
	client := &http.Client{Transport: NewTransport(n), Timeout: t.Timeout}
	ws := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = newWorker(t, client)
		wg.Go(func() { fn(ws[i]) })
	}
	return func() []*worker {
		wg.Wait()
		client.CloseIdleConnections()
		return ws
	}
}
