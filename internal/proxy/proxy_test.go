package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oddStable answers with everything a careless proxy would change: an
// unusual status, repeated and non-canonical headers, a fixed Date, binary
// bytes in the body.
func oddStable(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Odd"] = []string{"a", "b,c", ""}
	h["x-lowercase"] = []string{"kept"}
	h.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
	h.Set("Content-Type", "application/x-odd; charset=latin1")
	h.Add("Set-Cookie", "a=1; Path=/")
	h.Add("Set-Cookie", "b=2")
	h.Set("Cache-Control", "no-store")
	body := "echo:" + r.Method + " " + r.URL.RequestURI() + "\x00\xff\xfe"
	h.Set("Content-Length", "")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusTeapot)
	_, _ = io.WriteString(w, body)
}

func TestPassthroughIsByteForByte(t *testing.T) {
	stable := newUpstream(t, oddStable)
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, nil)

	tests := []struct{ name, method, path, body string }{
		{"v1 predict", http.MethodPost, "/v1/models/iris:predict", v1Body},
		{"v2 infer", http.MethodPost, "/v2/models/iris/infer", v2Body},
		{"v2 versioned infer", http.MethodPost, "/v2/models/iris/versions/7/infer?trace=1", v2Body},
		{"v2 health", http.MethodGet, "/v2/health/ready", ""},
		{"v2 metadata", http.MethodGet, "/v2/models/iris", ""},
		{"v1 status", http.MethodGet, "/v1/models/iris", ""},
		{"unknown path", http.MethodPut, "/admin/whatever?x=%2F", "opaque bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {"application/json"}, "X-Client": {"1", "2"}}
			direct, directBody := do(t, tt.method, stable.URL+tt.path, tt.body, hdr)
			via, viaBody := do(t, tt.method, rt.front.URL+tt.path, tt.body, hdr)

			assert.Equal(t, direct.StatusCode, via.StatusCode)
			assert.Equal(t, directBody, viaBody)
			assert.Equal(t, direct.Header, via.Header)
			assert.Equal(t, direct.ContentLength, via.ContentLength)

			// Stable got the same request as a direct call.
			reqs := stable.requests()
			d, v := reqs[len(reqs)-2], reqs[len(reqs)-1]
			assert.Equal(t, d.Method, v.Method)
			assert.Equal(t, d.Path, v.Path)
			assert.Equal(t, d.RawQuery, v.RawQuery)
			assert.Equal(t, d.Body, v.Body)
			assert.Equal(t, d.Header.Values("X-Client"), v.Header.Values("X-Client"))
			assert.Len(t, v.Header.Get(HeaderRequestID), 32, "a request id is generated and sent to stable")
		})
	}
	rt.drain(t)
	assert.Equal(t, 4, rt.shadow(reasonNotInference), "GETs and unknown paths are never shadowed")
	assert.Equal(t, 3, int(canary.hits.Load()))
	assert.Equal(t, 3, rt.shadow(reasonSent))
}

func TestClientRequestIDIsKept(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t)}, nil)
	do(t, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", v1Body, http.Header{HeaderRequestID: {"abc-123"}})
	assert.Equal(t, []string{"abc-123"}, stable.requests()[0].Header.Values(HeaderRequestID))
}

func TestSamplingIsExact(t *testing.T) {
	for _, pct := range []int{0, 10, 50, 100} {
		t.Run(itoa(pct), func(t *testing.T) {
			stable := newUpstream(t, jsonAnswer(v1Resp))
			canary := newUpstream(t, jsonAnswer(v1Resp))
			rec := newChanRecorder()
			rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: pct}, rec)
			for range 100 {
				res, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.Equal(t, v1Resp, string(body))
			}
			rt.drain(t)
			assert.Equal(t, pct, rt.shadow(reasonSent))
			assert.Equal(t, 100-pct, rt.shadow(reasonNotSampled))
			assert.Equal(t, pct, int(canary.hits.Load()))
			assert.Equal(t, 100, int(stable.hits.Load()))
			assert.Len(t, rec.ch, pct)
			assert.Equal(t, 100, rt.requests(roleStable, code2xx))
			assert.Equal(t, pct, rt.requests(roleCanary, code2xx))
			assert.Equal(t, uint64(100), rt.observations(t, "stable"))
			assert.Equal(t, uint64(pct), rt.observations(t, "canary"))
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func decodeError(t *testing.T, body []byte) errorBody {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal(body, &e), "router errors are JSON: %s", body)
	require.NotEmpty(t, e.Error)
	return e
}

func TestBodyOverHardLimitIs413(t *testing.T) {
	big := `{"instances":[` + strings.Repeat("1,", 100) + `1]}`
	for _, pct := range []int{0, 100} { // streamed and buffered paths
		for _, chunked := range []bool{false, true} {
			t.Run(itoa(pct)+"%/chunked="+map[bool]string{true: "yes", false: "no"}[chunked], func(t *testing.T) {
				stable := newUpstream(t, jsonAnswer(v1Resp))
				canary := newUpstream(t, jsonAnswer(v1Resp))
				rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: pct, MaxBodyBytes: 100}, nil)
				var body io.Reader = strings.NewReader(big)
				if chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
				req, err := http.NewRequest(http.MethodPost, rt.front.URL+"/v1/models/iris:predict", body)
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				require.NoError(t, err)
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
				assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
				assert.Equal(t, http.StatusRequestEntityTooLarge, decodeError(t, b).Status)
				rt.drain(t)
				assert.Zero(t, canary.hits.Load())
				for _, s := range stable.requests() {
					assert.NotEqual(t, big, string(s.Body), "stable never receives an over-limit body")
				}
			})
		}
	}
}

