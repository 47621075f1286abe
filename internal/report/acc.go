package report

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/diffstore"
)

const (
	sampleCap     = 50_000 // values kept per distribution (reservoir)
	scatterCap    = 2_000  // points of the difference-vs-mean plot
	maxTimeKeys   = 4096   // time buckets before coarsening
	maxLabels     = 30     // flip matrix size; the rest is "(other)"
	maxSliceVals  = 200    // values per slice field
	histogramBins = 30
)

// acc accumulates one pass over the records. Not safe for concurrent use.
type acc struct {
	rng *rand.Rand

	records        int64
	pairs          float64
	sampled        bool
	inst, agreed   float64
	outcomes       map[string]float64
	failures       map[[3]string]float64
	first, last    time.Time
	rollout        RolloutInfo
	lastRollout    [2]string
	steps          []StepChange
	seenSteps      map[[2]string]bool
	width          int64 // seconds per time key
	times          map[int64]*tally
	labels         map[string]float64
	flips          map[[2]string]float64
	diff, js       sample
	scatter        sample2
	stable, canary sample
	delta          sample
	slices         map[string]map[string]*tally
	top            exampleHeap
	topN           int
	traceURL       string
}

type wv struct{ v, w float64 }

// sample is a weighted reservoir (Algorithm R on records; weights kept).
type sample struct {
	vals []wv
	seen int64
	sumW float64
	sum  float64
}

func (s *sample) add(rng *rand.Rand, v, w float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	s.seen++
	s.sumW += w
	s.sum += v * w
	if len(s.vals) < sampleCap {
		s.vals = append(s.vals, wv{v, w})
	} else if j := rng.Int64N(s.seen); j < sampleCap {
		s.vals[j] = wv{v, w}
	}
}

type sample2 struct {
	pts  []Point
	seen int64
}

func (s *sample2) add(rng *rand.Rand, p Point) {
	s.seen++
	if len(s.pts) < scatterCap {
		s.pts = append(s.pts, p)
	} else if j := rng.Int64N(s.seen); j < scatterCap {
		s.pts[j] = p
	}
}

func newAcc(q Query) *acc {
	return &acc{rng: rand.New(rand.NewPCG(1, 2)), outcomes: map[string]float64{}, failures: map[[3]string]float64{},
		width: 1, times: map[int64]*tally{}, labels: map[string]float64{}, flips: map[[2]string]float64{},
		slices: map[string]map[string]*tally{}, topN: q.TopN, traceURL: q.TraceURL, lastRollout: [2]string{"\x00", ""}, seenSteps: map[[2]string]bool{}}
}

