package compare

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

func okResp(body string, latency time.Duration) models.Response {
	return models.Response{Status: 200, ContentType: "application/json", Body: []byte(body), Latency: latency}
}

func exchange(proto models.Protocol, stable, canary models.Response) models.Exchange {
	return models.Exchange{Protocol: proto, Model: "m", CanaryModel: "m", Stable: stable, Canary: canary}
}

func v1(stable, canary string) models.Exchange {
	return exchange(models.ProtocolV1, okResp(stable, 10*time.Millisecond), okResp(canary, 12*time.Millisecond))
}

func v2out(name, dtype, shape, data string) string {
	return fmt.Sprintf(`{"model_name":"m","id":"x","outputs":[{"name":%q,"datatype":%q,"shape":%s,"data":%s}]}`, name, dtype, shape, data)
}

func v2(stable, canary string) models.Exchange {
	return exchange(models.ProtocolV2, okResp(stable, 10*time.Millisecond), okResp(canary, 12*time.Millisecond))
}

// TestCompareOutcomes covers every outcome, side and reason, and the trial
// accounting that makes failures count against agreement.
func TestCompareOutcomes(t *testing.T) {
	good := `{"predictions": [1, 2, 3]}`
	status := func(code int) models.Response {
		return models.Response{Status: code, Body: []byte(`{"error":"x"}`), Latency: time.Millisecond}
	}
	failed := func(f models.Failure) models.Response { return models.Response{Failure: f, Latency: time.Second} }
	tests := []struct {
		name      string
		ex        models.Exchange
		opts      Options
		outcome   Outcome
		side      Side
		reason    Reason
		instances int
		agreed    int
	}{
		{"agree", v1(good, good), Options{}, OutcomeAgree, SideNone, ReasonNone, 3, 3},
		{"disagree on one of three", v1(good, `{"predictions": [1, 0, 3]}`), Options{}, OutcomeDisagree, SideNone, ReasonNone, 3, 2},
		{"stable 500", exchange(models.ProtocolV1, status(500), okResp(good, 0)), Options{}, OutcomeStableError, SideStable, ReasonStatus, 0, 0},
		{"stable refused", exchange(models.ProtocolV1, failed(models.FailureRefused), okResp(good, 0)), Options{}, OutcomeStableError, SideStable, ReasonRefused, 0, 0},
		{"canary 503", exchange(models.ProtocolV1, okResp(good, 0), status(503)), Options{}, OutcomeCanaryError, SideCanary, ReasonStatus, 3, 0},
		{"canary reset", exchange(models.ProtocolV1, okResp(good, 0), failed(models.FailureReset)), Options{}, OutcomeCanaryError, SideCanary, ReasonReset, 3, 0},
		{"canary transport error", exchange(models.ProtocolV1, okResp(good, 0), failed(models.FailureError)), Options{}, OutcomeCanaryError, SideCanary, ReasonTransport, 3, 0},
		{"canary timeout", exchange(models.ProtocolV1, okResp(good, 0), failed(models.FailureTimeout)), Options{}, OutcomeCanaryTimeout, SideCanary, ReasonTimeout, 3, 0},
		{"canary timeout, stable unreadable", exchange(models.ProtocolV1, okResp(`nope`, 0), failed(models.FailureTimeout)), Options{}, OutcomeCanaryTimeout, SideCanary, ReasonTimeout, 0, 0},
		{"both failed", exchange(models.ProtocolV1, status(500), failed(models.FailureTimeout)), Options{}, OutcomeBothFailed, SideBoth, ReasonStatus, 0, 0},
		{"stable 404 and canary 404", exchange(models.ProtocolV1, status(404), status(404)), Options{}, OutcomeBothFailed, SideBoth, ReasonStatus, 0, 0},
		{"canary garbage", v1(good, `<html>oops</html>`), Options{}, OutcomeUnparseable, SideCanary, ReasonMalformedJSON, 3, 0},
		{"stable garbage", v1(`{"predictions": [1,`, good), Options{}, OutcomeUnparseable, SideStable, ReasonMalformedJSON, 0, 0},
		{"canary truncated", exchange(models.ProtocolV1, okResp(good, 0), models.Response{Status: 200, Body: []byte(good[:10]), Truncated: true}), Options{}, OutcomeUnparseable, SideCanary, ReasonTruncated, 3, 0},
		{"canary binary tensors", exchange(models.ProtocolV2, okResp(v2out("y", "FP32", "[1]", "[1.5]"), 0), models.Response{Status: 200, ContentType: "application/octet-stream", Body: []byte{0, 1}}), Options{}, OutcomeUnparseable, SideCanary, ReasonBinaryTensor, 1, 0},
		{"unknown protocol", exchange(models.ProtocolUnknown, okResp(good, 0), okResp(good, 0)), Options{}, OutcomeUnparseable, SideBoth, ReasonProtocol, 0, 0},
		{"canary changed schema: no predictions", v1(good, `{"result": [1, 2, 3]}`), Options{}, OutcomeSchemaMismatch, SideCanary, ReasonMissingOutput, 3, 0},
		{"batch size differs", v1(good, `{"predictions": [1, 2]}`), Options{}, OutcomeSchemaMismatch, SideBoth, ReasonBatchSize, 3, 0},
		{"label against vector", v1(`{"predictions": [1]}`, `{"predictions": [[0.2, 0.8]]}`), Options{}, OutcomeSchemaMismatch, SideBoth, ReasonKind, 1, 0},
		{"vector lengths differ", v1(`{"predictions": [[0.2, 0.8]]}`, `{"predictions": [[0.2, 0.7, 0.1]]}`), Options{}, OutcomeSchemaMismatch, SideBoth, ReasonLength, 1, 0},
		{"v2 missing configured output on canary",
			v2(v2out("probs", "FP32", "[1,2]", "[0.1,0.9]"), v2out("scores", "FP32", "[1,2]", "[0.1,0.9]")),
			Options{Output: "probs"}, OutcomeSchemaMismatch, SideCanary, ReasonMissingOutput, 1, 0},
		{"v2 missing configured output on stable",
			v2(v2out("scores", "FP32", "[1,2]", "[0.1,0.9]"), v2out("probs", "FP32", "[1,2]", "[0.1,0.9]")),
			Options{Output: "probs"}, OutcomeSchemaMismatch, SideStable, ReasonMissingOutput, 0, 0},
		{"v2 unconfigured output follows stable's first output by name",
			v2(`{"outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[1]},{"name":"probs","datatype":"FP32","shape":[1,2],"data":[0.1,0.9]}]}`,
				`{"outputs":[{"name":"probs","datatype":"FP32","shape":[1,2],"data":[0.1,0.9]},{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}`),
			Options{}, OutcomeAgree, SideNone, ReasonNone, 1, 1},
		{"v2 canary lacks stable's first output",
			v2(v2out("label", "INT64", "[1]", "[1]"), v2out("class", "INT64", "[1]", "[1]")),
			Options{}, OutcomeSchemaMismatch, SideCanary, ReasonMissingOutput, 1, 0},
		{"v2 canary shape does not match data",
			v2(v2out("p", "FP32", "[1,2]", "[0.1,0.9]"), v2out("p", "FP32", "[1,3]", "[0.1,0.9]")),
			Options{}, OutcomeSchemaMismatch, SideCanary, ReasonShape, 1, 0},
		{"v2 canary datatype changed to BYTES",
			v2(v2out("p", "FP32", "[1,2]", "[0.1,0.9]"), v2out("p", "BYTES", "[1,2]", "[0.1,0.9]")),
			Options{}, OutcomeSchemaMismatch, SideCanary, ReasonDatatype, 1, 0},
		{"v2 canary changed probabilities to labels",
			v2(v2out("p", "FP32", "[2,2]", "[0.1,0.9,0.8,0.2]"), v2out("p", "INT64", "[2]", "[1,0]")),
			Options{}, OutcomeSchemaMismatch, SideBoth, ReasonKind, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(tt.ex, tt.opts)
			assert.Equal(t, tt.outcome, r.Outcome, r.Detail)
			assert.Equal(t, tt.side, r.Side)
			assert.Equal(t, tt.reason, r.Reason)
			assert.Equal(t, tt.instances, r.Instances, "trials")
			assert.Equal(t, tt.agreed, r.Agreed)
			checkResult(t, r)
			if tt.outcome != OutcomeAgree && tt.outcome != OutcomeDisagree {
				assert.NotEmpty(t, r.Detail)
				assert.Nil(t, r.Diffs)
			} else {
				assert.Len(t, r.Diffs, r.Instances)
			}
		})
	}
}

