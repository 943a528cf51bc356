package broker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

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

// queueCollector is the broker's enclave_queue_depth: per routing target, the
// jobs in its work stream that no runtime has taken yet. In scale-out this is
// where work waits (a runtime takes no more than it can start), so it is the
// backlog to alert on. The runtime label holds the target ("default",
// "tier=premium"): the runtimes the work waits for.
type queueCollector struct {
	rdb  redis.UniversalClient
	desc *prometheus.Desc
}

// scrapeTimeout bounds the Redis reads of one scrape.
const scrapeTimeout = 2 * time.Second

// NewQueueCollector returns the collector of enclave_queue_depth over the work
// streams in rdb; register it on a broker's registry.
func NewQueueCollector(rdb redis.UniversalClient) prometheus.Collector {
	return &queueCollector{rdb: rdb, desc: prometheus.NewDesc("enclave_queue_depth",
		"Runs waiting for a worker: on a broker, jobs in a routing target's work stream no runtime took yet.",
		[]string{"runtime"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A target Redis cannot be asked about
// is left out of the scrape rather than reported as empty.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	targets, err := c.rdb.SMembers(ctx, targetsKey).Result()
	if err != nil {
		return
	}
	if !slices.Contains(targets, defaultTarget) {
		targets = append(targets, defaultTarget)
	}
	for _, target := range targets {
		if n, err := queued(ctx, c.rdb, streamKey(target)); err == nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), target)
		}
	}
}

// queued counts a work stream's entries that were never delivered: acked jobs
// are deleted, so that is its length less its pending entries.
func queued(ctx context.Context, rdb redis.UniversalClient, stream string) (int64, error) {
	n, err := rdb.XLen(ctx, stream).Result()
	if err != nil || n == 0 {
		return 0, err
	}
	p, err := rdb.XPending(ctx, stream, groupName).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "NOGROUP"):
		return n, nil // no runtime has read this stream yet
	case err != nil:
		return 0, err
	}
	return n - p.Count, nil
}