func (a *acc) add(r *diffstore.Record) {
	w := r.Weight
	if w <= 0 {
		w = 1
	}
	if w != 1 {
		a.sampled = true
	}
	a.records++
	a.pairs += w
	if a.first.IsZero() || r.Time.Before(a.first) {
		a.first = r.Time
	}
	if r.Time.After(a.last) {
		a.last = r.Time
		a.rollout = RolloutInfo{ID: r.RolloutID, Step: r.RolloutStep}
	}
	if key := [2]string{r.RolloutID, strconv.Itoa(r.RolloutStep)}; key != a.lastRollout {
		// A step is marked once, where it first appears: replicas sharing
		// a store interleave records, which must not add a mark per record.
		if a.lastRollout[0] != "\x00" && !a.seenSteps[key] {
			a.steps = append(a.steps, StepChange{At: r.Time, RolloutID: r.RolloutID, Step: r.RolloutStep})
		}
		a.seenSteps[key] = true
		a.lastRollout = key
	}
	a.outcomes[r.Outcome] += w
	if r.Outcome != string(compare.OutcomeAgree) && r.Outcome != string(compare.OutcomeDisagree) {
		a.failures[[3]string{r.Outcome, r.Side, r.Reason}] += w
	}
	a.inst += float64(r.Instances) * w
	a.agreed += float64(r.Agreed) * w
	a.addTime(r.Time, float64(r.Instances), float64(r.Agreed), w)

	if r.StableFailure == "" && r.StableStatus > 0 {
		a.stable.add(a.rng, ms(r.StableLatency), w)
	}
	if r.CanaryFailure == "" && r.CanaryStatus > 0 {
		a.canary.add(a.rng, ms(r.CanaryLatency), w)
	}
	if r.Paired {
		a.delta.add(a.rng, ms(r.LatencyDelta), w)
	}

	var so, co []any
	if len(r.InstanceDiffs) > 0 {
		_ = json.Unmarshal(r.StableOutput, &so)
		_ = json.Unmarshal(r.CanaryOutput, &co)
	}
	compared := r.Outcome == string(compare.OutcomeAgree) || r.Outcome == string(compare.OutcomeDisagree)
	for i := range r.InstanceDiffs {
		d := &r.InstanceDiffs[i]
		if !compared {
			break
		}
		if d.StableLabel != "" || d.CanaryLabel != "" {
			sl, cl := a.label(d.StableLabel), a.label(d.CanaryLabel)
			a.labels[sl] += w
			a.labels[cl] += 0 // present as a column even if never a stable label
			a.flips[[2]string{sl, cl}] += w
		} else if i < len(so) && i < len(co) {
			if s, ok := so[i].(float64); ok {
				if c, ok := co[i].(float64); ok {
					a.diff.add(a.rng, c-s, w)
					a.scatter.add(a.rng, Point{X: (s + c) / 2, Y: c - s})
				}
			}
		}
		if d.JS != nil {
			a.js.add(a.rng, *d.JS, w)
		}
		for k, v := range d.Inputs {
			a.addSlice(k, fmt.Sprint(v), w, d.Agree)
		}
	}
	if compared {
		a.addSliceN("model", r.Model, float64(r.Instances), float64(r.Instances-r.Agreed), w)
		if r.ModelVersion != "" {
			a.addSliceN("model_version", r.ModelVersion, float64(r.Instances), float64(r.Instances-r.Agreed), w)
		}
	}
	if r.Outcome == string(compare.OutcomeDisagree) {
		a.addExample(r)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (a *acc) addTime(t time.Time, inst, agreed, w float64) {
	k := t.Unix() / a.width
	p := a.times[k]
	if p == nil {
		if len(a.times) >= maxTimeKeys {
			a.coarsen()
			a.addTime(t, inst, agreed, w)
			return
		}
		p = new(tally)
		a.times[k] = p
	}
	p.add(inst, inst-agreed, w)
}

// coarsen doubles the bucket width, merging pairs of buckets, so the map
// stays within maxTimeKeys.
func (a *acc) coarsen() {
	old := a.times
	a.width *= 2
	a.times = make(map[int64]*tally, len(old)/2+1)
	for k, v := range old {
		nk := k / 2
		if p := a.times[nk]; p != nil {
			p.merge(v)
		} else {
			a.times[nk] = v
		}
	}
}

func (a *acc) addSlice(field, value string, w float64, agree bool) {
	dis := 0.0
	if !agree {
		dis = 1
	}
	a.addSliceN(field, value, 1, dis, w)
}

// addSliceN adds n stored instances, dis of them disagreeing, each
// standing for w of the traffic.
func (a *acc) addSliceN(field, value string, n, dis, w float64) {
	m := a.slices[field]
	if m == nil {
		m = map[string]*tally{}
		a.slices[field] = m
	}
	p := m[value]
	if p == nil {
		if len(m) >= maxSliceVals {
			value = "(other)"
			if p = m[value]; p == nil {
				p = new(tally)
				m[value] = p
			}
		} else {
			p = new(tally)
			m[value] = p
		}
	}
	p.add(n, dis, w)
}

// label bounds the distinct labels kept (string labels can be anything):
// past maxKeptLabels new ones pool into "(other)", so the report's memory
// does not grow with the records.
func (a *acc) label(l string) string {
	if _, ok := a.labels[l]; ok || len(a.labels) < maxKeptLabels {
		return l
	}
	return "(other)"
}

// maxKeptLabels is how many distinct labels are counted exactly; the flip
// matrix shows the maxLabels most frequent of them.
const maxKeptLabels = 4 * maxLabels

// tally counts weighted trials. With agreements sampled, stored records
// carry weights: the weighted counts estimate all traffic, but the
// evidence is only as strong as the records behind them, so intervals use
// Kish's effective sample size (sum w)^2 / sum w^2, and minimum counts
// apply to the stored records.
type tally struct {
	n, dis float64 // weighted trials and disagreements
	w2     float64 // sum of squared weights
	stored float64 // records (instances) actually stored
}

func (t *tally) add(n, dis, w float64) {
	t.n += n * w
	t.dis += dis * w
	t.w2 += n * w * w
	t.stored += n
}

func (t *tally) merge(o *tally) {
	t.n, t.dis, t.w2, t.stored = t.n+o.n, t.dis+o.dis, t.w2+o.w2, t.stored+o.stored
}

// interval is the Wilson interval of the rate of x (x of t.n weighted
// trials), computed on the effective sample size.
func (t *tally) interval(x float64) *Interval {
	if t.n <= 0 || t.w2 <= 0 {
		return nil
	}
	neff := t.n * t.n / t.w2
	iv := interval(x/t.n*neff, neff)
	iv.Rate = x / t.n
	return iv
}

// score ranks disagreements: the divergence for probabilities, the
// largest difference for regression, 1 for a label flip.
func score(r *diffstore.Record) float64 {
	switch {
	case !math.IsNaN(r.MaxJS):
		return r.MaxJS
	case !math.IsNaN(r.MaxAbsDiff):
		return r.MaxAbsDiff
	}
	return 1
}

func (a *acc) addExample(r *diffstore.Record) {
	e := Example{Time: r.Time, RequestID: r.RequestID, TraceID: r.TraceID, Model: r.Model, Mode: r.Mode, Score: score(r),
		StableLabel: r.StableLabel, CanaryLabel: r.CanaryLabel, StableOutput: append(json.RawMessage(nil), r.StableOutput...),
		CanaryOutput: append(json.RawMessage(nil), r.CanaryOutput...), Inputs: r.Inputs, InputRaw: r.InputRaw}
	if len(a.top) < a.topN {
		heap.Push(&a.top, e)
	} else if less(a.top[0], e) {
		a.top[0] = e
		heap.Fix(&a.top, 0)
	}
}

// less orders examples by score, then the newer is greater.
func less(x, y Example) bool {
	if x.Score != y.Score {
		return x.Score < y.Score
	}
	return x.Time.Before(y.Time)
}

type exampleHeap []Example

func (h exampleHeap) Len() int           { return len(h) }
func (h exampleHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h exampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *exampleHeap) Push(x any)        { *h = append(*h, x.(Example)) }
func (h *exampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (a *acc) finish(q Query) *Summary {
	s := &Summary{Records: a.records, Pairs: a.pairs, Sampled: a.sampled, Instances: a.inst, Agreed: a.agreed,
		Agreement: interval(a.agreed, a.inst), Rollout: a.rollout, StepChanges: a.steps, MinSlice: q.MinSliceCount, traceURL: q.TraceURL}
	s.Rollout.Phase = q.RolloutPhase
	if a.records == 0 {
		s.Rollout.Step = -1
	}
	if !a.first.IsZero() {
		f, l := a.first.UTC(), a.last.UTC()
		s.First, s.Last = &f, &l
	}
	for _, o := range compare.Outcomes {
		c := OutcomeCount{Outcome: string(o), Pairs: a.outcomes[string(o)]}
		if a.pairs > 0 {
			c.Share = c.Pairs / a.pairs
		}
		s.Outcomes = append(s.Outcomes, c)
	}
	for k, n := range a.failures {
		s.Failures = append(s.Failures, FailureCount{Outcome: k[0], Side: k[1], Reason: k[2], Pairs: n})
	}
	sort.Slice(s.Failures, func(i, j int) bool {
		if s.Failures[i].Pairs != s.Failures[j].Pairs {
			return s.Failures[i].Pairs > s.Failures[j].Pairs
		}
		return fmt.Sprint(s.Failures[i]) < fmt.Sprint(s.Failures[j])
	})
	s.OverTime = a.overTime(q.Points)
	s.Flip = a.flipMatrix()
	if s.Flip != nil {
		s.Kappa = kappa(s.Flip.Counts)
	}
	s.Difference = distribution(&a.diff, nil)
	s.DiffVsMean = a.scatter.pts
	s.Divergence = distribution(&a.js, linspace(0, maxOf(&a.js, 1e-9), histogramBins))
	// Both models share bins, so their histograms compare bar for bar.
	hi := math.Max(quantile(&a.stable, 0.99), quantile(&a.canary, 0.99))
	edges := linspace(0, hi*1.05+1e-9, histogramBins)
	s.Latency = LatencyReport{Stable: distribution(&a.stable, edges), Canary: distribution(&a.canary, edges), Delta: distribution(&a.delta, robustEdges(&a.delta))}
	for _, field := range sortedKeys(a.slices) {
		for _, v := range sortedKeys(a.slices[field]) {
			p := a.slices[field][v]
			if p.stored < float64(q.MinSliceCount) {
				s.HiddenSlices++
				continue
			}
			s.Slices = append(s.Slices, Slice{Field: field, Value: v, Instances: p.n, Disagreed: p.dis, Rate: *p.interval(p.dis)})
		}
	}
	// Ranked by the interval's lower bound: a slice must be both bad and
	// well measured to top the list (3 of 5 does not beat 300 of 1000).
	sort.SliceStable(s.Slices, func(i, j int) bool { return s.Slices[i].Rate.Lower > s.Slices[j].Rate.Lower })
	s.Examples = make([]Example, len(a.top))
	for i := len(a.top) - 1; i >= 0; i-- {
		s.Examples[i] = heap.Pop(&a.top).(Example)
	}
	for i := range s.Examples {
		if q.TraceURL != "" && s.Examples[i].TraceID != "" {
			s.Examples[i].TraceLink = replaceTrace(q.TraceURL, s.Examples[i].TraceID)
		}
	}
	return s
}

func (a *acc) overTime(points int) []TimePoint {
	if a.first.IsZero() {
		return nil
	}
	start, end := a.first.Truncate(time.Second), a.last.Truncate(time.Second).Add(time.Second)
	width := max(end.Sub(start)/time.Duration(points), time.Duration(a.width)*time.Second)
	width = width.Round(time.Second)
	if width <= 0 {
		width = time.Second
	}
	n := int(end.Sub(start)/width) + 1
	out := make([]TimePoint, n)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * width).UTC()
		out[i].End = out[i].Start.Add(width)
	}
	sums := make([]tally, n)
	for k, v := range a.times {
		t := time.Unix(k*a.width, 0)
		i := int(t.Sub(start) / width)
		if i < 0 {
			i = 0
		}
		if i >= n {
			i = n - 1
		}
		sums[i].merge(v)
	}
	for i := range out {
		out[i].Instances, out[i].Agreed = sums[i].n, sums[i].n-sums[i].dis
		out[i].Agreement = sums[i].interval(out[i].Agreed)
	}
	return out
}

func (a *acc) flipMatrix() *FlipMatrix {
	if len(a.flips) == 0 {
		return nil
	}
	labels := sortedKeys(a.labels)
	// The most frequent labels keep their own row; the rest are pooled.
	if len(labels) > maxLabels {
		sort.Slice(labels, func(i, j int) bool { return a.labels[labels[i]] > a.labels[labels[j]] })
		labels = append(labels[:maxLabels-1:maxLabels-1], "(other)")
	}
	sortLabels(labels)
	idx := map[string]int{}
	for i, l := range labels {
		idx[l] = i
	}
	at := func(l string) int {
		if i, ok := idx[l]; ok {
			return i
		}
		return idx["(other)"]
	}
	m := &FlipMatrix{Labels: labels, Counts: make([][]float64, len(labels))}
	for i := range m.Counts {
		m.Counts[i] = make([]float64, len(labels))
	}
	for k, n := range a.flips {
		m.Counts[at(k[0])][at(k[1])] += n
	}
	for i, l := range labels {
		c := ClassFlip{Label: l}
		for j, n := range m.Counts[i] {
			c.Count += n
			if j != i {
				c.Flipped += n
			}
		}
		if c.Count > 0 {
			c.Rate = c.Flipped / c.Count
		}
		m.PerClass = append(m.PerClass, c)
	}
	return m
}

// sortLabels orders numeric labels numerically, others by name.
func sortLabels(l []string) {
	sort.SliceStable(l, func(i, j int) bool {
		a, ea := strconv.ParseFloat(l[i], 64)
		b, eb := strconv.ParseFloat(l[j], 64)
		if ea == nil && eb == nil {
			return a < b
		}
		if (ea == nil) != (eb == nil) {
			return ea == nil
		}
		return l[i] < l[j]
	})
}

func replaceTrace(tmpl, id string) string { return strings.ReplaceAll(tmpl, "{trace_id}", id) }

// robustEdges spans the 1st to 99th percentile, so a few outliers (a GC
// pause, one slow call) do not squash the histogram into one bar; the
// outliers count in the end bins.
func robustEdges(s *sample) []float64 {
	lo, hi := quantile(s, 0.01), quantile(s, 0.99)
	if hi <= lo {
		return nil
	}
	return linspace(lo, hi, histogramBins)
}
