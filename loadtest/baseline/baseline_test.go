package baseline

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type seen struct {
	path, body string
}

func upstream(t *testing.T, answer string, block <-chan struct{}) (*httptest.Server, chan seen) {
	t.Helper()
	got := make(chan seen, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.URL.RequestURI(), string(b)}
		if block != nil {
			<-block
		}
		w.Header().Set("X-From", answer)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestMirrorsACopyAndAnswersFromStable(t *testing.T) {
	stable, _ := upstream(t, "stable", nil)
	block := make(chan struct{})
	// The canary hangs until the end of the test: the client must still get
	// its answer, proving the mirror is fire-and-forget.
	canary, canaryGot := upstream(t, "canary", block)
	defer close(block)
	p, err := New(Config{Stable: mustURL(t, stable.URL), Canary: mustURL(t, canary.URL), MirrorPercent: 100})
	require.NoError(t, err)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	resp, body := post(t, front.URL+"/v1/models/demo:predict?x=1", `{"instances":[[1]]}`)
	assert.Equal(t, "stable", body)
	assert.Equal(t, "stable", resp.Header.Get("X-From"))
	got := <-canaryGot // the mirror arrived (and is still blocked)
	assert.Equal(t, seen{"/v1/models/demo:predict?x=1", `{"instances":[[1]]}`}, got)
	assert.Equal(t, uint64(1), p.Mirrored())
	assert.Equal(t, int64(1), p.MirrorsInFlight())
}

func TestMirrorPercentIsDeterministic(t *testing.T) {
	stable, _ := upstream(t, "stable", nil)
	canary, canaryGot := upstream(t, "canary", nil)
	p, err := New(Config{Stable: mustURL(t, stable.URL), Canary: mustURL(t, canary.URL), MirrorPercent: 25})
	require.NoError(t, err)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	for range 20 {
		_, body := post(t, front.URL+"/x", "b")
		require.Equal(t, "stable", body)
	}
	assert.Equal(t, uint64(5), p.Mirrored())
	for range 5 {
		<-canaryGot
	}
}

func TestNoMirrorWithoutPercent(t *testing.T) {
	stable, stableGot := upstream(t, "stable", nil)
	canary, canaryGot := upstream(t, "canary", nil)
	p, err := New(Config{Stable: mustURL(t, stable.URL), Canary: mustURL(t, canary.URL)})
	require.NoError(t, err)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	_, body := post(t, front.URL+"/x", "hello")
	assert.Equal(t, "stable", body)
	assert.Equal(t, seen{"/x", "hello"}, <-stableGot)
	assert.Zero(t, p.Mirrored())
	assert.Empty(t, canaryGot)
}

func TestConfigValidation(t *testing.T) {
	u := mustURL(t, "http://127.0.0.1:1")
	for _, cfg := range []Config{{}, {Stable: u, MirrorPercent: 50}, {Stable: u, Canary: u, MirrorPercent: 101}} {
		_, err := New(cfg)
		assert.Error(t, err)
	}
}
