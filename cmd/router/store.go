package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsplit/shadowsplit/internal/compare"
	"github.com/shadowsplit/shadowsplit/internal/diffstore"
	"github.com/shadowsplit/shadowsplit/internal/models"
	"github.com/shadowsplit/shadowsplit/internal/report"
)

// StoreConfig configures the prediction-diff store and the report (the
// `store:` key). With no SQLite path and no PostgreSQL DSN the store is off
// and /reports says how to turn it on.
type StoreConfig struct {
	// Driver is sqlite (the embedded default) or postgres (shared by
	// replicas).
	Driver   string         `json:"driver"`
	SQLite   SQLiteConfig   `json:"sqlite"`
	Postgres PostgresConfig `json:"postgres"`
	// AgreementSample is the fraction of agreeing pairs stored (0-1];
	// every other outcome is always stored. Default 0.1.
	AgreementSample float64         `json:"agreementSample"`
	QueueSize       int             `json:"queueSize"`
	BatchSize       int             `json:"batchSize"`
	FlushInterval   Duration        `json:"flushInterval"`
	Retention       RetentionConfig `json:"retention"`
	Inputs          InputsConfig    `json:"inputs"`
	Report          ReportConfig    `json:"report"`
}

// SQLiteConfig is the embedded store's file.
type SQLiteConfig struct {
	Path string `json:"path"`
	// MaxPages hard-caps the file (4 KiB pages); 0: no cap.
	MaxPages int `json:"maxPages"`
}

// PostgresConfig is the shared store. The DSN holds a password: prefer
// DSNFile (a mounted Secret).
type PostgresConfig struct {
	DSN     string `json:"dsn"`
	DSNFile string `json:"dsnFile"`
}

// RetentionConfig deletes old records by age and by size (0: no limit).
type RetentionConfig struct {
	MaxAge   Duration `json:"maxAge"`
	MaxBytes int64    `json:"maxBytes"`
	Interval Duration `json:"interval"`
}

// InputsConfig is the privacy allow-list: nothing of a request but the
// listed fields (and a keyed fingerprint) is stored unless storeRaw is on.
type InputsConfig struct {
	Fields             []InputField `json:"fields"`
	Headers            []string     `json:"headers"`
	StoreRaw           bool         `json:"storeRaw"`
	MaxRawBytes        int          `json:"maxRawBytes"`
	FingerprintKeyFile string       `json:"fingerprintKeyFile"`
}

// InputField is one allow-listed field (see diffstore.Field).
type InputField struct {
	Name    string    `json:"name"`
	Key     string    `json:"key"`
	Index   *int      `json:"index"`
	Tensor  string    `json:"tensor"`
	Buckets []float64 `json:"buckets"`
}

// ReportConfig shapes the report page.
type ReportConfig struct {
	// MinSliceCount hides smaller slices (default 20); TopExamples is
	// the number of examples shown (default 20); TraceURL links trace ids
	// ("{trace_id}" is replaced), e.g. https://jaeger/trace/{trace_id}.
	MinSliceCount int    `json:"minSliceCount"`
	TopExamples   int    `json:"topExamples"`
	TraceURL      string `json:"traceURL"`
}

// enabled reports whether a store is configured at all.
func (c *StoreConfig) enabled() bool {
	return c.SQLite.Path != "" || c.Postgres.DSN != "" || c.Postgres.DSNFile != "" || c.Driver == "postgres"
}