func TestCompareLatencies(t *testing.T) {
	ex := v1(`{"predictions":[1]}`, `{"predictions":[1]}`)
	ex.Stable.Latency, ex.Canary.Latency = 30*time.Millisecond, 20*time.Millisecond
	r := Compare(ex, Options{})
	assert.True(t, r.Paired && r.StableAnswered && r.CanaryAnswered)
	assert.Equal(t, 30*time.Millisecond, r.StableLatency)
	assert.Equal(t, 20*time.Millisecond, r.CanaryLatency)
	assert.Equal(t, -10*time.Millisecond, r.LatencyDelta, "canary faster: negative delta")

	ex.Canary = models.Response{Failure: models.FailureTimeout, Latency: time.Second}
	r = Compare(ex, Options{})
	assert.False(t, r.Paired, "no delta without two answers")
	assert.False(t, r.CanaryAnswered)
	assert.True(t, r.StableAnswered)

	ex.Canary = models.Response{Status: 500, Latency: time.Millisecond}
	r = Compare(ex, Options{})
	assert.True(t, r.CanaryAnswered, "an HTTP error is still an answer with a latency")
	assert.False(t, r.Paired)
}

// TestCompareModes runs each mode on V1 and V2 answers.
func TestCompareModes(t *testing.T) {
	probsA := `[0.1, 0.7, 0.2]`
	probsB := `[0.15, 0.6, 0.25]`
	probsC := `[0.5, 0.3, 0.2]`
	tests := []struct {
		name   string
		ex     models.Exchange
		opts   Options
		agreed []bool
		mode   Mode // per-instance mode applied
	}{
		// auto
		{"auto: int labels", v1(`{"predictions":[0,1,2]}`, `{"predictions":[0,2,2]}`), Options{}, []bool{true, false, true}, ModeClassification},
		{"auto: string labels", v1(`{"predictions":["cat","dog"]}`, `{"predictions":["cat","cow"]}`), Options{}, []bool{true, false}, ModeClassification},
		{"auto: bool labels", v1(`{"predictions":[true]}`, `{"predictions":[false]}`), Options{}, []bool{false}, ModeClassification},
		{"auto: floats within default tolerance", v1(`{"predictions":[100.0, 2.5]}`, `{"predictions":[100.005, 2.6]}`), Options{}, []bool{true, false}, ModeRegression},
		{"auto: float against integer literal", v1(`{"predictions":[3.0000001]}`, `{"predictions":[3]}`), Options{}, []bool{true}, ModeRegression},
		{"auto: probability vectors by argmax", v1(`{"predictions":[`+probsA+`,`+probsA+`]}`, `{"predictions":[`+probsB+`,`+probsC+`]}`), Options{}, []bool{true, false}, ModeProbabilities},
		{"auto: logits by tolerance", v1(`{"predictions":[[-1.0, 2.0]]}`, `{"predictions":[[-1.0, 2.5]]}`), Options{}, []bool{false}, ModeRegression},
		{"auto: objects canonically", v1(`{"predictions":[{"a":1,"b":[1,2]}, {"a":1}]}`, `{"predictions":[{"b":[1.0,2],"a":1e0}, {"a":2}]}`), Options{}, []bool{true, false}, ModeExact},
		{"auto: v2 int labels", v2(v2out("y", "INT64", "[2]", "[1,0]"), v2out("y", "INT64", "[2]", "[1,1]")), Options{}, []bool{true, false}, ModeClassification},
		{"auto: v2 probabilities", v2(v2out("y", "FP32", "[1,3]", probsA), v2out("y", "FP32", "[1,3]", probsB)), Options{}, []bool{true}, ModeProbabilities},
		{"auto: v2 triton classification", v2(v2out("y", "BYTES", "[2,2]", `["0.7:1:b","0.2:2:c","0.5:0:a","0.4:1:b"]`), v2out("y", "BYTES", "[2,2]", `["0.6:1:b","0.3:2:c","0.5:1:b","0.4:0:a"]`)), Options{}, []bool{true, false}, ModeClassification},
		{"auto: v2 bytes vectors", v2(v2out("y", "BYTES", "[2,2]", `["a","b","c","d"]`), v2out("y", "BYTES", "[2,2]", `["a","b","c","x"]`)), Options{}, []bool{true, false}, ModeExact},
		// classification
		{"classification: argmax of logits", v1(`{"predictions":[[-1.0, 2.0, 0.5]]}`, `{"predictions":[[-3.0, 1.0, 0.9]]}`), Options{Mode: ModeClassification}, []bool{true}, ModeClassification},
		{"classification: single probability thresholds at 0.5", v1(`{"predictions":[0.6, 0.4]}`, `{"predictions":[0.9, 0.6]}`), Options{Mode: ModeClassification}, []bool{true, false}, ModeClassification},
		{"classification: label output of V1 objects", v1(`{"predictions":[{"label":"cat","p":0.9}]}`, `{"predictions":[{"p":0.7,"label":"cat"}]}`), Options{Mode: ModeClassification, Output: "label"}, []bool{true}, ModeClassification},
		{"classification: index against name via label_names", v1(`{"predictions":[2, 0]}`, `{"predictions":["virginica", "versicolor"]}`), Options{Mode: ModeClassification, LabelNames: []string{"setosa", "versicolor", "virginica"}}, []bool{true, false}, ModeClassification},
		{"classification: triton strings against int labels", v2(v2out("y", "BYTES", "[1,1]", `["0.9:2"]`), v2out("y", "INT64", "[1]", `[2]`)), Options{Mode: ModeClassification}, []bool{true}, ModeClassification},
		// regression
		{"regression: abs and rel tolerance", v1(`{"predictions":[1.0, 1000.0, 0.0]}`, `{"predictions":[1.05, 1009.0, 0.2]}`), Options{Mode: ModeRegression, AbsTol: 0.1, RelTol: 0.01}, []bool{true, true, false}, ModeRegression},
		{"regression: negative tolerance means exact", v1(`{"predictions":[1.0, 2.0]}`, `{"predictions":[1.0, 2.0000001]}`), Options{Mode: ModeRegression, AbsTol: -1, RelTol: -1}, []bool{true, false}, ModeRegression},
		{"regression: integers as numbers", v1(`{"predictions":[3, 4]}`, `{"predictions":[3, 5]}`), Options{Mode: ModeRegression, AbsTol: 0.5}, []bool{true, false}, ModeRegression},
		{"regression: v2 vectors element-wise", v2(v2out("y", "FP64", "[2,2]", "[1,2,3,4]"), v2out("y", "FP64", "[2,2]", "[1,2,3,4.5]")), Options{Mode: ModeRegression}, []bool{true, false}, ModeRegression},
		// probabilities
		{"probabilities: label agreement", v1(`{"predictions":[`+probsA+`,`+probsA+`]}`, `{"predictions":[`+probsB+`,`+probsC+`]}`), Options{Mode: ModeProbabilities}, []bool{true, false}, ModeProbabilities},
		{"probabilities: max_js tightens agreement", v1(`{"predictions":[`+probsA+`]}`, `{"predictions":[[0.3, 0.4, 0.3]]}`), Options{Mode: ModeProbabilities, MaxJS: 0.01}, []bool{false}, ModeProbabilities},
		{"probabilities: binary scalar", v1(`{"predictions":[0.8, 0.3]}`, `{"predictions":[0.7, 0.6]}`), Options{Mode: ModeProbabilities}, []bool{true, false}, ModeProbabilities},
		{"probabilities: v2 output selected by name",
			v2(`{"outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[1]},{"name":"probs","datatype":"FP32","shape":[1,3],"data":`+probsA+`}]}`,
				`{"outputs":[{"name":"probs","datatype":"FP32","shape":[1,3],"data":`+probsC+`},{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}`),
			Options{Mode: ModeProbabilities, Output: "probs"}, []bool{false}, ModeProbabilities},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(tt.ex, tt.opts)
			require.Contains(t, []Outcome{OutcomeAgree, OutcomeDisagree}, r.Outcome, r.Detail)
			require.Len(t, r.Diffs, len(tt.agreed))
			agreed := 0
			for i, want := range tt.agreed {
				assert.Equal(t, want, r.Diffs[i].Agree, "instance %d: %+v", i, r.Diffs[i])
				assert.Equal(t, tt.mode, r.Diffs[i].Mode, "instance %d", i)
				if want {
					agreed++
				}
			}
			assert.Equal(t, agreed, r.Agreed)
			assert.Equal(t, len(tt.agreed), r.Instances)
			wantOutcome := OutcomeAgree
			if agreed < len(tt.agreed) {
				wantOutcome = OutcomeDisagree
			}
			assert.Equal(t, wantOutcome, r.Outcome)
		})
	}
}

