package modelserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

func model(t *testing.T, variant string) *demomodel.Model {
	t.Helper()
	m, err := demomodel.Load(variant)
	require.NoError(t, err)
	return m
}

func start(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Model == nil {
		cfg.Model = model(t, demomodel.VariantStable)
	}
	h, err := NewHandler(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// rows returns n generated rows, with at least one inside the canary slice.
func rows(n int) []demomodel.Features {
	g := demomodel.NewGenerator(11)
	out := make([]demomodel.Features, n)
	for i := range out {
		out[i] = g.Next()
	}
	out[0] = demomodel.Features{X: [6]float64{2, 0.1, -0.3, 0.5, 0, 1}, Region: demomodel.North}
	return out
}

func TestV1PredictReturnsTheModelsProbabilities(t *testing.T) {
	stable := model(t, demomodel.VariantStable)
	srv := start(t, Config{Model: stable})
	in := rows(20)
	status, hdr, body := do(t, http.MethodPost, srv.URL+"/v1/models/demo:predict", string(EncodeV1(in)))
	require.Equal(t, http.StatusOK, status, string(body))
	assert.Equal(t, "application/json", hdr.Get("Content-Type"))
	var resp struct{ Predictions [][]float64 }
	require.NoError(t, json.Unmarshal(body, &resp))
	require.Len(t, resp.Predictions, len(in))
	for i, p := range resp.Predictions {
		want := stable.Predict(in[i])
		assert.InDeltaSlice(t, want[:], p, 1e-5, "row %d", i)
	}
}

func TestV1AcceptsObjectsAndLabelOutput(t *testing.T) {
	canary := model(t, demomodel.VariantCanary)
	srv := start(t, Config{Model: canary, V1Output: V1Label, ModelName: "churn"})
	body := `{"instances":[
		{"x0":2,"x1":0.1,"x2":-0.3,"x3":0.5,"x4":0,"x5":1,"region":"north"},
		[2,0.1,-0.3,0.5,0,1,0]]}`
	status, _, b := do(t, http.MethodPost, srv.URL+"/v1/models/churn:predict", body)
	require.Equal(t, http.StatusOK, status, string(b))
	var resp struct{ Predictions []int }
	require.NoError(t, json.Unmarshal(b, &resp))
	f := rows(1)[0]
	assert.Equal(t, []int{canary.Label(f), canary.Label(f)}, resp.Predictions)
}

func TestStableAndCanaryServersDisagreeOnTheSlice(t *testing.T) {
	s := start(t, Config{Model: model(t, demomodel.VariantStable), V1Output: V1Label})
	c := start(t, Config{Model: model(t, demomodel.VariantCanary), V1Output: V1Label})
	in := rows(200)
	get := func(url string) []int {
		status, _, b := do(t, http.MethodPost, url+"/v1/models/demo:predict", string(EncodeV1(in)))
		require.Equal(t, http.StatusOK, status, string(b))
		var resp struct{ Predictions []int }
		require.NoError(t, json.Unmarshal(b, &resp))
		return resp.Predictions
	}
	sp, cp := get(s.URL), get(c.URL)
	for i := range in {
		if !demomodel.InSlice(in[i]) {
			assert.Equal(t, sp[i], cp[i], "row %d outside the slice", i)
		}
	}
	assert.NotEqual(t, sp[0], cp[0], "row 0 is in the slice")
}

func TestV2InferSingleTensor(t *testing.T) {
	stable := model(t, demomodel.VariantStable)
	srv := start(t, Config{Model: stable})
	in := rows(5)
	for _, path := range []string{"/v2/models/demo/infer", "/v2/models/demo/versions/1/infer"} {
		status, _, b := do(t, http.MethodPost, srv.URL+path, string(EncodeV2(in)))
		require.Equal(t, http.StatusOK, status, string(b))
		var resp struct {
			ModelName    string `json:"model_name"`
			ModelVersion string `json:"model_version"`
			Outputs      []struct {
				Name     string
				Shape    []int64
				Datatype string
				Data     []float64
			}
		}
		require.NoError(t, json.Unmarshal(b, &resp))
		assert.Equal(t, "demo", resp.ModelName)
		assert.Equal(t, "1", resp.ModelVersion)
		require.Len(t, resp.Outputs, 2)
		probs, labels := resp.Outputs[0], resp.Outputs[1]
		assert.Equal(t, OutputProbabilities, probs.Name)
		assert.Equal(t, "FP32", probs.Datatype)
		assert.Equal(t, []int64{5, demomodel.NumClasses}, probs.Shape)
		assert.Equal(t, OutputLabel, labels.Name)
		assert.Equal(t, "INT64", labels.Datatype)
		assert.Equal(t, []int64{5}, labels.Shape)
		for i, f := range in {
			want := stable.Predict(f)
			assert.InDeltaSlice(t, want[:], probs.Data[i*demomodel.NumClasses:(i+1)*demomodel.NumClasses], 1e-5)
			assert.Equal(t, float64(stable.Label(f)), labels.Data[i])
		}
	}
}

func TestV2InferNamedTensorsNestedDataAndOutputFilter(t *testing.T) {
	stable := model(t, demomodel.VariantStable)
	srv := start(t, Config{Model: stable})
	body := `{"id":"req-7","inputs":[
		{"name":"x0","shape":[2,1],"datatype":"FP64","data":[[2],[-1]]},
		{"name":"x1","shape":[2],"datatype":"FP32","data":[0.1,0]},
		{"name":"x2","shape":[2],"datatype":"FP32","data":[-0.3,0]},
		{"name":"x3","shape":[2],"datatype":"FP32","data":[0.5,0]},
		{"name":"x4","shape":[2],"datatype":"INT32","data":[0,0]},
		{"name":"x5","shape":[2],"datatype":"FP32","data":[1,0]},
		{"name":"region","shape":[2],"datatype":"BYTES","data":["north","west"]}],
		"outputs":[{"name":"label"}]}`
	status, _, b := do(t, http.MethodPost, srv.URL+"/v2/models/demo/infer", body)
	require.Equal(t, http.StatusOK, status, string(b))
	var resp struct {
		ID      string
		Outputs []struct {
			Name string
			Data []int64
		}
	}
	require.NoError(t, json.Unmarshal(b, &resp))
	assert.Equal(t, "req-7", resp.ID)
	require.Len(t, resp.Outputs, 1)
	assert.Equal(t, OutputLabel, resp.Outputs[0].Name)
	second := demomodel.Features{X: [6]float64{-1}, Region: demomodel.West}
	assert.Equal(t, []int64{int64(stable.Label(rows(1)[0])), int64(stable.Label(second))}, resp.Outputs[0].Data)
}

func TestHealthAndMetadata(t *testing.T) {
	srv := start(t, Config{Model: model(t, demomodel.VariantCanary)})
	for path, want := range map[string]string{
		"/v2/health/live":                  `{"live":true}`,
		"/v2/health/ready":                 `{"ready":true}`,
		"/v2/models/demo/ready":            `{"name":"demo","ready":true}`,
		"/v1/models/demo":                  `{"name":"demo","ready":true}`,
		"/v2/models/demo/versions/1/ready": `{"name":"demo","ready":true}`,
	} {
		status, _, b := do(t, http.MethodGet, srv.URL+path, "")
		require.Equal(t, http.StatusOK, status, path)
		assert.JSONEq(t, want, string(b), path)
	}
	status, _, b := do(t, http.MethodGet, srv.URL+"/v2/models/demo", "")
	require.Equal(t, http.StatusOK, status)
	var meta struct {
		Name       string
		Versions   []string
		Outputs    []struct{ Name string }
		Parameters struct{ Variant string }
	}
	require.NoError(t, json.Unmarshal(b, &meta))
	assert.Equal(t, "demo", meta.Name)
	assert.Equal(t, []string{"1"}, meta.Versions)
	assert.Equal(t, "canary", meta.Parameters.Variant)
	require.Len(t, meta.Outputs, 2)
}

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	srv := start(t, Config{MaxBodyBytes: 1024})
	v1, v2 := srv.URL+"/v1/models/demo:predict", srv.URL+"/v2/models/demo/infer"
	cases := []struct {
		name, method, url, body string
		hdr                     []string
		status                  int
		mention                 string
	}{
		{"v1 bad json", "POST", v1, `{"instances":[`, nil, 400, "invalid JSON"},
		{"v1 no instances", "POST", v1, `{"inputs":[]}`, nil, 400, `"instances" is required`},
		{"v1 short row", "POST", v1, `{"instances":[[1,2,3]]}`, nil, 400, "instances[0]"},
		{"v1 bad region", "POST", v1, `{"instances":[[1,2,3,4,5,6,"mars"]]}`, nil, 400, "mars"},
		{"v1 missing feature", "POST", v1, `{"instances":[{"x0":1}]}`, nil, 400, `"x1"`},
		{"v1 string feature", "POST", v1, `{"instances":[["a",2,3,4,5,6,"north"]]}`, nil, 400, "x0"},
		{"v1 get predict", "GET", v1, ``, nil, 405, "POST"},
		{"v1 unknown model", "POST", srv.URL + "/v1/models/other:predict", `{"instances":[]}`, nil, 404, `"other"`},
		{"v1 unknown verb", "POST", srv.URL + "/v1/models/demo:explain", `{}`, nil, 404, "explain"},
		{"v2 bad json", "POST", v2, `nope`, nil, 400, "invalid JSON"},
		{"v2 no inputs", "POST", v2, `{}`, nil, 400, `"inputs" is required`},
		{"v2 wrong shape", "POST", v2, `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, nil, 400, "shape"},
		{"v2 short data", "POST", v2, `{"inputs":[{"name":"input","shape":[2,7],"datatype":"FP32","data":[1,2,3,4,5,6,0]}]}`, nil, 400, "do not fill"},
		{"v2 bad datatype", "POST", v2, `{"inputs":[{"name":"input","shape":[1,7],"datatype":"BYTES","data":["a","b","c","d","e","f","g"]}]}`, nil, 400, "numeric"},
		{"v2 bad region index", "POST", v2, `{"inputs":[{"name":"input","shape":[1,7],"datatype":"FP32","data":[1,2,3,4,5,6,9]}]}`, nil, 400, "region index"},
		{"v2 unknown output", "POST", v2, string(EncodeV2(rows(1)[:1]))[:len(EncodeV2(rows(1)[:1]))-1] + `,"outputs":[{"name":"logits"}]}`, nil, 400, "logits"},
		{"v2 binary extension", "POST", v2, `{}`, []string{"Inference-Header-Content-Length", "10"}, 400, "binary tensor"},
		{"v2 unknown version", "POST", srv.URL + "/v2/models/demo/versions/2/infer", `{}`, nil, 404, `"2"`},
		{"v2 unknown endpoint", "POST", srv.URL + "/v2/models/demo/explain", `{}`, nil, 404, "explain"},
		{"unknown path", "GET", srv.URL + "/predict", ``, nil, 404, "/predict"},
		{"body too large", "POST", v1, `{"instances":[` + strings.Repeat(`[1,2,3,4,5,6,"north"],`, 100) + `]}`, nil, 413, "1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, b := do(t, tc.method, tc.url, tc.body, tc.hdr...)
			assert.Equal(t, tc.status, status, string(b))
			assert.Equal(t, "application/json", hdr.Get("Content-Type"))
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal(b, &e), string(b))
			assert.Contains(t, e.Error, tc.mention)
		})
	}
}

func TestFailRateFailsAnExactShare(t *testing.T) {
	srv := start(t, Config{FailRate: 0.25})
	body := string(EncodeV1(rows(1)))
	failed := 0
	for range 100 {
		status, _, _ := do(t, http.MethodPost, srv.URL+"/v1/models/demo:predict", body)
		if status == http.StatusInternalServerError {
			failed++
		} else {
			require.Equal(t, http.StatusOK, status)
		}
	}
	assert.Equal(t, 25, failed)
	// Health is never failed: probes must not flap with the injected errors.
	status, _, _ := do(t, http.MethodGet, srv.URL+"/v2/health/ready", "")
	assert.Equal(t, http.StatusOK, status)
}

func TestDelayEndsWhenTheClientGoesAway(t *testing.T) {
	h, err := NewHandler(Config{Model: model(t, demomodel.VariantStable), Delay: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/models/demo:predict", bytes.NewReader(EncodeV1(rows(1))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req) // would block for an hour without the cancellation path
	assert.Empty(t, rec.Body.String())
}

func TestConfigValidation(t *testing.T) {
	m := model(t, demomodel.VariantStable)
	for _, cfg := range []Config{
		{},
		{Model: m, FailRate: 1.5},
		{Model: m, Delay: -time.Second},
		{Model: m, V1Output: "logits"},
		{Model: m, ModelName: "a/b"},
	} {
		_, err := NewHandler(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}