// validate names every bad store field.
func (c *StoreConfig) validate() error {
	var errs []error
	bad := func(field string, value any, msg string) {
		errs = append(errs, &fieldError{Field: "store." + field, Value: fmt.Sprintf("%q", fmt.Sprint(value)), Msg: msg})
	}
	switch c.Driver {
	case "", "sqlite":
		if c.Postgres.DSN != "" || c.Postgres.DSNFile != "" {
			bad("driver", c.Driver, "is sqlite but store.postgres is set: set driver: postgres or remove store.postgres")
		}
	case "postgres":
		if (c.Postgres.DSN == "") == (c.Postgres.DSNFile == "") {
			bad("postgres.dsnFile", c.Postgres.DSNFile, "exactly one of store.postgres.dsn and store.postgres.dsnFile is required with driver postgres")
		}
	default:
		bad("driver", c.Driver, "must be sqlite or postgres")
	}
	if c.SQLite.MaxPages < 0 {
		bad("sqlite.maxPages", c.SQLite.MaxPages, "must not be negative")
	}
	if c.AgreementSample < 0 || c.AgreementSample > 1 {
		bad("agreementSample", c.AgreementSample, "must be between 0 and 1 (0 means the default, 0.1)")
	}
	for name, v := range map[string]int{"queueSize": c.QueueSize, "batchSize": c.BatchSize, "inputs.maxRawBytes": c.Inputs.MaxRawBytes,
		"report.minSliceCount": c.Report.MinSliceCount, "report.topExamples": c.Report.TopExamples} {
		if v < 0 {
			bad(name, v, "must not be negative")
		}
	}
	if c.FlushInterval < 0 {
		bad("flushInterval", time.Duration(c.FlushInterval), "must not be negative")
	}
	if c.Retention.MaxAge < 0 {
		bad("retention.maxAge", time.Duration(c.Retention.MaxAge), "must not be negative")
	}
	if c.Retention.MaxBytes < 0 {
		bad("retention.maxBytes", c.Retention.MaxBytes, "must not be negative")
	}
	if c.Retention.Interval < 0 {
		bad("retention.interval", time.Duration(c.Retention.Interval), "must not be negative")
	}
	if err := (&diffstore.Redaction{Fields: c.fields(), Headers: c.Inputs.Headers, MaxRawBytes: c.Inputs.MaxRawBytes}).Validate(); err != nil {
		bad("inputs", "", err.Error())
	}
	if u := c.Report.TraceURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("report.traceURL", u, "must be an http(s) URL, with {trace_id} where the id goes")
	}
	return errors.Join(errs...)
}

func (c *StoreConfig) fields() []diffstore.Field {
	out := make([]diffstore.Field, len(c.Inputs.Fields))
	for i, f := range c.Inputs.Fields {
		out[i] = diffstore.Field{Name: f.Name, Key: f.Key, Index: f.Index, Tensor: f.Tensor, Buckets: f.Buckets}
	}
	return out
}

// storeConfig resolves the YAML settings (reading the key and DSN files)
// into the diff store's Config.
func storeConfig(cfg Config, log *slog.Logger) (diffstore.Config, error) {
	c := cfg.Store
	if err := c.validate(); err != nil {
		return diffstore.Config{}, err
	}
	dc := diffstore.Config{Driver: c.Driver, SQLitePath: c.SQLite.Path, SQLiteMaxPages: c.SQLite.MaxPages, PostgresDSN: c.Postgres.DSN,
		AgreementSample: c.AgreementSample, QueueSize: c.QueueSize, BatchSize: c.BatchSize, FlushInterval: time.Duration(c.FlushInterval),
		MaxAge: time.Duration(c.Retention.MaxAge), MaxBytes: c.Retention.MaxBytes, RetentionInterval: time.Duration(c.Retention.Interval),
		Redaction: diffstore.Redaction{Fields: c.fields(), Headers: c.Inputs.Headers, StoreRaw: c.Inputs.StoreRaw, MaxRawBytes: c.Inputs.MaxRawBytes},
		Logger:    log}
	if c.Postgres.DSNFile != "" {
		b, err := os.ReadFile(c.Postgres.DSNFile)
		if err != nil {
			return dc, fmt.Errorf("config: store.postgres.dsnFile: %w", err)
		}
		dc.PostgresDSN = strings.TrimSpace(string(b))
	}
	if f := c.Inputs.FingerprintKeyFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return dc, fmt.Errorf("config: store.inputs.fingerprintKeyFile: %w", err)
		}
		if len(b) < 16 {
			return dc, fmt.Errorf("config: store.inputs.fingerprintKeyFile: %q: the key must be at least 16 bytes", f)
		}
		dc.Redaction.FingerprintKey = b
	} else if log != nil {
		log.Info("diff store: no store.inputs.fingerprintKeyFile; input fingerprints use a random per-process key and only match within this run")
	}
	models := cfg.Compare.Models
	def := cfg.Compare.Default.Output
	dc.OutputFor = func(model string) string {
		if m, ok := models[model]; ok {
			return m.Output
		}
		return def
	}
	return dc, nil
}