func TestCompareReportsLabelsAndMetrics(t *testing.T) {
	r := Compare(v1(`{"predictions":[[0.1, 0.7, 0.2]]}`, `{"predictions":[[0.5, 0.3, 0.2]]}`),
		Options{Mode: ModeProbabilities, TopK: 2, LabelNames: []string{"a", "b", "c"}})
	require.Len(t, r.Diffs, 1)
	d := r.Diffs[0]
	assert.Equal(t, Label{Index: 1, Name: "b"}, d.Stable)
	assert.Equal(t, Label{Index: 0, Name: "a"}, d.Canary)
	assert.InDelta(t, 0.4, d.MaxAbsDiff, 1e-12)
	assert.InDelta(t, 0.5, d.TopKOverlap, 1e-12, "top-2 {1,2} vs {0,1}")
	assert.InDelta(t, jsReference([]float64{0.1, 0.7, 0.2}, []float64{0.5, 0.3, 0.2}), d.JS, 1e-12)

	r = Compare(v1(`{"predictions":["dog"]}`, `{"predictions":["cat"]}`), Options{})
	assert.Equal(t, Label{Index: -1, Name: "dog"}, r.Diffs[0].Stable)
	assert.Equal(t, Label{Index: -1, Name: "cat"}, r.Diffs[0].Canary)
}

