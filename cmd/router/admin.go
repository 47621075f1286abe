package main

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// summarySource is what the admin API needs from the comparison pipeline.
type summarySource interface {
	SummaryJSON() any
}

// adminMount adds routes to the admin server. Each feature (the report, the
// rollout control API) brings its own; protected is the group behind the
// bearer token when one is configured.
type adminMount func(protected *echo.Group)

// newAdmin builds the admin server: metrics, probes and the API. It is a
// separate port so NetworkPolicy can keep it away from clients. With a
// token, everything but /metrics and the probes requires it.
func newAdmin(reg *prometheus.Registry, ready *atomic.Bool, sum summarySource, token []byte, mounts ...adminMount) *echo.Echo {
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
	protected := e.Group("", requireToken(token))
	protected.GET("/api/v1/summary", func(c echo.Context) error {
		return c.JSON(http.StatusOK, sum.SummaryJSON())
	})
	for _, m := range mounts {
		m(protected)
	}
	return e
}

// pprofMount serves net/http/pprof on the protected group.
func pprofMount(g *echo.Group) {
	g.GET("/debug/pprof/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	g.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	g.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	g.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	g.GET("/debug/pprof/:name", func(c echo.Context) error {
		pprof.Handler(c.Param("name")).ServeHTTP(c.Response(), c.Request())
		return nil
	})
}

// requireToken checks "Authorization: Bearer <token>" in constant time. A
// nil token leaves the group open (the documented default for a port that
// NetworkPolicy keeps private).
func requireToken(token []byte) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if len(token) == 0 {
			return next
		}
		return func(c echo.Context) error {
			got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), token) != 1 {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="shadowsplit"`)
				return c.JSON(http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token (see admin.tokenFile)"})
			}
			return next(c)
		}
	}
}

// readToken loads the admin token. An empty file is an error rather than
// "no token": an operator who configured a file meant to protect the API.
func readToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: admin.tokenFile: %w", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	if len(tok) == 0 {
		return nil, fmt.Errorf("config: admin.tokenFile: %q: the file is empty", path)
	}
	return tok, nil
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
