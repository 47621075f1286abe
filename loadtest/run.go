package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxDuration bounds every run, warm-up included: a benchmark that forgets
// to stop must not load a shared machine for long.
const MaxDuration = 10 * time.Minute

// OpenConfig configures an open-loop run. Zero values are documented per field.
type OpenConfig struct {
	Target Target
	// Rate is the fixed arrival rate in requests per second. Required.
	Rate float64
	// Duration is the measured window. Required, at most MaxDuration.
	Duration time.Duration
	// Warmup runs at the same rate before the window and is not measured;
	// 0 means none.
	Warmup time.Duration
	// MaxInFlight caps concurrent requests; 0 means 1000. When the cap is
	// reached the generator waits, and the wait shows up in latency,
	// because latency counts from the intended send time.
	MaxInFlight int
}

// ClosedConfig configures a closed-loop run.
type ClosedConfig struct {
	Target Target
	// Workers each send one request at a time, back to back; 0 means 16.
	Workers int
	// Duration is the measured window. Required, at most MaxDuration.
	Duration time.Duration
	// Warmup runs before the window and is not measured; 0 means none.
	Warmup time.Duration
}

func checkDurations(d, warmup time.Duration) error {
	if d <= 0 || d+warmup > MaxDuration || warmup < 0 {
		return fmt.Errorf("duration %v + warm-up %v: want a positive duration, %v at most in total", d, warmup, MaxDuration)
	}
	return nil
}

type job struct {
	i        uint64
	intended time.Time
	measure  bool
}

// RunOpen sends requests at cfg.Rate for cfg.Warmup+cfg.Duration and
// measures the window after the warm-up. Request i is due at start+i/Rate
// whatever happened to earlier requests, and its latency counts from that
// instant: a target that stalls for 100 ms at 2,000 rps shows 200 slow
// requests, not one. It blocks until the run ends or ctx is done (then it
// returns what was measured so far with ctx's error). Runs are independent:
// several may run concurrently.
func RunOpen(ctx context.Context, cfg OpenConfig) (Result, error) {
	if err := checkTarget(cfg.Target); err != nil {
		return Result{}, err
	}
	if cfg.Rate <= 0 {
		return Result{}, fmt.Errorf("open loop: rate %v: want > 0 requests per second", cfg.Rate)
	}
	if err := checkDurations(cfg.Duration, cfg.Warmup); err != nil {
		return Result{}, fmt.Errorf("open loop: %w", err)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.MaxInFlight < 0 {
		return Result{}, fmt.Errorf("open loop: max in-flight %d: must be positive", cfg.MaxInFlight)
	}
	t := cfg.Target.withDefaults()
	jobs := make(chan job, cfg.MaxInFlight)
	wait := startWorkers(t, cfg.MaxInFlight, func(w *worker) {
		for j := range jobs {
			sendAt := time.Now()
			status, err := w.do(ctx, j.i)
			w.issued++
			if j.measure {
				w.count(status, err, time.Since(j.intended))
				w.lag.Record(sendAt.Sub(j.intended))
			}
		}
	})

	interval := float64(time.Second) / cfg.Rate
	warmN := uint64(cfg.Rate * cfg.Warmup.Seconds())
	totalN := warmN + uint64(cfg.Rate*cfg.Duration.Seconds())
	start := time.Now()
loop:
	for i := range totalN {
		intended := start.Add(time.Duration(float64(i) * interval))
		if !sleepUntil(ctx, intended) {
			break
		}
		select {
		case jobs <- job{i: i, intended: intended, measure: i >= warmN}:
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	r := Result{Mode: "open", URL: t.URL, Rate: cfg.Rate, Workers: cfg.MaxInFlight, Elapsed: cfg.Duration}
	collect(&r, wait())
	return r, ctx.Err()
}

// RunClosed runs cfg.Workers workers, each sending its next request as soon
// as the previous one is answered, for cfg.Warmup+cfg.Duration, and
// measures the window after the warm-up. Use it for throughput; its
// latencies hide stalls by construction. It blocks until the run ends or
// ctx is done; runs are independent and may run concurrently.
func RunClosed(ctx context.Context, cfg ClosedConfig) (Result, error) {
	if err := checkTarget(cfg.Target); err != nil {
		return Result{}, err
	}
	if err := checkDurations(cfg.Duration, cfg.Warmup); err != nil {
		return Result{}, fmt.Errorf("closed loop: %w", err)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 16
	}
	if cfg.Workers < 0 {
		return Result{}, errors.New("closed loop: workers must be positive")
	}
	t := cfg.Target.withDefaults()
	start := time.Now()
	from, end := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	wait := startWorkers(t, cfg.Workers, func(w *worker) {
		for i := uint64(0); ctx.Err() == nil; i++ {
			t0 := time.Now()
			if !t0.Before(end) {
				return
			}
			status, err := w.do(ctx, i)
			w.issued++
			if !t0.Before(from) {
				w.count(status, err, time.Since(t0))
			}
		}
	})
	r := Result{Mode: "closed", URL: t.URL, Workers: cfg.Workers, Elapsed: cfg.Duration}
	collect(&r, wait())
	return r, ctx.Err()
}