func TestCompareIndexAgainstNameWithoutLabelNamesIsAMismatch(t *testing.T) {
	r := Compare(v1(`{"predictions":[2]}`, `{"predictions":["virginica"]}`), Options{})
	assert.Equal(t, OutcomeSchemaMismatch, r.Outcome)
	assert.Equal(t, ReasonKind, r.Reason)
}

func TestCompareModeCannotReadKind(t *testing.T) {
	for _, tt := range []struct {
		mode Mode
		ex   models.Exchange
	}{
		{ModeRegression, v1(`{"predictions":["a"]}`, `{"predictions":["a"]}`)},
		{ModeProbabilities, v1(`{"predictions":[1]}`, `{"predictions":[1]}`)},
		{ModeClassification, v1(`{"predictions":[{"a":1}]}`, `{"predictions":[{"a":1}]}`)},
	} {
		r := Compare(tt.ex, Options{Mode: tt.mode})
		assert.Equal(t, OutcomeSchemaMismatch, r.Outcome, tt.mode)
		assert.Equal(t, ReasonKind, r.Reason, tt.mode)
	}
}

func TestCompareNaNPolicy(t *testing.T) {
	both := v1(`{"predictions":[NaN, [0.5, NaN], [NaN, 0.2, 0.8]]}`, `{"predictions":[NaN, [0.5, NaN], [NaN, 0.2, 0.8]]}`)
	one := v1(`{"predictions":[NaN, 1.5]}`, `{"predictions":[1.0, NaN]}`)
	tests := []struct {
		name   string
		ex     models.Exchange
		opts   Options
		agreed []bool
	}{
		{"default is nan_equal", both, Options{}, []bool{true, true, true}},
		{"nan_equal", both, Options{NaN: NaNEqual}, []bool{true, true, true}},
		{"nan_disagree", both, Options{NaN: NaNDisagree}, []bool{false, false, false}},
		{"NaN against a number never agrees", one, Options{NaN: NaNEqual}, []bool{false, false}},
		{"classification nan_equal", both, Options{Mode: ModeClassification}, []bool{true, true, true}},
		{"classification nan_disagree", v1(`{"predictions":[[NaN, 0.2, 0.8]]}`, `{"predictions":[[NaN, 0.3, 0.7]]}`), Options{Mode: ModeClassification, NaN: NaNDisagree}, []bool{false}},
		{"probabilities nan_equal", v1(`{"predictions":[[NaN, 0.2, 0.8]]}`, `{"predictions":[[NaN, 0.3, 0.7]]}`), Options{Mode: ModeProbabilities}, []bool{true}},
		{"probabilities NaN in different places", v1(`{"predictions":[[NaN, 0.2, 0.8]]}`, `{"predictions":[[0.1, NaN, 0.7]]}`), Options{Mode: ModeProbabilities}, []bool{false}},
		{"exact nan_equal", v1(`{"predictions":[{"a":NaN}]}`, `{"predictions":[{"a":NaN}]}`), Options{Mode: ModeExact}, []bool{true}},
		{"exact nan_disagree", v1(`{"predictions":[{"a":NaN}]}`, `{"predictions":[{"a":NaN}]}`), Options{Mode: ModeExact, NaN: NaNDisagree}, []bool{false}},
		{"auto json nan_disagree", v1(`{"predictions":[{"a":NaN}]}`, `{"predictions":[{"a":NaN}]}`), Options{NaN: NaNDisagree}, []bool{false}},
		{"infinities equal", v1(`{"predictions":[Infinity, [Infinity, 1.0]]}`, `{"predictions":[Infinity, [Infinity, 1.0]]}`), Options{NaN: NaNDisagree}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(tt.ex, tt.opts)
			require.Len(t, r.Diffs, len(tt.agreed), "%s: %s", r.Outcome, r.Detail)
			for i, want := range tt.agreed {
				assert.Equal(t, want, r.Diffs[i].Agree, "instance %d", i)
			}
		})
	}
}

