package generator

import "github.com/prometheus/client_golang/prometheus"

// Reasons of the discarded counters.
const (
	reasonSlack   = "outside_metrics_ingestion_slack"
	reasonInvalid = "invalid_spans"
	reasonConfig  = "processor_config"
)

// metrics are the generator's own metrics (the series it derives go by
// remote write, not here).
type metrics struct {
	spans          *prometheus.CounterVec
	spansDiscarded *prometheus.CounterVec
	discarded      *prometheus.CounterVec
	skipped        prometheus.Counter
	collections    *prometheus.CounterVec
	samples        *prometheus.CounterVec
	commitFailures prometheus.Counter
	collectSeconds prometheus.Histogram
	tenants        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		spans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_metrics_generator_spans_received_total",
			Help: "Spans the metrics-generator passed to the tenant's processors."}, []string{"tenant"}),
		spansDiscarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_metrics_generator_spans_discarded_total",
			Help: "Spans the metrics-generator did not count, by reason (outside_metrics_ingestion_slack: ended more than metrics_generator.metrics_ingestion_time_range_slack from now)."}, []string{"tenant", "reason"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_metrics_generator_messages_discarded_total",
			Help: "Messages of spans the metrics-generator could not read (invalid_spans) or had no processors for (processor_config)."}, []string{"tenant", "reason"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_metrics_generator_records_skipped_total",
			Help: "Kafka records read again after a restart that a queued collection had counted already."}),
		collections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_metrics_generator_collections_total",
			Help: "Collections of a tenant's series, by result (queued, failed)."}, []string{"tenant", "result"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_metrics_generator_collected_series_total",
			Help: "Series queued for remote write, summed over collections."}, []string{"tenant"}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_metrics_generator_commit_failures_total",
			Help: "Kafka offset commits that failed after a collection (the records are skipped on replay all the same)."}),
		collectSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "weft_metrics_generator_collection_duration_seconds",
			Help: "How long a collection of every tenant's series took, queueing included.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		tenants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "weft_metrics_generator_active_tenants",
			Help: "Tenants with processors in this metrics-generator."}),
	}
	if reg != nil {
		reg.MustRegister(m.spans, m.spansDiscarded, m.discarded, m.skipped, m.collections, m.samples, m.commitFailures, m.collectSeconds, m.tenants)
	}
	return m
}
