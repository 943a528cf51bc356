package supervisor

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enclave-go/enclave/api"
)

// metrics are the supervisor's Prometheus series. Labels are bounded: result codes,
// restart reasons and worker ids, which are reused slot numbers.
type metrics struct {
	executions *prometheus.CounterVec
	latency    prometheus.Histogram
	queue      prometheus.Gauge
	active     prometheus.Gauge
	memory     *prometheus.GaugeVec
	restarts   *prometheus.CounterVec
	tools      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, runtime string) *metrics {
	m := &metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enclave_executions_total", Help: "Finished runs by result: success or the error code.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "enclave_execution_latency_seconds", Help: "Time from a worker taking a run to its end.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "enclave_queue_depth", Help: "Runs waiting for a worker.",
			ConstLabels: prometheus.Labels{"runtime": runtime},
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "enclave_active_executions", Help: "Runs holding a worker now.",
		}),
		memory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "enclave_worker_memory_bytes", Help: "Resident memory of each worker process.",
		}, []string{"worker_id"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enclave_worker_restarts_total", Help: "Workers stopped, by reason: recycled, memory, timeout, crashed, idle.",
		}, []string{"reason"}),
		tools: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enclave_tool_calls_total", Help: "Tool calls answered, by result: success or the error code.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.executions, m.latency, m.queue, m.active, m.memory, m.restarts, m.tools)
	}
	return m
}

// finished counts a run that ended with err (nil for success) after d on a worker
// (0 when it never reached one).
func (m *metrics) finished(err error, d time.Duration) {
	result := "success"
	if err != nil {
		result = string(api.CodeOf(err))
	}
	m.executions.WithLabelValues(result).Inc()
	if d > 0 {
		m.latency.Observe(d.Seconds())
	}
}

func (m *metrics) queueDepth(p *pool) {
	_, _, waiting, _ := p.stats()
	m.queue.Set(float64(waiting))
}

func (m *metrics) toolCall(result string) { m.tools.WithLabelValues(result).Inc() }

func (m *metrics) workerMemory(id int, rss int64) {
	m.memory.WithLabelValues(strconv.Itoa(id)).Set(float64(rss))
}

func (m *metrics) restarted(reason string) { m.restarts.WithLabelValues(reason).Inc() }
