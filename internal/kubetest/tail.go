package kubetest

import (
	"io"
	"sync"
)

// tailSize is how much of a process's output is kept for error messages: the
// reason an API server refuses to start is in its last lines.
const tailSize = 8 << 10

// tailWriter keeps the last tailSize bytes written to it and copies every
// write to an optional sink. Safe for concurrent use (a process's stdout and
// stderr are copied by separate goroutines).
type tailWriter struct {
	mu   sync.Mutex
	buf  []byte
	sink io.Writer
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - tailSize; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	if w.sink != nil {
		// The sink is a convenience for debugging; its errors must not break
		// the process's pipe.
		_, _ = w.sink.Write(p)
	}
	return len(p), nil
}

// String returns the kept tail.
func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
