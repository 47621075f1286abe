package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var pageTmpl string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   pct,
	"deref": func(f *float64) float64 { return *f },
	"num":   num,
	"ipct": func(i *Interval) string {
		if i == nil {
			return "–"
		}
		return pct(i.Rate)
	},
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
	"tsp": func(t *time.Time) string {
		if t == nil {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	},
	"kappa": func(k *float64) string {
		if k == nil {
			return "–"
		}
		return fmt.Sprintf("%.3f", *k)
	},
	"short": short,
	"inputs": func(m map[string]any) string {
		if len(m) == 0 {
			return ""
		}
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
		}
		return strings.Join(parts, " ")
	},
	"agreementChart": agreementChart,
	"latencyChart": func(l LatencyReport) template.HTML {
		return histogram("latency of both models", "latency (ms)", []*Distribution{l.Stable, l.Canary}, []string{colStable, colCanary}, []string{"stable", "canary"})
	},
	"hist": func(d *Distribution, title, xtitle string) template.HTML {
		return histogram(title, xtitle, []*Distribution{d}, []string{colCanary}, []string{title})
	},
	"scatter": scatter,
	"heat":    heat,
	"rowsum": func(row []float64) float64 {
		t := 0.0
		for _, c := range row {
			t += c
		}
		return t
	},
	"bar": func(x float64) template.CSS { return template.CSS(fmt.Sprintf("width: %.1f%%", 100*min(max(x, 0), 1))) },
	"ms": func(d *Distribution, which string) string {
		if d == nil {
			return "–"
		}
		switch which {
		case "p50":
			return num(d.P50)
		case "p90":
			return num(d.P90)
		case "p99":
			return num(d.P99)
		case "mean":
			return num(d.Mean)
		}
		return num(d.Count)
	},
	"safeURL": func(s string) template.URL {
		// Only http(s) trace links are rendered as links.
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			return template.URL(s) //nolint:gosec // scheme checked, the template escapes it as an attribute
		}
		return ""
	},
}).Parse(pageTmpl))

// Render writes the report as one self-contained HTML page (inline CSS and
// SVG, no script, no external resource): it works offline and as a file.
// Safe for concurrent use; it blocks only on w.
func Render(w io.Writer, s *Summary) error {
	return page.Execute(w, s)
}

// short renders an output for a table cell: numbers to 4 significant
// digits, at most 160 characters.
func short(b json.RawMessage) string {
	if len(b) == 0 {
		return "–"
	}
	var v any
	s := string(b)
	if json.Unmarshal(b, &v) == nil {
		s = compact(v)
	}
	if len([]rune(s)) > 160 {
		s = string([]rune(s)[:157]) + "…"
	}
	return s
}

func compact(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', 4, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = compact(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		var parts []string
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+": "+compact(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
