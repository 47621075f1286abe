package main

import (
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// summarySource is what the admin API needs from the comparison pipeline.
type summarySource interface {
	SummaryJSON() any
}

// newAdmin builds the admin server: metrics, probes and the read-only API.
// It is a separate port so NetworkPolicy can keep it away from clients.
func newAdmin(reg *prometheus.Registry, ready *atomic.Bool, sum summarySource) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = jsonErrorHandler
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	// Liveness only says the process serves HTTP: a failing model must not
	// get the router restarted.
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if !ready.Load() {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/api/v1/summary", func(c echo.Context) error {
		return c.JSON(http.StatusOK, sum.SummaryJSON())
	})
	return e
}

// jsonErrorHandler answers every echo-level error (404, 405, ...) with a JSON
// body, the same shape the proxy uses for its own errors.
func jsonErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := err.Error()
	if he, ok := err.(*echo.HTTPError); ok {
		code = he.Code
		if s, ok := he.Message.(string); ok {
			msg = s
		}
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}
