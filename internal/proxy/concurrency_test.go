package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoModel answers with the request body wrapped, so every captured answer
// can be checked against its own request.
func echoModel(tag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"%s":%s}`, tag, b)
	}
}

// TestConcurrentExchangesNeverMixBuffers drives many clients at once through
// pooled flights and buffers; any reuse before Record returned, or a body
// shared between requests, shows up as a mismatched Exchange (and -race
// reports the overlap).
func TestConcurrentExchangesNeverMixBuffers(t *testing.T) {
	for _, mode := range []Mode{ModeInline, ModeTap} {
		t.Run(string(mode), func(t *testing.T) { testConcurrentExchanges(t, mode) })
	}
}

func testConcurrentExchanges(t *testing.T, mode Mode) {
	stable := newUpstream(t, echoModel("stable"))
	canary := newUpstream(t, echoModel("canary"))
	type pair struct{ req, stable, canary string }
	got := make(chan pair, 1000)
	rec := recorderFunc(func(ex exchange) { got <- pair{string(ex.Request), string(ex.Stable.Body), string(ex.Canary.Body)} })
	rt := newRouter(t, Config{Stable: stable.url(t), Canary: canary.url(t), ShadowPercent: 100, Workers: 4, Mode: mode, Tap: TapBudget{MaxInFlight: 1000}}, rec)

	const clients, each = 8, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`{"instances":[[%d,%d]],"pad":"%0*d"}`, c, i, (c*each+i)%300, 0)
				res, err := client.Post(rt.front.URL+"/v1/models/iris:predict", "application/json", stringsReader(body))
				if !assert.NoError(t, err) {
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if mode == ModeInline {
					assert.Equal(t, `{"stable":`+body+`}`, string(b))
				}
			}
		}()
	}
	wg.Wait()
	rt.drain(t)
	n := rt.shadow(reasonSent)
	require.Equal(t, clients*each, n+rt.shadow(reasonQueueFull))
	require.Len(t, got, n)
	for range n {
		p := <-got
		assert.Equal(t, `{"stable":`+p.req+`}`, p.stable)
		assert.Equal(t, `{"canary":`+p.req+`}`, p.canary)
	}
}
