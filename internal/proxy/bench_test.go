package proxy

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// discardWriter is a ResponseWriter that costs nothing, so the benchmark
// measures the handler, not the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// benchServe drives h with one reused request against real upstreams on
// 127.0.0.1; allocations reported are the handler's own (plus the
// transport's), not the harness's.
func benchServe(b *testing.B, h http.Handler) {
	u, _ := url.Parse("/v1/models/iris:predict")
	body := &benchBody{}
	req := &http.Request{
		Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}, HeaderRequestID: {"bench"}},
		Body:          body,
		ContentLength: int64(len(v1Body)),
		Host:          "iris.example",
		RemoteAddr:    "127.0.0.1:1234",
	}
	req = req.WithContext(context.Background())
	w := &discardWriter{h: http.Header{}}
	payload := []byte(v1Body)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		body.Reset(payload)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func benchRouter(b *testing.B, pct int) {
	stable := newUpstream(b, jsonAnswer(v1Resp))
	canary := newUpstream(b, jsonAnswer(v1Resp))
	h, err := New(Config{Stable: stable.url(b), Canary: canary.url(b), ShadowPercent: pct}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, h)
	b.StopTimer()
	_ = h.Close(context.Background())
	b.ReportMetric(testutil.ToFloat64(h.m.shadow[reasonSent])/float64(b.N), "sent/op")
	b.ReportMetric(testutil.ToFloat64(h.m.shadow[reasonQueueFull])/float64(b.N), "dropped/op")
}

// BenchmarkServeHTTP measures the client path; shadow=100 includes body
// buffering, the response tee and the enqueue (the canary call itself runs
// on the workers, concurrently, and shares the CPU).
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("shadow=0", func(b *testing.B) { benchRouter(b, 0) })
	b.Run("shadow=100", func(b *testing.B) { benchRouter(b, 100) })
	b.Run("baseline=bare-reverseproxy", func(b *testing.B) {
		stable := newUpstream(b, jsonAnswer(v1Resp))
		target := stable.url(b)
		tr := newTransport()
		defer tr.CloseIdleConnections()
		benchServe(b, &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr})
	})
}
