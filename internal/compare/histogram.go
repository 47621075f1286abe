package compare

import (
	"math/bits"
	"time"
)

// Latency histograms are fixed log-linear buckets over nanoseconds: values
// below 16 ns exactly, then every power of two split into 16 equal
// sub-buckets, up to 2^41 ns (~37 minutes; larger values land in the last
// bucket). A bucket's width is at most 1/16 of its lower bound, so a
// quantile read at the bucket midpoint is within ~3% of the true value,
// whatever the traffic: memory is a fixed 608 counters per histogram.
const (
	subBits     = 4
	subCount    = 1 << subBits
	maxExp      = 40
	histBuckets = (maxExp - subBits + 2) * subCount
)

type histogram struct {
	counts [histBuckets]uint32
	n      uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e > maxExp {
		return histBuckets - 1
	}
	sub := int(v>>(e-subBits)) & (subCount - 1)
	return (e-subBits+1)*subCount + sub
}

// bucketMid is the representative (midpoint) value of bucket i.
func bucketMid(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := i/subCount + subBits - 1
	sub := uint64(i % subCount)
	shift := e - subBits
	lo := (subCount + sub) << shift
	return lo + (uint64(1)<<shift)/2
}

func (h *histogram) add(v uint64) {
	h.counts[bucketOf(v)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// signedHist holds a distribution that may be negative (the paired latency
// delta): magnitudes of negative values in neg, the rest in pos.
type signedHist struct {
	pos, neg histogram
}

func (h *signedHist) add(d time.Duration) {
	if d < 0 {
		h.neg.add(uint64(-d))
		return
	}
	h.pos.add(uint64(d))
}

func (h *signedHist) merge(o *signedHist) {
	h.pos.merge(&o.pos)
	h.neg.merge(&o.neg)
}

// quantile returns the value at quantile q (0 < q <= 1) by nearest rank,
// walking from the most negative value up.
func (h *signedHist) quantile(q float64) time.Duration {
	n := h.pos.n + h.neg.n
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.9999999)
	rank = min(max(rank, 1), n)
	seen := uint64(0)
	for i := histBuckets - 1; i >= 0 && h.neg.n > 0; i-- {
		if seen += uint64(h.neg.counts[i]); seen >= rank {
			return -time.Duration(bucketMid(i))
		}
	}
	for i := range histBuckets {
		if seen += uint64(h.pos.counts[i]); seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(histBuckets - 1))
}

// Quantiles summarises one latency distribution.
type Quantiles struct {
	Count         int64
	P50, P90, P99 time.Duration
}

func (h *signedHist) quantiles() Quantiles {
	return Quantiles{
		Count: int64(h.pos.n + h.neg.n),
		P50:   h.quantile(0.50),
		P90:   h.quantile(0.90),
		P99:   h.quantile(0.99),
	}
}
