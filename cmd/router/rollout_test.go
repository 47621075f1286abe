package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
	"github.com/shadowsplit/shadowsplit/internal/modelserver"
	"github.com/shadowsplit/shadowsplit/internal/rollout"
)

const vsManifest = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: model
  namespace: models
spec:
  hosts: [model]
  http:
  - name: shadowsplit
    route:
    - destination: {host: model-router}
      weight: 100
    - destination: {host: model-canary}
      weight: 0
`

// rolloutRouter starts `router serve` with a file-backed rollout between
// two real demo model servers, and a token when withToken.
func rolloutRouter(t *testing.T, canaryVariant string, threshold float64, withToken bool) (*runningRouter, string, []string) {
	t.Helper()
	stable, _ := modelServer(t, demomodel.VariantStable, "demo")
	canary, _ := modelServer(t, canaryVariant, "demo")
	return rolloutRouterWith(t, stable.URL, canary.URL, threshold, withToken, "    latencySlack: 200ms\n")
}

// modelServerWith is a demo model server with the delay and failure knobs.
func modelServerWith(t *testing.T, delay time.Duration, failRate float64) string {
	t.Helper()
	m, err := demomodel.Load(demomodel.VariantStable)
	require.NoError(t, err)
	h, err := modelserver.NewHandler(modelserver.Config{Model: m, ModelName: "demo", Delay: delay, FailRate: failRate})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func rolloutRouterWith(t *testing.T, stableURL, canaryURL string, threshold float64, withToken bool, extraGates string) (*runningRouter, string, []string) {
	t.Helper()
	dir := t.TempDir()
	vsPath := filepath.Join(dir, "vs.yaml")
	require.NoError(t, os.WriteFile(vsPath, []byte(vsManifest), 0o644))
	admin := ""
	var cliArgs []string
	if withToken {
		tok := filepath.Join(dir, "token")
		require.NoError(t, os.WriteFile(tok, []byte("s3cret\n"), 0o600))
		admin = "admin: {tokenFile: " + tok + "}\n"
		cliArgs = []string{"--token-file", tok}
	}
	cfg := `stable: {url: ` + stableURL + `}
canary: {url: ` + canaryURL + `}
shadow: {percent: 100}
` + admin + `rollout:
  enabled: true
  target: file
  file: ` + vsPath + `
  name: model
  hosts: {router: model-router, canary: model-canary}
  interval: 100ms
  gates:
    agreementThreshold: ` + strings.TrimRight(strings.TrimRight(jsonFloat(threshold), "0"), ".") + `
    minPairs: 50
    minDwell: 300ms
    minLatencySamples: 5
` + extraGates
	cfgPath := filepath.Join(dir, "router.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	r := startRouter(t, "--config", cfgPath)
	return r, vsPath, cliArgs
}

func jsonFloat(f float64) string { b, _ := json.Marshal(f); return string(b) }

// load sends batches of 10 rows through the router until stopped.
func load(t *testing.T, r *runningRouter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seed := uint64(1); ctx.Err() == nil; seed++ {
			body := string(modelserver.EncodeV1(rows(seed, 10)))
			resp, err := client.Post(r.data+"/v1/models/demo:predict", "application/json", strings.NewReader(body))
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// cli runs `router rollout ...` against r's admin port.
func cli(t *testing.T, r *runningRouter, extra []string, args ...string) (string, error) {
	t.Helper()
	var out, errb syncBuffer
	full := append([]string{"rollout"}, args...)
	full = append(full, "--admin", r.admin)
	full = append(full, extra...)
	err := run(context.Background(), full, func(string) string { return "" }, &out, &errb)
	return out.String() + errb.String(), err
}

func cliStatus(t *testing.T, r *runningRouter, extra []string) rolloutStatusJSON {
	t.Helper()
	out, err := cli(t, r, extra, "status", "--json")
	require.NoError(t, err, out)
	var st rolloutStatusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	return st
}

func TestServeRolloutPromotesAnAgreeingCanaryOnTheFile(t *testing.T) {
	r, vsPath, tok := rolloutRouter(t, demomodel.VariantStable, 0.9, true)
	stop := load(t, r)
	defer stop()
	var seen []int32
	require.Eventually(t, func() bool {
		st := cliStatus(t, r, tok)
		if n := len(seen); st.State.ID != "" && (n == 0 || seen[n-1] != st.CanaryWeight) {
			seen = append(seen, st.CanaryWeight)
		}
		return st.State.Phase == rollout.PhasePromoted
	}, 60*time.Second, 50*time.Millisecond)
	stop()
	b, err := os.ReadFile(vsPath)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"phase":"Promoted"`)
	assert.Equal(t, int32(100), seen[len(seen)-1])
	assert.Subset(t, []int32{0, 5, 10, 25, 50, 100}, seen)

	out, err := cli(t, r, tok, "status")
	require.NoError(t, err)
	assert.Contains(t, out, "Promoted, step 5, canary 100%")
	assert.Contains(t, out, "GatesPassedFinal")
	m := metricsText(t, r.admin)
	assert.Contains(t, m, `shadowsplit_rollout_phase{phase="Promoted"} 1`)
	assert.Contains(t, m, `shadowsplit_rollout_canary_weight 100`)
	assert.Contains(t, m, `shadowsplit_rollout_transitions_total{reason="GatesPassed"} 4`)

	_, err = cli(t, r, tok, "abort")
	assert.ErrorContains(t, err, "already Promoted", "a finished rollout rejects commands")
}

