package main

import (
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// shadowCounts reads the router's own counters: how many requests it
// served and what happened to their shadows (sent, skipped, dropped).
type shadowCounts struct {
	requests               float64
	sent, skipped, dropped float64
}

func readShadowCounts(c *http.Client, adminURL string) (shadowCounts, error) {
	var sc shadowCounts
	resp, err := c.Get(adminURL + "/metrics")
	if err != nil {
		return sc, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sc, fmt.Errorf("parse metrics: %w", err)
	}
	sum := func(name string, match func(*dto.Metric) bool) float64 {
		f, ok := fams[name]
		if !ok {
			return 0
		}
		total := 0.0
		for _, m := range f.GetMetric() {
			if match(m) {
				total += m.GetCounter().GetValue()
			}
		}
		return total
	}
	label := func(m *dto.Metric, k, v string) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == k {
				return l.GetValue() == v
			}
		}
		return false
	}
	sc.requests = sum("shadowsplit_requests_total", func(m *dto.Metric) bool { return label(m, "role", "stable") })
	sc.sent = sum("shadowsplit_shadow_total", func(m *dto.Metric) bool { return label(m, "result", "sent") })
	sc.skipped = sum("shadowsplit_shadow_total", func(m *dto.Metric) bool {
		return label(m, "result", "skipped") && !label(m, "reason", "not_sampled")
	})
	sc.dropped = sum("shadowsplit_shadow_total", func(m *dto.Metric) bool { return label(m, "result", "dropped") })
	return sc, nil
}