// storeWiring is what serve needs from the diff store.
type storeWiring struct {
	// onResult receives every comparison on a shadow worker; must not block.
	onResult func(models.Exchange, compare.Result)
	mount    adminMount
	close    func(context.Context) error
	// setRollout tells the store (and the report) which rollout, step and
	// phase the following pairs belong to. For the rollout loop; never
	// blocks.
	setRollout func(id string, step int, phase string)
}

// buildStore opens the diff store and mounts the report and export routes.
func buildStore(ctx context.Context, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*storeWiring, error) {
	if !cfg.Store.enabled() {
		if err := cfg.Store.validate(); err != nil {
			return nil, err
		}
		log.Info("diff store off: set store.sqlite.path (or store.postgres) to keep compared pairs and serve /reports")
		return &storeWiring{
			mount: func(g *echo.Group) {
				g.GET("/reports", storeOff)
				g.GET("/api/v1/diffs", storeOff)
				g.GET("/api/v1/reports/summary", storeOff)
			},
			close:      func(context.Context) error { return nil },
			setRollout: func(string, int, string) {},
		}, nil
	}
	dc, err := storeConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := diffstore.Open(ctx, dc, reg)
	if err != nil {
		return nil, fmt.Errorf("config: store: %w", err)
	}
	var phase atomic.Pointer[string]
	h := &reportHandlers{store: st, cfg: cfg.Store.Report, phase: func() string {
		if p := phase.Load(); p != nil {
			return *p
		}
		return ""
	}}
	return &storeWiring{
		onResult: st.OnResult,
		mount:    h.mount,
		close:    st.Close,
		setRollout: func(id string, step int, p string) {
			st.SetRollout(id, step)
			phase.Store(&p)
		},
	}, nil
}

func storeOff(c echo.Context) error {
	return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": "the diff store is off: set store.sqlite.path or store.postgres in the router config"})
}

// reportHandlers serves the report page, its JSON and the exports.
type reportHandlers struct {
	store *diffstore.Store
	cfg   ReportConfig
	phase func() string
}

func (h *reportHandlers) mount(g *echo.Group) {
	g.GET("/reports", h.page)
	g.GET("/api/v1/reports/summary", h.summary)
	g.GET("/api/v1/diffs", h.diffs)
}

func (h *reportHandlers) build(c echo.Context) (*report.Summary, error) {
	q, err := reportQuery(c.QueryParam, h.cfg, time.Now())
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	q.RolloutPhase = h.phase()
	return report.Build(c.Request().Context(), h.store, q, time.Now())
}

func (h *reportHandlers) page(c echo.Context) error {
	s, err := h.build(c)
	if err != nil {
		return err
	}
	s.Interactive = true
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(http.StatusOK)
	return report.Render(c.Response(), s)
}