func TestServeRolloutRollsBackADisagreeingCanary(t *testing.T) {
	r, _, tok := rolloutRouter(t, demomodel.VariantCanary, 0.99, true)
	stop := load(t, r)
	defer stop()
	var st rolloutStatusJSON
	require.Eventually(t, func() bool {
		st = cliStatus(t, r, tok)
		return st.State.Phase.Terminal()
	}, 60*time.Second, 50*time.Millisecond)
	assert.Equal(t, rollout.PhaseRolledBack, st.State.Phase)
	assert.Equal(t, rollout.ReasonAgreementLow, st.State.Reason, st.State.Message)
	assert.Equal(t, int32(0), st.CanaryWeight)
	assert.Equal(t, 0, st.State.Step, "the canary never got live traffic")
}

// TestServeRolloutRollsBackASlowCanaryAndAFailingOne: real model servers,
// one 3x slower than stable, one answering 500 on a fifth of the requests.
func TestServeRolloutRollsBackASlowCanaryAndAFailingOne(t *testing.T) {
	// Each case isolates one gate: the others are set so loose that only
	// the gate under test can fire, whatever the shared machine's jitter
	// does to latency (a canary's 500s also count as disagreements, so the
	// failing case lowers the agreement threshold below 80%).
	for _, c := range []struct {
		name           string
		stable, canary string
		threshold      float64
		gates          string
		reason         rollout.Reason
	}{
		{"slow", modelServerWith(t, 20*time.Millisecond, 0), modelServerWith(t, 60*time.Millisecond, 0), 0.9, "    latencySlack: 5ms\n", rollout.ReasonLatency},
		{"failing", modelServerWith(t, 0, 0), modelServerWith(t, 0, 0.2), 0.5, "    latencySlack: 10s\n", rollout.ReasonCanaryErrors},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _, tok := rolloutRouterWith(t, c.stable, c.canary, c.threshold, true, c.gates)
			stop := load(t, r)
			defer stop()
			var st rolloutStatusJSON
			require.Eventually(t, func() bool {
				st = cliStatus(t, r, tok)
				return st.State.Phase.Terminal()
			}, 60*time.Second, 50*time.Millisecond)
			assert.Equal(t, rollout.PhaseRolledBack, st.State.Phase)
			assert.Equal(t, c.reason, st.State.Reason, st.State.Message)
			assert.Equal(t, int32(0), st.CanaryWeight)
		})
	}
}

