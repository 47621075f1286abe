package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// Charts are drawn as inline SVG on the server: the page needs no script,
// no CDN and no network, and prints and archives as one file.

const (
	chartW, chartH = 760, 240
	padL, padR     = 56, 16
	padT, padB     = 14, 36
	colStable      = "#4e79a7"
	colCanary      = "#f28e2b"
	colBand        = "#a0cbe8"
	colAxis        = "#888"
)

func esc(s string) string { return template.HTMLEscapeString(s) }

func num(x float64) string {
	switch {
	case x == math.Trunc(x) && math.Abs(x) < 1e15:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 1000:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	case math.Abs(x) >= 0.01:
		return fmt.Sprintf("%.3g", x)
	}
	return fmt.Sprintf("%.2g", x)
}

type frame struct {
	b              strings.Builder
	x0, x1, y0, y1 float64
	w, h           float64
}

func newFrame(x0, x1, y0, y1 float64, label string) *frame {
	if x1 <= x0 {
		x1 = x0 + 1
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	f := &frame{x0: x0, x1: x1, y0: y0, y1: y1, w: chartW - padL - padR, h: chartH - padT - padB}
	fmt.Fprintf(&f.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" class="chart">`,
		chartW, chartH, chartW, chartH, esc(label))
	return f
}

func (f *frame) X(x float64) float64 { return padL + (x-f.x0)/(f.x1-f.x0)*f.w }
func (f *frame) Y(y float64) float64 { return padT + f.h - (y-f.y0)/(f.y1-f.y0)*f.h }

// axes draws both axes with a few y ticks and the axis titles.
func (f *frame) axes(yfmt func(float64) string, xtitle, ytitle string) {
	fmt.Fprintf(&f.b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, padL, f.Y(f.y0), padL+f.w, f.Y(f.y0), colAxis)
	fmt.Fprintf(&f.b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="%s"/>`, padL, padT, padL, f.Y(f.y0), colAxis)
	for i := 0; i <= 4; i++ {
		v := f.y0 + (f.y1-f.y0)*float64(i)/4
		y := f.Y(v)
		fmt.Fprintf(&f.b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, padL, y, padL+f.w, y)
		fmt.Fprintf(&f.b, `<text x="%d" y="%.1f" text-anchor="end" class="tick">%s</text>`, padL-4, y+4, esc(yfmt(v)))
	}
	fmt.Fprintf(&f.b, `<text x="%.1f" y="%d" text-anchor="middle" class="axis">%s</text>`, padL+f.w/2, chartH-4, esc(xtitle))
	fmt.Fprintf(&f.b, `<text x="12" y="%.1f" text-anchor="middle" class="axis" transform="rotate(-90 12 %.1f)">%s</text>`, padT+f.h/2, padT+f.h/2, esc(ytitle))
}

func (f *frame) xtick(x float64, label string) {
	anchor := "middle" // the first and last labels stay inside the chart
	switch {
	case x <= f.x0:
		anchor = "start"
	case x >= f.x1:
		anchor = "end"
	}
	fmt.Fprintf(&f.b, `<text x="%.1f" y="%.1f" text-anchor="%s" class="tick">%s</text>`, f.X(x), f.Y(f.y0)+14, anchor, esc(label))
}

func (f *frame) done() template.HTML {
	f.b.WriteString(`</svg>`)
	return template.HTML(f.b.String()) //nolint:gosec // built from escaped parts only
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// agreementChart plots agreement per time bucket with its Wilson band and
// marks rollout step changes.
func agreementChart(pts []TimePoint, steps []StepChange) template.HTML {
	if len(pts) == 0 {
		return ""
	}
	lo := 1.0
	for _, p := range pts {
		if p.Agreement != nil {
			lo = math.Min(lo, p.Agreement.Lower)
		}
	}
	lo = math.Max(0, math.Floor(lo*20-1)/20)
	t0, t1 := float64(pts[0].Start.Unix()), float64(pts[len(pts)-1].End.Unix())
	f := newFrame(t0, t1, lo, 1, "agreement over time")
	f.axes(pct, "time (UTC)", "agreement")
	mid := func(p TimePoint) float64 { return float64(p.Start.Unix()+p.End.Unix()) / 2 }
	var up, down, line []string
	for _, p := range pts {
		if p.Agreement == nil {
			continue
		}
		x := f.X(mid(p))
		up = append(up, fmt.Sprintf("%.1f,%.1f", x, f.Y(p.Agreement.Upper)))
		down = append([]string{fmt.Sprintf("%.1f,%.1f", x, f.Y(p.Agreement.Lower))}, down...)
		line = append(line, fmt.Sprintf("%.1f,%.1f", x, f.Y(p.Agreement.Rate)))
	}
	if len(up) > 0 {
		fmt.Fprintf(&f.b, `<polygon points="%s" fill="%s" opacity="0.5"><title>95%% interval</title></polygon>`, strings.Join(append(up, down...), " "), colBand)
		fmt.Fprintf(&f.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(line, " "), colStable)
	}
	for _, p := range pts {
		if p.Agreement != nil {
			fmt.Fprintf(&f.b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %s (%s–%s), %s instances</title></circle>`,
				f.X(mid(p)), f.Y(p.Agreement.Rate), colStable, p.Start.Format("15:04:05"), pct(p.Agreement.Rate),
				pct(p.Agreement.Lower), pct(p.Agreement.Upper), num(p.Instances))
		}
	}
	for _, s := range steps {
		x := f.X(float64(s.At.Unix()))
		fmt.Fprintf(&f.b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e15759" stroke-dasharray="4 3"/><text x="%.1f" y="%d" class="tick" fill="#e15759">step %d</text>`,
			x, padT, x, f.Y(lo), x+3, padT+10, s.Step)
	}
	f.xtick(t0, pts[0].Start.Format("15:04:05"))
	f.xtick(t1, pts[len(pts)-1].End.Format("15:04:05"))
	if span := time.Duration(t1-t0) * time.Second; span > 0 {
		f.xtick((t0+t1)/2, pts[0].Start.Add(span/2).Format("15:04:05"))
	}
	return f.done()
}

