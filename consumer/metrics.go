package consumer

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the worker did.
type Metrics struct {
	messages *prometheus.CounterVec
}

// NewMetrics registers the worker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{messages: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionctx_worker_messages_total",
		Help: "Event messages handled by the worker, by outcome (applied, duplicate, dead_lettered, retried).",
	}, []string{"outcome"})}
	reg.MustRegister(m.messages)
	return m
}

func (m *Metrics) count(o Outcome) {
	if m != nil {
		m.messages.WithLabelValues(string(o)).Inc()
	}
}
