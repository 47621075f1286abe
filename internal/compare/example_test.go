package compare_test

import (
	"fmt"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

func ExampleCompare() {
	ex := models.Exchange{
		Protocol: models.ProtocolV1,
		Stable:   models.Response{Status: 200, Body: []byte(`{"predictions": [[0.1, 0.9], [0.8, 0.2]]}`), Latency: 12 * time.Millisecond},
		Canary:   models.Response{Status: 200, Body: []byte(`{"predictions": [[0.3, 0.7], [0.4, 0.6]]}`), Latency: 15 * time.Millisecond},
	}
	r := compare.Compare(ex, compare.Options{}) // zero Options: auto mode
	fmt.Println(r.Outcome, r.Agreed, "of", r.Instances, "delta", r.LatencyDelta)
	for _, d := range r.Diffs {
		fmt.Printf("%s stable=%d canary=%d agree=%v js=%.3f\n", d.Mode, d.Stable.Index, d.Canary.Index, d.Agree, d.JS)
	}
	// Output:
	// disagree 1 of 2 delta 3ms
	// probabilities stable=1 canary=1 agree=true js=0.047
	// probabilities stable=0 canary=1 agree=false js=0.125
}

func ExampleAggregator() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agg, err := compare.NewAggregator(compare.AggregatorConfig{Window: 5 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	for i := range 100 {
		r := compare.Result{Outcome: compare.OutcomeAgree, Instances: 1, Agreed: 1}
		if i%20 == 0 {
			r = compare.Result{Outcome: compare.OutcomeCanaryTimeout, Instances: 1}
		}
		agg.Add(r)
	}
	s := agg.Snapshot()
	fmt.Printf("agreement %.2f [%.3f, %.3f] over %d trials, %d timeouts\n",
		s.Agreement, s.Lower, s.Upper, s.Instances, s.Outcomes[compare.OutcomeCanaryTimeout])
	// Output:
	// agreement 0.95 [0.888, 0.978] over 100 trials, 5 timeouts
}
