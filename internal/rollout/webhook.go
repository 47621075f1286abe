package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Webhook posts every transition as Slack-compatible JSON ({"text": ...},
// which Slack, Mattermost and most chat bridges accept) to one URL. Sends
// are asynchronous through a small bounded queue: Notify never blocks the
// rollout loop, and drops (and logs) when the receiver is slower than the
// transitions. Safe for concurrent use.
type Webhook struct {
	url    string
	client *http.Client
	log    *slog.Logger
	jobs   chan []byte
	wg     sync.WaitGroup
	once   sync.Once
}

// NewWebhook starts the sender. timeout bounds each POST (zero: 5s);
// log may be nil. Close stops it.
func NewWebhook(url string, timeout time.Duration, log *slog.Logger) *Webhook {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Webhook{url: url, client: &http.Client{Timeout: timeout}, log: log, jobs: make(chan []byte, 16)}
	w.wg.Add(1)
	go w.run()
	return w
}

// Notify queues a message for a transition. It never blocks.
func (w *Webhook) Notify(s State, d Decision) {
	body, err := json.Marshal(map[string]string{
		"text": fmt.Sprintf("shadowsplit rollout %s: %s, step %d, canary %d%% (%s): %s", s.ID, s.Phase, s.Step, s.Weight, d.Reason, d.Message),
	})
	if err != nil {
		return
	}
	select {
	case w.jobs <- body:
	default:
		w.log.Warn("rollout webhook: queue full, notification dropped", "rollout", s.ID, "reason", d.Reason)
	}
}

func (w *Webhook) run() {
	defer w.wg.Done()
	for body := range w.jobs {
		resp, err := w.client.Post(w.url, "application/json", bytes.NewReader(body))
		if err != nil {
			w.log.Warn("rollout webhook: post failed", "err", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			w.log.Warn("rollout webhook: receiver answered", "status", resp.StatusCode)
		}
	}
}

// Close sends what is queued (bounded by ctx) and stops the sender.
func (w *Webhook) Close(ctx context.Context) error {
	w.once.Do(func() { close(w.jobs) })
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rollout webhook: %w", ctx.Err())
	}
}