func (h *reportHandlers) summary(c echo.Context) error {
	s, err := h.build(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

// diffs streams an export: format=parquet|jsonl|csv (default jsonl).
func (h *reportHandlers) diffs(c echo.Context) error {
	f, err := diffFilter(c.QueryParam, time.Now())
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	format := c.QueryParam("format")
	if format == "" {
		format = "jsonl"
	}
	if !validFormat(format) {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("format %q: must be parquet, jsonl or csv", format))
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, diffstore.ContentType(format))
	w.Header().Set(echo.HeaderContentDisposition, `attachment; filename="shadowsplit-diffs.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	_, err = diffstore.Export(c.Request().Context(), h.store, f, format, w)
	return err // headers are sent: echo only logs it
}

func validFormat(f string) bool {
	for _, x := range diffstore.Formats {
		if f == x {
			return true
		}
	}
	return false
}

// parseSince reads "24h" (that long before now) or an RFC 3339 time.
func parseTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want a duration back from now (24h) or an RFC 3339 time (2026-03-01T12:00:00Z)", name, v)
	}
	return t, nil
}

func diffFilter(get func(string) string, now time.Time) (diffstore.Filter, error) {
	var f diffstore.Filter
	var err error
	if f.Since, err = parseTime("since", get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", get("until"), now); err != nil {
		return f, err
	}
	f.Model, f.RolloutID = get("model"), get("rollout")
	if o := get("outcome"); o != "" {
		for _, x := range strings.Split(o, ",") {
			if !knownOutcome(x) {
				return f, fmt.Errorf("outcome %q: must be one of %v", x, compare.Outcomes)
			}
			f.Outcomes = append(f.Outcomes, x)
		}
	}
	if l := get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 0 {
			return f, fmt.Errorf("limit %q: must be a non-negative integer", l)
		}
	}
	return f, nil
}

func knownOutcome(o string) bool {
	for _, x := range compare.Outcomes {
		if string(x) == o {
			return true
		}
	}
	return false
}

func reportQuery(get func(string) string, rc ReportConfig, now time.Time) (report.Query, error) {
	f, err := diffFilter(get, now)
	if err != nil {
		return report.Query{}, err
	}
	q := report.Query{Since: f.Since, Until: f.Until, RolloutID: f.RolloutID, Model: f.Model,
		MinSliceCount: rc.MinSliceCount, TopN: rc.TopExamples, TraceURL: rc.TraceURL}
	if v := get("minSlice"); v != "" {
		if q.MinSliceCount, err = strconv.Atoi(v); err != nil {
			return q, fmt.Errorf("minSlice %q: must be an integer", v)
		}
	}
	return q, nil
}

const reportUsage = `usage: router report <export|html|summary> --config router.yaml [flags]

  export   write diffs as parquet, jsonl or csv (stable schema, see docs/report.md)
  html     write the self-contained HTML report (works offline)
  summary  write the report's JSON summary

flags:
`

// reportCmd is `router report ...`: it opens the store named by the
// router's config (read-only use) and writes to stdout or --out.
func reportCmd(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "html" && args[0] != "summary") {
		fmt.Fprint(stderr, reportUsage)
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("router report "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reportUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "the router's YAML config (its store: section says where the diffs are)")
	sqlitePath := fs.String("sqlite", "", "SQLite file to read (overrides the config)")
	format := fs.String("format", "parquet", "export format: parquet, jsonl or csv")
	since := fs.String("since", "", "only records since then: a duration back from now (24h) or an RFC 3339 time")
	until := fs.String("until", "", "only records before then (same forms as --since)")
	outcome := fs.String("outcome", "", "comma-separated outcomes to keep (export), e.g. disagree,canary_error")
	model := fs.String("model", "", "only this stable model")
	rollout := fs.String("rollout", "", "only this rollout id")
	out := fs.String("out", "", "write to this file instead of stdout")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	cfg := defaultConfig()
	if *configPath != "" {
		if err := loadConfigFile(&cfg, *configPath); err != nil {
			return err
		}
	}
	if *sqlitePath != "" {
		cfg.Store.Driver, cfg.Store.SQLite.Path, cfg.Store.Postgres = "sqlite", *sqlitePath, PostgresConfig{}
	}
	if !cfg.Store.enabled() {
		return errors.New("report: no store configured: pass --config with a store: section, or --sqlite FILE")
	}
	if sub == "export" && !validFormat(*format) {
		return fmt.Errorf("report export: --format %q: must be parquet, jsonl or csv", *format)
	}
	get := func(k string) string {
		return map[string]string{"since": *since, "until": *until, "outcome": *outcome, "model": *model, "rollout": *rollout}[k]
	}
	now := time.Now()
	dc, err := storeConfig(cfg, nil)
	if err != nil {
		return err
	}
	st, err := diffstore.Open(ctx, dc, nil)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("report: --out: %w", err)
		}
		defer f.Close()
		w = f
	}
	switch sub {
	case "export":
		f, err := diffFilter(get, now)
		if err != nil {
			return fmt.Errorf("report export: %w", err)
		}
		n, err := diffstore.Export(ctx, st, f, *format, w)
		if err != nil {
			return fmt.Errorf("report export: %w", err)
		}
		fmt.Fprintf(stderr, "exported %d records\n", n)
	default:
		if *outcome != "" {
			return errors.New("report: --outcome applies to export only (the report covers every outcome)")
		}
		q, err := reportQuery(get, cfg.Store.Report, now)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		s, err := report.Build(ctx, st, q, now)
		if err != nil {
			return err
		}
		if sub == "html" {
			return report.Render(w, s)
		}
		return writeJSON(w, s)
	}
	if f, ok := w.(*os.File); ok && w != stdout {
		return f.Sync()
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