func TestRolloutControlNeedsATokenAndPausesResumes(t *testing.T) {
	open, _, _ := rolloutRouter(t, demomodel.VariantStable, 0.9, false)
	_, err := cli(t, open, nil, "pause")
	assert.ErrorContains(t, err, "rollout control is disabled")
	assert.ErrorContains(t, err, "403")
	st := cliStatus(t, open, nil) // status stays readable
	assert.False(t, st.ControlEnabled)

	r, _, tok := rolloutRouter(t, demomodel.VariantStable, 0.9, true)
	_, err = cli(t, r, nil, "status")
	assert.ErrorContains(t, err, "401", "no token, no API")
	require.Eventually(t, func() bool { return cliStatus(t, r, tok).State.ID != "" }, 20*time.Second, 50*time.Millisecond)
	out, err := cli(t, r, tok, "pause")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Pause: OperatorPaused")
	stop := load(t, r)
	time.Sleep(time.Second) // enough for a step, if it were not paused
	st = cliStatus(t, r, tok)
	assert.Equal(t, rollout.PhasePaused, st.State.Phase)
	assert.Equal(t, 0, st.State.Step)
	_, err = cli(t, r, tok, "pause")
	assert.ErrorContains(t, err, "already paused")
	out, err = cli(t, r, tok, "resume")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { return cliStatus(t, r, tok).State.Step >= 1 }, 30*time.Second, 50*time.Millisecond)
	stop()
	out, err = cli(t, r, tok, "promote")
	require.NoError(t, err, out)
	assert.Equal(t, int32(100), cliStatus(t, r, tok).CanaryWeight)
	_, err = cli(t, r, tok, "frobnicate")
	assert.True(t, errors.Is(err, errUsage))
}

func TestRolloutConfigErrorsNameTheField(t *testing.T) {
	bad := RolloutConfig{Enabled: true, Target: "etcd", Interval: Duration(time.Millisecond),
		Gates:    RolloutGates{AgreementThreshold: 1.5, MinPairs: -1},
		Evidence: RolloutEvidence{Source: "prometheus"}}
	err := errors.Join(bad.validate("tap")...)
	require.Error(t, err)
	for _, field := range []string{"rollout.target", "rollout.name", "rollout.hosts.router", "rollout.hosts.canary",
		"rollout.hosts.stable", "rollout.interval", "rollout.gates.agreementThreshold", "rollout.gates.minPairs",
		"rollout.evidence.prometheusURL"} {
		assert.Contains(t, err.Error(), "config: "+field+":")
	}
	plan := withRolloutDefaults(RolloutConfig{Enabled: true, Target: "file", File: "x", Name: "m",
		Hosts: RolloutHosts{Router: "r", Canary: "c"}, Plan: []int32{0, 50, 40}})
	assert.ErrorContains(t, errors.Join(plan.validate("inline")...), "config: rollout.plan:")
	assert.Empty(t, RolloutConfig{}.validate("inline"), "disabled: nothing to check")
}

// TestServeRolloutStampsDiffRecords: the diff store learns each transition,
// so records compared during a step carry that rollout's id and step.
func TestServeRolloutStampsDiffRecords(t *testing.T) {
	stable := modelServerWith(t, 0, 0)
	canary := modelServerWith(t, 0, 0)
	db := filepath.Join(t.TempDir(), "diffs.db")
	r, _, tok := rolloutRouterWith(t, stable, canary, 0.9, true,
		"    latencySlack: 10s\nstore:\n  sqlite: {path: "+db+"}\n  agreementSample: 1\n")
	stop := load(t, r)
	var st rolloutStatusJSON
	require.Eventually(t, func() bool {
		st = cliStatus(t, r, tok)
		return st.State.Phase.Terminal()
	}, 60*time.Second, 50*time.Millisecond)
	stop()
	require.Equal(t, rollout.PhasePromoted, st.State.Phase, st.State.Message)

	req, err := http.NewRequest(http.MethodGet, r.admin+"/api/v1/diffs?format=jsonl", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	steps := map[int]bool{}
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var rec struct {
			RolloutID   string `json:"rollout_id"`
			RolloutStep int    `json:"rollout_step"`
		}
		require.NoError(t, dec.Decode(&rec))
		if rec.RolloutID != "" {
			assert.Equal(t, st.State.ID, rec.RolloutID)
			steps[rec.RolloutStep] = true
		}
	}
	assert.True(t, steps[1] && steps[2], "records were stamped with the steps they were compared in: %v", steps)
}