func TestBodyOverShadowLimitIsServedNotShadowed(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, MaxBodyBytes: 1000, MaxShadowBodyBytes: 20}, nil)
	res, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, v1Resp, string(body))
	assert.Equal(t, v1Body, string(stable.requests()[0].Body))
	rt.drain(t)
	assert.Equal(t, 1, rt.shadow(reasonBodyTooLarge))
	assert.Zero(t, canary.hits.Load())
}

func TestStableDownIs502AndNoShadow(t *testing.T) {
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: closedURL(t), Canary: canary.url(t), ShadowPercent: 100}, nil)
	res, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	assert.Equal(t, http.StatusBadGateway, res.StatusCode)
	e := decodeError(t, body)
	assert.Contains(t, e.Error, "refused")
	assert.Len(t, e.RequestID, 32)
	rt.drain(t)
	assert.Zero(t, canary.hits.Load())
	assert.Equal(t, 1, rt.shadow(reasonStableFailed))
	assert.Equal(t, 1, rt.requests(roleStable, codeRefused))
}

func TestStableTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stable := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, StableTimeout: 50 * time.Millisecond}, nil)
	res, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
	assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
	assert.Contains(t, decodeError(t, body).Error, "timed out")
	rt.drain(t)
	assert.Equal(t, 1, rt.requests(roleStable, codeTimeout))
	assert.Equal(t, 1, rt.shadow(reasonStableFailed))
	assert.Zero(t, canary.hits.Load())
}

func TestClientDisconnectCancelsStable(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	stable := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // only the router's cancellation ends this
		close(cancelled)
	})
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", strings.NewReader(v1Body))
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, started, "stable called")
	cancel()
	waitFor(t, cancelled, "stable request cancelled after the client left")
	require.Error(t, <-errc)
	rt.drain(t)
	assert.Zero(t, canary.hits.Load())
	assert.Equal(t, 1, rt.requests(roleStable, codeCanceled))
}

func TestAlreadyShadowIsNotShadowedAgain(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, nil)
	for _, hdr := range []http.Header{
		{HeaderShadow: {"1"}},
		{"Host": {"iris-predictor-shadow"}},
		{"Host": {"iris-predictor-shadow:8080"}},
	} {
		hdr.Set("Content-Type", "application/json")
		res, body := do(t, http.MethodPost, rt.front.URL+"/v1/models/iris:predict", v1Body, hdr)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, v1Resp, string(body))
	}
	rt.drain(t)
	assert.Equal(t, 3, rt.shadow(reasonAlreadyShadow))
	assert.Zero(t, canary.hits.Load())
	assert.Equal(t, 3, int(stable.hits.Load()))
}

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	good, _ := url.Parse("http://127.0.0.1:1")
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Stable: required"},
		{Config{Stable: &url.URL{Scheme: "ftp", Host: "x"}}, `Stable "ftp://x": scheme`},
		{Config{Stable: good, ShadowPercent: 101, Canary: good}, "ShadowPercent 101"},
		{Config{Stable: good, ShadowPercent: 5}, "Canary: required"},
		{Config{Stable: good, Mode: "sideways"}, `Mode "sideways"`},
		{Config{Stable: good, Workers: -1}, "Workers -1"},
		{Config{Stable: good, MaxBodyBytes: 10, MaxShadowBodyBytes: 20}, "MaxShadowBodyBytes 20"},
		{Config{Stable: good, CanaryModel: "a/b"}, `CanaryModel "a/b"`},
		{Config{Stable: good, CanaryTimeout: -time.Second}, "CanaryTimeout -1s"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, nil, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tt.want)
	}
	h, err := New(Config{Stable: good}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, h.Close(context.Background()))
}

func waitFor(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(bound):
		t.Fatalf("timed out waiting: %s", what)
	}
}

func TestStableBodyCutShortAbortsClientAndIsCounted(t *testing.T) {
	stable := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, `{"predictions":`) // then the connection closes
	})
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, nil)
	req, err := http.NewRequest(http.MethodPost, rt.front.URL+"/v1/models/iris:predict", strings.NewReader(v1Body))
	require.NoError(t, err)
	res, err := client.Do(req)
	if err == nil { // headers may or may not have left before the abort
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	require.Error(t, err, "the client sees a broken answer, as stable gave, never a complete-looking one")
	rt.drain(t)
	assert.Equal(t, 1, rt.requests(roleStable, codeReset))
	assert.Equal(t, 1, rt.shadow(reasonStableFailed))
	assert.Zero(t, canary.hits.Load())
}

func TestUpgradePassesThrough(t *testing.T) {
	stable := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo " + line)
		_ = brw.Flush()
	})
	rt := newRouter(t, Config{Stable: stable.url(t)}, nil)
	conn, err := net.DialTimeout("tcp", rt.front.Listener.Addr().String(), bound)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(bound)))
	_, err = io.WriteString(conn, "GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	_, err = io.WriteString(conn, "hello\n")
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo hello\n", line)
}

// A one-letter canary model name is valid (it once failed a check that
// compared a rewrite of "/v2/models/m/infer" with itself).
func TestConfigAcceptsAnyOneSegmentCanaryModel(t *testing.T) {
	good, _ := url.Parse("http://127.0.0.1:1")
	for _, name := range []string{"m", "iris-v2", "a.b"} {
		h, err := New(Config{Stable: good, Canary: good, CanaryModel: name}, nil, nil)
		require.NoError(t, err, name)
		require.NoError(t, h.Close(context.Background()))
	}
	for _, name := range []string{".", "..", "a/b"} {
		_, err := New(Config{Stable: good, Canary: good, CanaryModel: name}, nil, nil)
		require.Error(t, err, name)
	}
}
