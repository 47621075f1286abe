package pipeline

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
)

func exchange(stableBody, canaryBody string, canaryStatus int, canaryFailure models.Failure) models.Exchange {
	return models.Exchange{
		RequestID: "r1", Protocol: models.ProtocolV1, Model: "iris", CanaryModel: "iris",
		Path: "/v1/models/iris:predict", ContentType: "application/json",
		Request: []byte(`{"instances":[[1,2],[3,4]]}`),
		Stable:  models.Response{Status: 200, ContentType: "application/json", Body: []byte(stableBody), Latency: 2 * time.Millisecond},
		Canary:  models.Response{Status: canaryStatus, ContentType: "application/json", Body: []byte(canaryBody), Latency: 3 * time.Millisecond, Failure: canaryFailure},
	}
}

func TestRecordCountsOutcomesInstancesAndFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var seen []compare.Outcome
	p, err := New(Config{OnResult: func(_ models.Exchange, r compare.Result) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Outcome)
	}}, reg)
	require.NoError(t, err)

	// No data yet: the agreement gauge is absent, never a fake 100%.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP shadowsplit_window_instances Agreement trials in this replica's comparison window.
# TYPE shadowsplit_window_instances gauge
shadowsplit_window_instances 0
`), "shadowsplit_window_instances", "shadowsplit_agreement_ratio"))

	p.Record(exchange(`{"predictions":[0,1]}`, `{"predictions":[0,1]}`, 200, ""))
	p.Record(exchange(`{"predictions":[0,1]}`, `{"predictions":[0,2]}`, 200, ""))
	p.Record(exchange(`{"predictions":[0,1]}`, ``, 0, models.FailureTimeout))
	p.Record(exchange(`{"predictions":[0,1]}`, `{"error":"boom"}`, 503, ""))

	assert.Equal(t, []compare.Outcome{compare.OutcomeAgree, compare.OutcomeDisagree, compare.OutcomeCanaryTimeout, compare.OutcomeCanaryError}, seen)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP shadowsplit_compared_instances_total Agreement trials (batch instances) by result; a canary failure counts its stable batch as disagreements. Fleet agreement = rate(result="agree") / rate(all).
# TYPE shadowsplit_compared_instances_total counter
shadowsplit_compared_instances_total{result="agree"} 3
shadowsplit_compared_instances_total{result="disagree"} 5
# HELP shadowsplit_comparison_failures_total Exchanges that could not be compared as agree/disagree, by outcome, the side at fault and the reason.
# TYPE shadowsplit_comparison_failures_total counter
shadowsplit_comparison_failures_total{outcome="canary_error",reason="status",side="canary"} 1
shadowsplit_comparison_failures_total{outcome="canary_timeout",reason="timeout",side="canary"} 1
`), "shadowsplit_compared_instances_total", "shadowsplit_comparison_failures_total"))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.outcomes[compare.OutcomeDisagree]))

	s := p.Snapshot()
	assert.Equal(t, int64(8), s.Instances)
	assert.Equal(t, int64(3), s.Agreed)
	js := toJSON(s)
	require.NotNil(t, js.Agreement)
	assert.InDelta(t, 3.0/8, js.Agreement.Rate, 1e-9)
	assert.Equal(t, int64(1), js.Outcomes["canary_timeout"])
}

func TestPerModelOptionsApply(t *testing.T) {
	// Regression with a wide tolerance for "iris" only: 1.0 vs 1.05 agree.
	p, err := New(Config{Models: map[string]compare.Options{"iris": {Mode: compare.ModeRegression, AbsTol: 0.1}}}, nil)
	require.NoError(t, err)
	p.Record(exchange(`{"predictions":[1.0,2.0]}`, `{"predictions":[1.05,2.0]}`, 200, ""))
	assert.Equal(t, int64(1), p.Snapshot().Outcomes[compare.OutcomeAgree])

	other := exchange(`{"predictions":[1.0,2.0]}`, `{"predictions":[1.05,2.0]}`, 200, "")
	other.Model = "other"
	p.Record(other)
	assert.Equal(t, int64(1), p.Snapshot().Outcomes[compare.OutcomeDisagree], "the default tolerance applies to other models")
}

func TestNewRejectsInvalidOptionsNamingTheModel(t *testing.T) {
	_, err := New(Config{Models: map[string]compare.Options{"iris": {Mode: "fuzzy"}}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "compare.models.iris")
	assert.Contains(t, err.Error(), "fuzzy")
}
