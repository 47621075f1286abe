package report

import (
	"math"
	"sort"
)

// sorted returns the sample's values in increasing order.
func sorted(s *sample) []wv {
	v := append([]wv(nil), s.vals...)
	sort.Slice(v, func(i, j int) bool { return v[i].v < v[j].v })
	return v
}

// quantile is the weighted q-quantile of the sample (0 when empty).
func quantile(s *sample, q float64) float64 {
	return quantileSorted(sorted(s), q)
}

func quantileSorted(v []wv, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	total := 0.0
	for _, x := range v {
		total += x.w
	}
	target, cum := q*total, 0.0
	for _, x := range v {
		cum += x.w
		if cum >= target {
			return x.v
		}
	}
	return v[len(v)-1].v
}

func maxOf(s *sample, floor float64) float64 {
	m := floor
	for _, x := range s.vals {
		m = math.Max(m, x.v)
	}
	return m
}

func linspace(lo, hi float64, bins int) []float64 {
	e := make([]float64, bins+1)
	for i := range e {
		e[i] = lo + (hi-lo)*float64(i)/float64(bins)
	}
	return e
}

// distribution summarises a sample; edges nil means bins over [min, max].
// Values outside the edges count in the first or last bin.
func distribution(s *sample, edges []float64) *Distribution {
	if len(s.vals) == 0 {
		return nil
	}
	v := sorted(s)
	d := &Distribution{Count: s.sumW, Mean: s.sum / s.sumW, P50: quantileSorted(v, 0.5), P90: quantileSorted(v, 0.9),
		P99: quantileSorted(v, 0.99), Min: v[0].v, Max: v[len(v)-1].v}
	if edges == nil {
		lo, hi := d.Min, d.Max
		if hi <= lo {
			lo, hi = lo-0.5, hi+0.5
		}
		edges = linspace(lo, hi, histogramBins)
	}
	d.Edges = edges
	d.Counts = make([]float64, len(edges)-1)
	// The sample may hold fewer values than were seen: scale to the total.
	scale := s.sumW / sumW(v)
	for _, x := range v {
		i := sort.SearchFloat64s(edges, x.v) - 1
		if x.v == edges[0] {
			i = 0
		}
		i = min(max(i, 0), len(d.Counts)-1)
		d.Counts[i] += x.w * scale
	}
	return d
}

func sumW(v []wv) float64 {
	t := 0.0
	for _, x := range v {
		t += x.w
	}
	return t
}
