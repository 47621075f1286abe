// Package loadtest generates HTTP load against 127.0.0.1 and measures
// latency the way a benchmark of a proxy must: open-loop at a fixed arrival
// rate with latency counted from each request's intended send time (so a
// stall in the target shows up in the tail instead of silently slowing the
// generator down — "coordinated omission"), or closed-loop with N workers as
// fast as they go, for throughput.
//
// It is a client like any other: it talks to the router and the model
// servers over HTTP only. Refusing non-loopback targets is deliberate; the
// package is for benchmarks on this machine, not for load-testing others.
package loadtest

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power-of-two range is split
// into 2^(subBits-1) linear buckets, so a recorded value is reported within
// 1/2^(subBits-1) (0.8%) of itself, the "log-linear" layout of HdrHistogram.
const subBits = 8

// maxTrackable is the largest latency kept exactly (≈18 minutes); larger
// values are clamped into the top bucket.
const maxTrackable = time.Duration(1<<40 - 1)

const (
	half       = 1 << (subBits - 1)
	numBuckets = (40-subBits)*half + (1 << subBits)
)

// Histogram records durations in log-linear buckets with bounded memory
// (about 35 KiB) and 0.8% relative precision. It is NOT safe for concurrent
// use: give each goroutine its own and Merge them at the end.
type Histogram struct {
	counts   []uint64
	total    uint64
	sum      time.Duration
	min, max time.Duration
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

func bucketOf(v uint64) int {
	shift := max(bits.Len64(v)-subBits, 0)
	return shift*half + int(v>>uint(shift))
}

// bucketTop is the largest value that lands in bucket i.
func bucketTop(i int) time.Duration {
	if i < 1<<subBits {
		return time.Duration(i)
	}
	shift := i/half - 1
	mantissa := uint64(i - shift*half)
	return time.Duration((mantissa+1)<<uint(shift) - 1)
}

// Record adds one observation. Negative values count as 0.
func (h *Histogram) Record(d time.Duration) {
	d = min(max(d, 0), maxTrackable)
	h.counts[bucketOf(uint64(d))]++
	h.total++
	h.sum += d
	h.min = min(h.min, d)
	h.max = max(h.max, d)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest observation (exact), 0 when empty.
func (h *Histogram) Max() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.max
}

// Mean is the exact mean, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns the value at quantile q in [0, 1]: the top of the bucket
// holding the ceil(q*n)-th observation, never above the exact maximum. It
// returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketTop(i), h.max)
		}
	}
	return h.max
}

// Summary is a histogram reduced to the figures a benchmark table shows.
type Summary struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary reduces h.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.total, Mean: h.Mean(), Max: h.Max(),
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
	}
}
