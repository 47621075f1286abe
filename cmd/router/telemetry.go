package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// newLogger builds the JSON logger. Payloads are never logged: requests and
// predictions can carry personal data.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// newTracerProvider returns the configured provider and its shutdown. With
// "none" it is a no-op provider, so instrumented code costs next to nothing.
func newTracerProvider(ctx context.Context, cfg TelemetryConfig, stdout io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	// W3C trace context both ways: the shadow request must carry the
	// client's trace so the canary's spans land in the same trace.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	var exp sdktrace.SpanExporter
	switch cfg.Traces {
	case "", "none":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: stdout trace exporter: %w", err)
		}
		exp = e
	case "otlp":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.OTLPEndpoint)}
		if !strings.HasPrefix(cfg.OTLPEndpoint, "https://") {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		e, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		exp = e
	default:
		return nil, nil, fmt.Errorf("telemetry: unknown traces exporter %q (want none, stdout or otlp)", cfg.Traces)
	}
	res := resource.NewSchemaless(semconv.ServiceName("shadowsplit-router"), semconv.ServiceVersion(version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown, nil
}

func httpStatusAttr(code int) attribute.KeyValue { return semconv.HTTPResponseStatusCode(code) }