// histogram draws one or two distributions over the same bins.
func histogram(title, xtitle string, ds []*Distribution, colors []string, names []string) template.HTML {
	var edges []float64
	hi := 0.0
	for _, d := range ds {
		if d == nil {
			continue
		}
		edges = d.Edges
		for _, c := range d.Counts {
			hi = math.Max(hi, c)
		}
	}
	if edges == nil {
		return ""
	}
	f := newFrame(edges[0], edges[len(edges)-1], 0, hi*1.1, title)
	f.axes(num, xtitle, "count")
	n := 0
	for _, d := range ds {
		if d != nil {
			n++
		}
	}
	k := 0
	for i, d := range ds {
		if d == nil {
			continue
		}
		for j, c := range d.Counts {
			x0, x1 := f.X(d.Edges[j]), f.X(d.Edges[j+1])
			bw := (x1 - x0 - 1) / float64(n)
			fmt.Fprintf(&f.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s–%s: %s</title></rect>`,
				x0+float64(k)*bw, f.Y(c), math.Max(bw, 0.5), f.Y(0)-f.Y(c), colors[i], esc(names[i]), num(d.Edges[j]), num(d.Edges[j+1]), num(c))
		}
		fmt.Fprintf(&f.b, `<rect x="%.1f" y="%d" width="10" height="10" fill="%s"/><text x="%.1f" y="%d" class="tick">%s</text>`,
			padL+f.w-150+float64(k)*75, padT, colors[i], padL+f.w-136+float64(k)*75, padT+9, esc(names[i]))
		k++
	}
	for _, x := range []float64{edges[0], (edges[0] + edges[len(edges)-1]) / 2, edges[len(edges)-1]} {
		f.xtick(x, num(x))
	}
	return f.done()
}

// scatter is the difference-vs-mean (Bland-Altman) plot.
func scatter(pts []Point) template.HTML {
	if len(pts) == 0 {
		return ""
	}
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		x0, x1, y0, y1 = math.Min(x0, p.X), math.Max(x1, p.X), math.Min(y0, p.Y), math.Max(y1, p.Y)
	}
	m := math.Max(math.Abs(y0), math.Abs(y1)) * 1.1
	if m == 0 {
		m = 1
	}
	f := newFrame(x0, x1, -m, m, "difference versus mean")
	f.axes(num, "mean of stable and canary", "canary − stable")
	fmt.Fprintf(&f.b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3 3"/>`, padL, f.Y(0), padL+f.w, f.Y(0), colAxis)
	for _, p := range pts {
		fmt.Fprintf(&f.b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s" opacity="0.6"/>`, f.X(p.X), f.Y(p.Y), colCanary)
	}
	f.xtick(x0, num(x0))
	f.xtick(x1, num(x1))
	return f.done()
}

// heat is the background of a flip matrix cell: off-diagonal cells in
// orange by their share of the row, diagonal cells in light blue.
func heat(count, row float64, diag bool) template.CSS {
	if row == 0 || count == 0 {
		return ""
	}
	a := count / row
	if diag {
		return template.CSS(fmt.Sprintf("background: rgba(78,121,167,%.2f)", 0.08+0.25*a))
	}
	return template.CSS(fmt.Sprintf("background: rgba(242,142,43,%.2f)", 0.15+0.85*a))
}
