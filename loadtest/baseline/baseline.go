// Package baseline is the yardstick every shadowsplit benchmark figure is a
// ratio against: the same hop built the naive way, on a bare
// httputil.ReverseProxy, with a fire-and-forget mirror that starts one
// goroutine per mirrored copy and never compares anything. It is what a
// reader would write in an afternoon; shadowsplit must cost about the same
// while doing much more. It is not meant for production: its mirror has no
// bound on goroutines, no breaker and no queue.
package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Proxy. Zero values are documented per field.
type Config struct {
	// Stable is the primary upstream. Required.
	Stable *url.URL
	// Canary receives the mirrored copies; nil means no mirror.
	Canary *url.URL
	// MirrorPercent in [0, 100] is the share of requests mirrored, sampled
	// deterministically; 0 means none.
	MirrorPercent int
	// MirrorTimeout bounds one mirrored call; 0 means 10s.
	MirrorTimeout time.Duration
	// Transport is shared by both upstreams; nil means a keep-alive
	// transport with 1024 idle connections per host, so the baseline is not
	// handicapped by connection churn.
	Transport http.RoundTripper
}

// Proxy forwards to stable and mirrors to canary. Safe for concurrent use.
type Proxy struct {
	cfg      Config
	rp       *httputil.ReverseProxy
	seen     atomic.Uint64
	mirrored atomic.Uint64
	inFlight atomic.Int64
}

var _ http.Handler = (*Proxy)(nil)

// NewTransport returns the transport used when Config.Transport is nil.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2048,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
}

// New validates cfg and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Stable == nil {
		return nil, errors.New("baseline: config Stable is nil")
	}
	if cfg.MirrorPercent < 0 || cfg.MirrorPercent > 100 {
		return nil, fmt.Errorf("baseline: config MirrorPercent %d: want 0..100", cfg.MirrorPercent)
	}
	if cfg.MirrorPercent > 0 && cfg.Canary == nil {
		return nil, fmt.Errorf("baseline: config MirrorPercent %d needs a Canary URL", cfg.MirrorPercent)
	}
	if cfg.MirrorTimeout == 0 {
		cfg.MirrorTimeout = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	stable := cfg.Stable
	p := &Proxy{cfg: cfg}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(stable); r.SetXForwarded() },
		Transport: cfg.Transport,
		// Without a pool ReverseProxy allocates a 32 KiB copy buffer per
		// request; every tuned proxy pools them, and a handicapped
		// yardstick would flatter the router.
		BufferPool: &bufferPool{},
	}
	return p, nil
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// Mirrored is how many copies were sent to the canary so far.
func (p *Proxy) Mirrored() uint64 { return p.mirrored.Load() }

// MirrorsInFlight is how many mirror goroutines are running now; with a
// slow canary it grows without bound, which is the naive design's flaw.
func (p *Proxy) MirrorsInFlight() int64 { return p.inFlight.Load() }

// ServeHTTP buffers the body when the request is mirrored, starts the
// mirror goroutine, and proxies to stable. The client never waits for the
// mirror.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.sample() {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mirrored.Add(1)
		p.inFlight.Add(1)
		target := *p.cfg.Canary
		target.Path, target.RawPath, target.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
		go p.mirror(r.Method, &target, r.Header.Clone(), body)
	}
	p.rp.ServeHTTP(w, r)
}

// sample is deterministic: request n is mirrored when the running quota
// floor(n*percent/100) steps up.
func (p *Proxy) sample() bool {
	if p.cfg.MirrorPercent == 0 {
		return false
	}
	n := p.seen.Add(1)
	return n*uint64(p.cfg.MirrorPercent)/100 > (n-1)*uint64(p.cfg.MirrorPercent)/100
}

func (p *Proxy) mirror(method string, target *url.URL, hdr http.Header, body []byte) {
	defer p.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.MirrorTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target.String(), bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header = hdr
	resp, err := p.cfg.Transport.RoundTrip(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
