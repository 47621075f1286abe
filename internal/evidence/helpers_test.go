package evidence

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/models"
	"github.com/shadowsplit/shadowsplit/internal/pipeline"
)

// exchange is one V1 call with one instance; the canary answers canary
// (its prediction) or fails with status.
func exchange(canary string, status int) models.Exchange {
	return models.Exchange{
		RequestID: "r", Protocol: models.ProtocolV1, Model: "m", CanaryModel: "m",
		Path: "/v1/models/m:predict", ContentType: "application/json",
		Request: []byte(`{"instances":[[1,2]]}`),
		Stable:  models.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"predictions":[1]}`), Latency: 10 * time.Millisecond},
		Canary: models.Response{Status: status, ContentType: "application/json", Body: []byte(`{"predictions":[` + canary + `]}`),
			Latency: 12 * time.Millisecond},
	}
}

// newPipeline is a real comparison pipeline with its metrics on a fresh
// registry: what one router replica exports.
func newPipeline(t *testing.T) (*pipeline.Pipeline, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Config{}, reg)
	require.NoError(t, err)
	return p, reg
}

// record feeds agree agreeing, disagree disagreeing and failed 503 exchanges.
func record(p *pipeline.Pipeline, agree, disagree, failed int) {
	for range agree {
		p.Record(exchange("1", 200))
	}
	for range disagree {
		p.Record(exchange("2", 200))
	}
	for range failed {
		p.Record(exchange("1", 503))
	}
}

// waitUp waits until Prometheus has scraped n targets successfully.
func waitUp(ctx context.Context, t *testing.T, p *Prometheus, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := p.query(ctx, `count(up{job="shadowsplit"} == 1)`, time.Now())
		return err == nil && len(v) == 1 && int(v[0].Value) == n
	}, 30*time.Second, 200*time.Millisecond, "prometheus never scraped %d targets", n)
}
