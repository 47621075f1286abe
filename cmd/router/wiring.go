package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/models"
	"github.com/shadowsplit/shadowsplit/internal/pipeline"
	"github.com/shadowsplit/shadowsplit/internal/proxy"
)

// dataPlane is the wired hot path: the proxy handler, the comparison
// pipeline it feeds, and how to stop them in order.
type dataPlane struct {
	handler  http.Handler
	pipeline *pipeline.Pipeline
	close    func(context.Context) error
}

func buildDataPlane(cfg Config, reg prometheus.Registerer, tp trace.TracerProvider, log *slog.Logger,
	onResult func(models.Exchange, compare.Result)) (*dataPlane, error) {
	pl, err := pipeline.New(pipeline.Config{
		OnResult: onResult,
		Default:  compareOptions(cfg.Compare.Default),
		Models:   compareModels(cfg.Compare.Models),
		Window:   time.Duration(cfg.Compare.Window),
		Logger:   log,
	}, reg)
	if err != nil {
		return nil, err
	}
	stable, err := url.Parse(cfg.Stable.URL)
	if err != nil {
		return nil, fmt.Errorf("config: stable.url: %w", err)
	}
	var canary *url.URL
	if cfg.Canary.URL != "" {
		if canary, err = url.Parse(cfg.Canary.URL); err != nil {
			return nil, fmt.Errorf("config: canary.url: %w", err)
		}
	}
	pcfg := proxy.Config{
		Stable:             stable,
		Canary:             canary,
		CanaryModel:        cfg.Canary.Model,
		ShadowPercent:      int(cfg.Shadow.Percent),
		Workers:            cfg.Shadow.Workers,
		QueueSize:          cfg.Shadow.QueueSize,
		CanaryTimeout:      time.Duration(cfg.Canary.Timeout),
		StableTimeout:      time.Duration(cfg.Stable.Timeout),
		MaxBodyBytes:       cfg.Limits.MaxBodyBytes,
		MaxShadowBodyBytes: cfg.Shadow.MaxBodyBytes,
		MaxCaptureBytes:    cfg.Limits.MaxCaptureBytes,
		ForwardCredentials: cfg.Shadow.ForwardCredentials,
		Breaker: proxy.BreakerConfig{
			ConsecutiveFailures: cfg.Breaker.ConsecutiveFailures,
			OpenTimeout:         time.Duration(cfg.Breaker.OpenFor),
			HalfOpenRequests:    cfg.Breaker.HalfOpenRequests,
		},
		Mode: proxy.Mode(cfg.Mode),
		Tap: proxy.TapBudget{
			MaxInFlight:        cfg.Tap.MaxInFlight,
			MaxReplayPerSecond: cfg.Tap.MaxReplayPerSecond,
		},
		Logger: log,
	}
	if _, isNoop := tp.(noop.TracerProvider); !isNoop {
		pcfg.TracerProvider = tp
	}
	h, err := proxy.New(pcfg, pl, reg)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return &dataPlane{handler: h, pipeline: pl, close: h.Close}, nil
}

func compareOptions(m ModelCompare) compare.Options {
	o := compare.Options{
		Mode:        compare.Mode(m.Mode),
		Output:      m.Output,
		AbsTol:      m.AbsTol,
		RelTol:      m.RelTol,
		TopK:        m.TopK,
		IgnorePaths: m.IgnorePaths,
		MaxJS:       m.MaxJS,
		LabelNames:  m.LabelNames,
	}
	if o.Mode == "auto" {
		o.Mode = compare.ModeAuto
	}
	switch m.NaN {
	case "equal":
		o.NaN = compare.NaNEqual
	case "disagree":
		o.NaN = compare.NaNDisagree
	}
	return o
}

func compareModels(ms map[string]ModelCompare) map[string]compare.Options {
	out := make(map[string]compare.Options, len(ms))
	for n, m := range ms {
		out[n] = compareOptions(m)
	}
	return out
}
