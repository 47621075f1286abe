package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// resetConn answers by tearing the connection down with a TCP RST.
func resetConn(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func TestCanaryFaultsLeaveClientUnaffected(t *testing.T) {
	slowGate := make(chan struct{})
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: nobody listens
		outcome outcome
		failure models.Failure
		status  int
		after   func() // runs once the client has its answer
	}{
		{name: "refused", outcome: codeRefused, failure: models.FailureRefused},
		{name: "reset", handler: resetConn, outcome: codeReset, failure: models.FailureReset},
		{name: "5xx", handler: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}, outcome: code5xx, status: http.StatusServiceUnavailable},
		{name: "hanging", handler: func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the router's canary timeout cuts it
		}, outcome: codeTimeout, failure: models.FailureTimeout},
		{name: "slow", handler: func(w http.ResponseWriter, r *http.Request) {
			<-slowGate // answers only after the client has been served
			jsonAnswer(v1Resp)(w, r)
		}, outcome: code2xx, status: http.StatusOK, after: func() { close(slowGate) }},
		{name: "garbage", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>502 from some proxy</html>\x00")
		}, outcome: code2xx, status: http.StatusOK},
		{name: "changed schema", handler: jsonAnswer(`{"predictions":{"label":"a"}}`), outcome: code2xx, status: http.StatusOK},
		{name: "body cut short", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"predictions":`)
		}, outcome: codeReset, failure: models.FailureReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stable := newUpstream(t, jsonAnswer(v1Resp))
			var canaryURL *url.URL
			if tt.handler == nil {
				canaryURL = closedURL(t)
			} else {
				canaryURL = newUpstream(t, tt.handler).url(t)
			}
			rec := newChanRecorder()
			timeout := 100 * time.Millisecond // only the hanging canary reaches it
			if tt.after != nil {
				timeout = bound
			}
			rt := newRouter(t, Config{Stable: stable.url(t), Canary: canaryURL, ShadowPercent: 100, CanaryTimeout: timeout}, rec)

			res, body := postJSON(t, rt.front.URL+"/v1/models/iris:predict", v1Body)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, v1Resp, string(body))
			require.Equal(t, "application/json", res.Header.Get("Content-Type"))
			if tt.after != nil {
				tt.after()
			}

			ex := rec.next(t)
			assert.Equal(t, tt.failure, ex.Canary.Failure)
			assert.Equal(t, tt.status, ex.Canary.Status)
			assert.True(t, ex.Stable.OK())
			assert.Equal(t, v1Resp, string(ex.Stable.Body))
			rt.drain(t)
			assert.Equal(t, 1, rt.requests(roleCanary, tt.outcome))
			assert.Equal(t, 1, rt.requests(roleStable, code2xx))
			assert.Equal(t, 1, rt.shadow(reasonSent))
		})
	}
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"5xx", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{"reset", resetConn},
		{"refused", nil},
		{"hanging", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stable := newUpstream(t, jsonAnswer(v1Resp))
			var canaryURL *url.URL
			if tt.handler == nil {
				canaryURL = closedURL(t)
			} else {
				canaryURL = newUpstream(t, tt.handler).url(t)
			}
			rec := newChanRecorder()
			rt := newRouter(t, Config{
				Stable: stable.url(t), Canary: canaryURL, ShadowPercent: 100, Workers: 1,
				CanaryTimeout: 50 * time.Millisecond,
				Breaker:       BreakerConfig{ConsecutiveFailures: 3, OpenTimeout: time.Hour},
			}, rec)
			u := rt.front.URL + "/v1/models/iris:predict"
			for range 3 {
				postJSON(t, u, v1Body)
				ex := rec.next(t) // one at a time: the breaker sees them in order
				assert.False(t, ex.Canary.OK())
			}
			assert.Equal(t, 2.0, rt.gauge(t, "shadowsplit_breaker_state"), "open")
			for range 4 {
				res, body := postJSON(t, u, v1Body)
				assert.Equal(t, http.StatusOK, res.StatusCode)
				assert.Equal(t, v1Resp, string(body))
			}
			rt.drain(t)
			assert.Equal(t, 4, rt.shadow(reasonBreakerOpen))
			assert.Equal(t, 3, rt.shadow(reasonSent))
			assert.Empty(t, rec.ch)
		})
	}
}

func TestBreakerHalfOpensAndRecovers(t *testing.T) {
	healthy := make(chan struct{})
	canary := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-healthy:
			jsonAnswer(v1Resp)(w, r)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	stable := newUpstream(t, jsonAnswer(v1Resp))
	rec := newChanRecorder()
	rt := newRouter(t, Config{
		Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 1,
		Breaker: BreakerConfig{ConsecutiveFailures: 1, OpenTimeout: 20 * time.Millisecond},
	}, rec)
	u := rt.front.URL + "/v1/models/iris:predict"
	postJSON(t, u, v1Body)
	rec.next(t)
	assert.Equal(t, 2.0, rt.gauge(t, "shadowsplit_breaker_state"))
	close(healthy)
	eventually(t, func() bool { return rt.gauge(t, "shadowsplit_breaker_state") == 1 }, "half-open after OpenTimeout")
	postJSON(t, u, v1Body)
	assert.True(t, rec.next(t).Canary.OK())
	assert.Equal(t, 0.0, rt.gauge(t, "shadowsplit_breaker_state"), "a good probe closes it")
}

// A client whose body breaks off gets a 400, and the shadow accounting
// says why nothing was compared.
func TestBrokenClientBodyIsCounted(t *testing.T) {
	stable := newUpstream(t, jsonAnswer(v1Resp))
	canary := newUpstream(t, jsonAnswer(v1Resp))
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100}, nil)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(rt.front.URL, "http://"), bound)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(bound)))
	_, err = io.WriteString(conn, "POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"instances\"")
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	eventually(t, func() bool { return rt.shadow(reasonBodyError) == 1 }, "body_error counted")
	assert.Empty(t, stable.requests(), "a broken body never reaches stable")
}
