package remotewrite

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
)

// Results of a request sent to one endpoint (label result of
// weft_metrics_generator_remote_write_{requests,samples}_total).
const (
	// ResultSuccess: the endpoint answered 2xx.
	ResultSuccess = "success"
	// ResultRetried: a network error, a 5xx or a 429; the request is sent
	// again after a backoff.
	ResultRetried = "retried"
	// ResultRejected: a 4xx other than 429; the request is not sent to
	// this endpoint again.
	ResultRejected = "rejected"
	// ResultDuplicate: a 400 saying "out of order" or "duplicate sample"
	// for a request that may have been delivered before (a retry, or a
	// request read back after a restart): counted as delivered.
	ResultDuplicate = "duplicate"
)

// Reasons of weft_metrics_generator_remote_write_dropped_{requests,samples}_total.
const (
	// ReasonMaxQueueAge: enqueued longer ago than max_queue_age.
	ReasonMaxQueueAge = "max_queue_age"
	// ReasonMaxQueueBytes: the oldest request, dropped to keep the queue
	// under max_queue_bytes.
	ReasonMaxQueueBytes = "max_queue_bytes"
	// ReasonRejected: an endpoint refused it with a 4xx other than 429.
	ReasonRejected = "rejected"
	// ReasonCorrupt: its file could not be read back.
	ReasonCorrupt = "corrupt"
)

type metricSet struct {
	requests       *prometheus.CounterVec
	samples        *prometheus.CounterVec
	droppedReqs    *prometheus.CounterVec
	droppedSamples *prometheus.CounterVec
	enqueued       *prometheus.CounterVec
	enqueueFailed  *prometheus.CounterVec
	queueLength    *prometheus.GaugeVec
	queueBytes     *prometheus.GaugeVec
	oldestAge      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metricSet {
	const ns = "weft_metrics_generator_remote_write_"
	return &metricSet{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "requests_total",
			Help: "Remote-write requests sent, one per endpoint and attempt, by tenant and result (success, retried, rejected, duplicate).",
		}, []string{"tenant", "result"})),
		samples: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "samples_total",
			Help: "Samples in the remote-write requests sent, one count per endpoint and attempt, by tenant and result.",
		}, []string{"tenant", "result"})),
		droppedReqs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "dropped_requests_total",
			Help: "Queued remote-write requests dropped without being delivered, by tenant and reason (max_queue_age, max_queue_bytes, rejected (per endpoint), corrupt).",
		}, []string{"tenant", "reason"})),
		droppedSamples: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "dropped_samples_total",
			Help: "Samples of the queued remote-write requests dropped without being delivered, by tenant and reason.",
		}, []string{"tenant", "reason"})),
		enqueued: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "enqueued_requests_total",
			Help: "Remote-write requests written to the queue, by tenant.",
		}, []string{"tenant"})),
		enqueueFailed: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "enqueue_failures_total",
			Help: "Remote-write requests that could not be written to the queue (disk errors, over max_queue_bytes), by tenant.",
		}, []string{"tenant"})),
		queueLength: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "queue_length",
			Help: "Remote-write requests in the queue, by tenant.",
		}, []string{"tenant"})),
		queueBytes: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "queue_bytes",
			Help: "Bytes of the remote-write requests in the queue on disk, by tenant.",
		}, []string{"tenant"})),
		oldestAge: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "queue_oldest_age_seconds",
			Help: "Age of the oldest remote-write request in the queue (0 when empty), by tenant; updated every second.",
		}, []string{"tenant"})),
	}
}
