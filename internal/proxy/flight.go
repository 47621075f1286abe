package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// maxKeptBuffer is the largest buffer a pooled flight keeps for reuse; a
// rare huge body should not pin its memory in the pool forever.
const maxKeptBuffer = 256 << 10

// flight is one request's state from arrival to Record. It is pooled and
// reference-counted because the handler and the shadow worker may hold it
// at once; the last release returns it to the pool.
type flight struct {
	h    *Handler
	refs atomic.Int32

	start       time.Time
	requestID   string
	proto       models.Protocol
	model       string
	version     string
	path        string
	rawQuery    string
	contentType string

	// shadow is set when this request's answer must be captured and a
	// shadow job built; tap marks a tap-mode replay job.
	shadow bool
	tap    bool

	// Set only for shadow jobs, just before they are enqueued.
	ctx    context.Context // detached from the client (context.WithoutCancel)
	header http.Header     // clone of the request headers
	parent trace.SpanContext
	span   trace.Span // the stable client span (inline, tracing on)

	reqBuf []byte
	// reqBody serves reqBuf to stable. It is allocated per request, never
	// pooled: a transport read that outlives the handler must find this
	// request's closed reader, not a recycled one serving another request.
	reqBody *bodyReader
	tee     teeBody
	stable  capture
	canary  capture
	// routerAnswer is set when the router, not stable, made the answer
	// (a 413 discovered while streaming); it is not an upstream outcome.
	routerAnswer bool
}

var flightPool = sync.Pool{New: func() any { return new(flight) }}

// liveFlights counts flights not yet returned to the pool. Tests check it
// drops to zero: an unbalanced reference would silently defeat the pool.
var liveFlights atomic.Int64

func getFlight(h *Handler, start time.Time) *flight {
	f := flightPool.Get().(*flight)
	f.h = h
	f.start = start
	f.refs.Store(1)
	liveFlights.Add(1)
	return f
}

// release drops one reference; the last one recycles the flight.
func (f *flight) release() {
	if f.refs.Add(-1) != 0 {
		return
	}
	liveFlights.Add(-1)
	*f = flight{
		reqBuf: keep(f.reqBuf),
		stable: capture{buf: keep(f.stable.buf)},
		canary: capture{buf: keep(f.canary.buf)},
	}
	flightPool.Put(f)
}

func keep(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

type flightKey struct{}

func flightFrom(ctx context.Context) *flight {
	f, _ := ctx.Value(flightKey{}).(*flight)
	return f
}

// readBody reads the request body into f.reqBuf. tooLarge reports a body
// over limit (the buffer then holds limit+1 bytes and is not to be used).
func (f *flight) readBody(r io.Reader, contentLength, limit int64) (tooLarge bool, err error) {
	buf := f.reqBuf[:0]
	if contentLength > 0 && int64(cap(buf)) <= contentLength {
		buf = make([]byte, 0, contentLength+1) // +1: room to read the EOF without growing
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			f.reqBuf = buf
			return true, nil
		}
		if rerr == io.EOF {
			f.reqBuf = buf
			return false, nil
		}
		if rerr != nil {
			f.reqBuf = buf
			return false, rerr
		}
	}
}

// bodyReader serves f.reqBuf as the outgoing request body. The transport
// reads it from its own goroutine, which can outlive ReverseProxy.ServeHTTP
// (httputil wraps the body so that the transport's Close never reaches us),
// so the handler closes it itself before the flight can be recycled: the
// mutex makes that Close a barrier after which no Read touches the pooled
// buffer.
type bodyReader struct {
	mu     sync.Mutex
	buf    []byte
	off    int
	closed bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.off >= len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

// Close is idempotent and waits for a Read in progress.
func (b *bodyReader) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// capture is one upstream's answer as it is being read.
type capture struct {
	start       time.Time
	status      int
	contentType string
	encoding    string
	buf         []byte
	limit       int64
	keep        bool // copy the body into buf (only when it will be compared)
	truncated   bool
	finished    bool
	latency     time.Duration
	failure     models.Failure
	outcome     outcome
}

func (c *capture) write(p []byte) {
	if !c.keep {
		return
	}
	room := c.limit - int64(len(c.buf))
	if int64(len(p)) > room {
		p = p[:max(room, 0)]
		c.truncated = true
	}
	c.buf = append(c.buf, p...)
}

// finish stamps the latency once, at the end of the body.
func (c *capture) finish() {
	if !c.finished {
		c.finished = true
		c.latency = time.Since(c.start)
	}
}

func (c *capture) fail(err error) {
	c.failure, c.outcome = classify(err)
	c.status = 0
	c.finish()
}

func (c *capture) response(capBytes bool) models.Response {
	r := models.Response{
		Status:      c.status,
		ContentType: c.contentType,
		Truncated:   c.truncated,
		Latency:     c.latency,
		Failure:     c.failure,
	}
	if capBytes {
		r.Body = c.buf
	}
	return r
}

// teeBody copies stable's answer into the flight's capture while
// ReverseProxy streams it to the client, so the client never waits for a
// separate read and the copy is bounded.
type teeBody struct {
	rc io.ReadCloser
	c  *capture
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 {
		t.c.write(p[:n])
	}
	switch {
	case err == io.EOF:
		t.c.finish()
	case err != nil:
		t.c.fail(err)
	}
	return n, err
}

func (t *teeBody) Close() error {
	t.c.finish()
	return t.rc.Close()
}