func TestCompareExact(t *testing.T) {
	tests := []struct {
		name    string
		ex      models.Exchange
		opts    Options
		outcome Outcome
		agreed  []bool
	}{
		{"canonical: key order, spacing, number spelling, escapes",
			v1(`{"predictions":[{"a":1,"b":"\u0063at"}]}`, `{ "predictions" : [ { "b" : "cat", "a" : 1.0 } ] }`),
			Options{Mode: ModeExact}, OutcomeAgree, []bool{true}},
		{"per instance",
			v1(`{"predictions":[{"a":1},{"a":2},[1,2]]}`, `{"predictions":[{"a":1},{"a":3},[1,2]]}`),
			Options{Mode: ModeExact}, OutcomeDisagree, []bool{true, false, true}},
		{"ignored paths with wildcard",
			v1(`{"predictions":[{"a":1,"ts":"10:00"},{"a":2,"ts":"10:01"}]}`, `{"predictions":[{"a":1,"ts":"11:00"},{"ts":"11:01","a":2}]}`),
			Options{Mode: ModeExact, IgnorePaths: []string{"predictions.*.ts"}}, OutcomeAgree, []bool{true, true}},
		{"ignored array index",
			v1(`{"predictions":[[1,2,3]]}`, `{"predictions":[[1,9,3]]}`),
			Options{Mode: ModeExact, IgnorePaths: []string{"predictions.0.1"}}, OutcomeAgree, []bool{true}},
		{"not ignored without the path",
			v1(`{"predictions":[{"a":1,"ts":"10:00"}]}`, `{"predictions":[{"a":1,"ts":"11:00"}]}`),
			Options{Mode: ModeExact}, OutcomeDisagree, []bool{false}},
		{"v2 ignores id, model name and version; whole body is one instance",
			v2(`{"model_name":"m-v1","model_version":"1","id":"a","outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}`,
				`{"id":"b","model_name":"m-v2","model_version":"2","outputs":[{"datatype":"FP32","name":"y","shape":[1],"data":[1.0]}]}`),
			Options{Mode: ModeExact}, OutcomeAgree, []bool{true}},
		{"v1 without a predictions array is one instance",
			v1(`{"result":{"x":1}}`, `{"result":{"x":2}}`),
			Options{Mode: ModeExact}, OutcomeDisagree, []bool{false}},
		{"type differences disagree",
			v1(`{"predictions":["1", true, null, {"a":[]}]}`, `{"predictions":[1, 1, false, {"a":{}}]}`),
			Options{Mode: ModeExact}, OutcomeDisagree, []bool{false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(tt.ex, tt.opts)
			require.Equal(t, tt.outcome, r.Outcome, r.Detail)
			require.Len(t, r.Diffs, len(tt.agreed))
			for i, want := range tt.agreed {
				assert.Equal(t, want, r.Diffs[i].Agree, "instance %d", i)
				assert.Equal(t, ModeExact, r.Diffs[i].Mode)
			}
		})
	}
	t.Run("batch size differs", func(t *testing.T) {
		r := Compare(v1(`{"predictions":[1,2]}`, `{"predictions":[1]}`), Options{Mode: ModeExact})
		assert.Equal(t, OutcomeSchemaMismatch, r.Outcome)
		assert.Equal(t, ReasonBatchSize, r.Reason)
		assert.Equal(t, 2, r.Instances)
	})
	t.Run("unparseable canary", func(t *testing.T) {
		r := Compare(v1(`{"predictions":[1,2]}`, `{"predictions":[1`), Options{Mode: ModeExact})
		assert.Equal(t, OutcomeUnparseable, r.Outcome)
		assert.Equal(t, SideCanary, r.Side)
		assert.Equal(t, 2, r.Instances)
	})
	t.Run("canary error", func(t *testing.T) {
		ex := v1(`{"predictions":[1,2]}`, ``)
		ex.Canary = models.Response{Status: 502}
		r := Compare(ex, Options{Mode: ModeExact})
		assert.Equal(t, OutcomeCanaryError, r.Outcome)
		assert.Equal(t, 2, r.Instances)
	})
}

