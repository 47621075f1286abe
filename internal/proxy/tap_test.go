package proxy

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tapCopy(t *testing.T, rt *router, path, body string) (int, map[string]string) {
	t.Helper()
	res, b := do(t, http.MethodPost, rt.front.URL+path, body, http.Header{
		"Content-Type": {"application/json"}, "Host": {"iris-predictor-shadow:8080"}, "Authorization": {"Bearer x"}})
	var m map[string]string
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return res.StatusCode, m
}

func TestTapReplaysToBothModels(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v2Resp))
	canary := newUpstream(t, jsonAnswer(`{"outputs":[]}`))
	rec := newChanRecorder()
	rt := newRouter(t, Config{Mode: ModeTap, Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, CanaryModel: "iris-v2"}, rec)

	status, m := tapCopy(t, rt, "/v2/models/iris/infer", v2Body)
	assert.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "accepted", m["status"])
	ex := rec.next(t)
	assert.Equal(t, v2Resp, string(ex.Stable.Body))
	assert.Equal(t, `{"outputs":[]}`, string(ex.Canary.Body))
	assert.Equal(t, v2Body, string(ex.Request))
	assert.Equal(t, "iris-v2", ex.CanaryModel)

	s, c := stable.requests()[0], canary.requests()[0]
	assert.Equal(t, "/v2/models/iris/infer", s.Path)
	assert.Equal(t, "/v2/models/iris-v2/infer", c.Path)
	assert.Equal(t, v2Body, string(s.Body))
	for _, r := range []seen{s, c} {
		assert.Equal(t, "1", r.Header.Get(HeaderShadow), "both replays are marked")
		assert.Empty(t, r.Header.Get("Authorization"))
		assert.Equal(t, ex.RequestID, r.Header.Get(HeaderRequestID))
		assert.NotContains(t, r.Host, "-shadow", "upstreams come from config, not from the Host")
	}

	// Non-inference copies and our own replays are acknowledged, not replayed.
	status, m = tapCopy(t, rt, "/v2/health/ready", "")
	assert.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "not_inference", m["reason"])
	res, _ := do(t, http.MethodPost, rt.front.URL+"/v2/models/iris/infer", v2Body, http.Header{HeaderShadow: {"1"}})
	assert.Equal(t, http.StatusAccepted, res.StatusCode)
	rt.drain(t)
	assert.Equal(t, 1, rt.shadow(reasonSent))
	assert.Equal(t, 1, rt.shadow(reasonNotInference))
	assert.Equal(t, 1, rt.shadow(reasonAlreadyShadow))
	assert.Equal(t, 1, int(stable.hits.Load()))
	assert.Equal(t, 1, rt.requests(roleStable, code2xx))
	assert.Equal(t, 1, rt.requests(roleCanary, code2xx))
}

func TestTapAnswersBeforeReplaying(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	blocked := func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		jsonAnswer(v1Resp)(w, r)
	}
	stable, canary := newUpstream(t, blocked), newUpstream(t, blocked)
	rec := newChanRecorder()
	rt := newRouter(t, Config{Mode: ModeTap, Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100,
		CanaryTimeout: bound, Tap: TapBudget{MaxInFlight: 2}}, rec)

	status, m := tapCopy(t, rt, "/v1/models/iris:predict", v1Body)
	assert.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "accepted", m["status"])
	waitFor(t, entered, "replay started")
	waitFor(t, entered, "both replays started")
	// Both models are blocked; the router still answers at once.
	_, m = tapCopy(t, rt, "/v1/models/iris:predict", v1Body)
	assert.Equal(t, "accepted", m["status"])
	_, m = tapCopy(t, rt, "/v1/models/iris:predict", v1Body)
	assert.Equal(t, "dropped", m["status"])
	assert.Equal(t, "tap_inflight", m["reason"])
	close(release)
	rt.drain(t)
	assert.Equal(t, 1, rt.shadow(reasonTapInFlight))
	assert.Equal(t, 2, rt.shadow(reasonSent))
	assert.Len(t, rec.ch, 2)
}

func TestTapRateBudget(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	// One token, refilled every ~17 minutes: exactly one replay passes.
	rt := newRouter(t, Config{Mode: ModeTap, Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100,
		Tap: TapBudget{MaxReplayPerSecond: 0.001}}, rec)
	for range 5 {
		status, _ := tapCopy(t, rt, "/v1/models/iris:predict", v1Body)
		assert.Equal(t, http.StatusAccepted, status)
	}
	rt.drain(t)
	assert.Equal(t, 1, rt.shadow(reasonSent))
	assert.Equal(t, 4, rt.shadow(reasonTapRate))
	assert.Equal(t, 1, int(stable.hits.Load()))
	assert.Equal(t, 1, int(canary.hits.Load()))
}

func TestTapSamplingAndSkips(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Mode: ModeTap, Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 50, MaxShadowBodyBytes: 1000}, nil)
	for range 10 {
		tapCopy(t, rt, "/v1/models/iris:predict", v1Body)
	}
	tapCopy(t, rt, "/v1/models/iris:predict", `{"bad json`)
	rt.drain(t)
	// Copies 1,3,...,11 are picked; the 11th cannot be compared.
	assert.Equal(t, 5, rt.shadow(reasonSent))
	assert.Equal(t, 1, rt.shadow(reasonMalformedJSON))
	assert.Equal(t, 5, rt.shadow(reasonNotSampled))
	assert.Equal(t, int64(rt.shadow(reasonSent)), stable.hits.Load(), "no replay of what cannot be compared")
}
