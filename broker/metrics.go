package broker

import "github.com/prometheus/client_golang/prometheus"

// newHealthGauge is enclave_runtime_health{runtime_id}: 1 while the runtime's
// last heartbeat reached Redis, 0 otherwise. The queue depth of the runtime is
// the supervisor's enclave_queue_depth, labelled with the runtime id by cmd.
func newHealthGauge(reg prometheus.Registerer, id string) prometheus.Gauge {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "enclave_runtime_health", Help: "1 while the runtime's heartbeat reaches Redis, else 0.",
	}, []string{"runtime_id"})
	if reg != nil {
		reg.MustRegister(g)
	}
	return g.WithLabelValues(id)
}