func TestCompareIntoReusesDiffs(t *testing.T) {
	ex := v1(`{"predictions":[[0.1,0.9],[0.8,0.2]]}`, `{"predictions":[[0.2,0.8],[0.3,0.7]]}`)
	var r Result
	CompareInto(ex, Options{}, &r)
	first := &r.Diffs[0]
	CompareInto(ex, Options{}, &r)
	assert.Same(t, first, &r.Diffs[0])
	assert.Equal(t, OutcomeDisagree, r.Outcome)
	assert.Equal(t, 1, r.Agreed)
}

func TestCompareDoesNotRetainBodies(t *testing.T) {
	stable := []byte(`{"predictions":["cat"]}`)
	canary := []byte(`{"predictions":["dog"]}`)
	ex := exchange(models.ProtocolV1, models.Response{Status: 200, Body: stable}, models.Response{Status: 200, Body: canary})
	r := Compare(ex, Options{})
	// The proxy reuses its buffers once the Recorder returns.
	copy(stable, `{"predictions":["xxx"]}`)
	copy(canary, `{"predictions":["yyy"]}`)
	assert.Equal(t, "cat", r.Diffs[0].Stable.Name)
	assert.Equal(t, "dog", r.Diffs[0].Canary.Name)
}

func TestOptionsValidate(t *testing.T) {
	require.NoError(t, Options{}.Validate())
	require.NoError(t, Options{Mode: ModeProbabilities, NaN: NaNDisagree, TopK: 3}.Validate())
	for _, bad := range []Options{
		{Mode: "fuzzy"},
		{NaN: "nan_maybe"},
		{TopK: -1},
		{IgnorePaths: []string{""}},
		{AbsTol: nan()},
	} {
		err := bad.Validate()
		require.Error(t, err, "%+v", bad)
		assert.Contains(t, err.Error(), "compare options")
	}
}
