package rollout

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rollout's gauges and counters. Registered once per
// process; a second Controller on the same registry shares them.
type metrics struct {
	phase       *prometheus.GaugeVec
	step        prometheus.Gauge
	weight      prometheus.Gauge
	transitions *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shadowsplit_rollout_phase",
			Help: "1 for the rollout's current phase (Shadowing, Progressing, Holding, Paused, Promoted, RolledBack), 0 for the others.",
		}, []string{"phase"}),
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shadowsplit_rollout_step",
			Help: "Index of the rollout's current step in its plan.",
		}),
		weight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shadowsplit_rollout_canary_weight",
			Help: "Canary weight in percent as read back from the VirtualService.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsplit_rollout_transitions_total",
			Help: "Rollout decisions that changed the phase, step or reason, by reason.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsplit_rollout_errors_total",
			Help: "Rollout rounds that could not complete, by stage: read, evidence, write, conflict (the VirtualService changed since the read: decided again next tick).",
		}, []string{"stage"}),
	}
	for _, p := range Phases {
		m.phase.WithLabelValues(string(p))
	}
	for _, s := range []string{"read", "evidence", "write", "conflict"} {
		m.errors.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range []prometheus.Collector{m.phase, m.step, m.weight, m.transitions, m.errors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("rollout: register metrics: %w", err)
			}
			switch i {
			case 0:
				m.phase = are.ExistingCollector.(*prometheus.GaugeVec)
			case 1:
				m.step = are.ExistingCollector.(prometheus.Gauge)
			case 2:
				m.weight = are.ExistingCollector.(prometheus.Gauge)
			case 3:
				m.transitions = are.ExistingCollector.(*prometheus.CounterVec)
			case 4:
				m.errors = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(s State, weight int32) {
	for _, p := range Phases {
		v := 0.0
		if p == s.Phase {
			v = 1
		}
		m.phase.WithLabelValues(string(p)).Set(v)
	}
	m.step.Set(float64(s.Step))
	m.weight.Set(float64(weight))
}
