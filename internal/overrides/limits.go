// Package overrides holds the per-tenant limits, in Grafana Tempo's
// `overrides` shape: defaults for every tenant from the config file, plus a
// runtime file (overrides.per_tenant_override_config) with the tenants that
// differ, read again every per_tenant_override_period. A runtime file that
// cannot be read or does not validate leaves the last good one in force, and
// says why in a log line and in weft_overrides_reload_failures_total.
package overrides

import (
	"errors"
	"fmt"
	"time"
)

// Limits are the limits of one tenant. The YAML shape is Tempo's scoped
// one, under overrides.defaults and under each tenant of the runtime file.
type Limits struct {
	// Ingestion limits the write path.
	Ingestion IngestionLimits `yaml:"ingestion"`
	// Read limits the query path.
	Read ReadLimits `yaml:"read"`
	// Global holds the limits that apply across paths.
	Global GlobalLimits `yaml:"global"`
	// Compaction holds block retention, read by the backend jobs.
	Compaction CompactionLimits `yaml:"compaction"`
	// MetricsGenerator says which of the metrics-generator's processors
	// run for the tenant, and bounds its series.
	MetricsGenerator GeneratorLimits `yaml:"metrics_generator"`
}

// Strategies of IngestionLimits.RateStrategy.
const (
	// RateStrategyLocal applies rate_limit_bytes in each distributor.
	RateStrategyLocal = "local"
)

// IngestionLimits are overrides.*.ingestion.
type IngestionLimits struct {
	// RateStrategy is how rate_limit_bytes is applied; only "local" (each
	// distributor process allows the whole rate) is supported.
	RateStrategy string `yaml:"rate_strategy"`
	// RateLimitBytes is the sustained OTLP protobuf bytes per second a
	// tenant may push, per distributor. 0 turns the rate limit off.
	RateLimitBytes int `yaml:"rate_limit_bytes"`
	// BurstSizeBytes is the most a tenant may push at once above the rate:
	// the size of the token bucket. A push larger than it is always refused.
	BurstSizeBytes int `yaml:"burst_size_bytes"`
	// MaxAttributeBytes truncates longer attribute keys and string values;
	// 0 leaves distributor.max_attribute_bytes in force.
	MaxAttributeBytes int `yaml:"max_attribute_bytes"`
	// MaxTracesPerUser is how many traces of the tenant may be live at once
	// in one distributor: traces that received a span within
	// distributor.trace_idle_period. Spans of new traces beyond it are
	// refused (partial success, LIVE_TRACES_EXCEEDED). 0 is no limit.
	MaxTracesPerUser int `yaml:"max_traces_per_user"`
}

// ReadLimits are overrides.*.read.
type ReadLimits struct {
	// MaxBytesPerTagValuesQuery caps the bytes of names or values one tag
	// request returns; the answer is cut there with a Warning header.
	MaxBytesPerTagValuesQuery int `yaml:"max_bytes_per_tag_values_query"`
	// MaxMetricsDuration caps the time range of the tenant's TraceQL
	// metrics queries; longer ones get 400 naming this key. 0 uses
	// query_frontend.metrics.max_duration.
	MaxMetricsDuration time.Duration `yaml:"max_metrics_duration"`
}

// GlobalLimits are overrides.*.global.
type GlobalLimits struct {
	// MaxBytesPerTrace is the largest trace, in OTLP bytes. At ingest, a span
	// that would take a live trace over it is refused (partial success,
	// TRACE_TOO_LARGE); at query time, a trace-by-ID answer over it (a trace
	// that grew across idle periods or distributors) is 422 on v1, and on v2
	// the spans that fit with status PARTIAL. 0 is no limit.
	MaxBytesPerTrace int `yaml:"max_bytes_per_trace"`
}

// CompactionLimits are overrides.*.compaction.
type CompactionLimits struct {
	// BlockRetention is how long the tenant's blocks are kept (by their
	// end time); 0 uses backend_worker.compaction.block_retention. The
	// backend's retention jobs apply it.
	BlockRetention time.Duration `yaml:"block_retention"`
	// CompactionDisabled stops the backend scheduler from planning
	// compaction jobs for the tenant (retention still runs).
	CompactionDisabled bool `yaml:"compaction_disabled"`
}

// The processors of GeneratorLimits.Processors, by Tempo's names.
const (
	ProcessorSpanMetrics   = "span-metrics"
	ProcessorServiceGraphs = "service-graphs"
	ProcessorHostInfo      = "host-info"
)

// GeneratorLimits are overrides.*.metrics_generator: what the
// metrics-generator derives from the tenant's spans. The processors'
// settings not given here are those of metrics_generator.processor.
type GeneratorLimits struct {
	// Processors run for the tenant: span-metrics, service-graphs,
	// host-info. None (the default) turns the generator off for it.
	Processors []string `yaml:"processors"`
	// MaxActiveSeries bounds the tenant's series; past it a new series is
	// refused and its samples go to the metric's overflow series
	// (metric_overflow="true"). 0 is no limit.
	MaxActiveSeries int `yaml:"max_active_series"`
	// DisableCollection keeps the series but sends nothing by remote write.
	DisableCollection bool `yaml:"disable_collection"`
	// RemoteWriteHeaders are added to the tenant's remote-write requests
	// (an Authorization of its own, say); they win over the endpoints'.
	RemoteWriteHeaders map[string]string `yaml:"remote_write_headers"`
	// Processor overrides some settings of metrics_generator.processor
	// for the tenant.
	Processor GeneratorProcessorLimits `yaml:"processor"`
}

// GeneratorProcessorLimits are overrides.*.metrics_generator.processor.
type GeneratorProcessorLimits struct {
	SpanMetrics   SpanMetricsLimits   `yaml:"span_metrics"`
	ServiceGraphs ServiceGraphsLimits `yaml:"service_graphs"`
}

// SpanMetricsLimits override metrics_generator.processor.span_metrics;
// a key left out (nil) keeps the process's setting.
type SpanMetricsLimits struct {
	// Dimensions are the span or resource attributes added as labels.
	Dimensions []string `yaml:"dimensions"`
	// IntrinsicDimensions turn the intrinsic labels (service, span_name,
	// span_kind, status_code, status_message) on or off.
	IntrinsicDimensions map[string]bool `yaml:"intrinsic_dimensions"`
	// HistogramBuckets are the latency histogram's buckets, in seconds.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// EnableTargetInfo adds traces_target_info.
	EnableTargetInfo *bool `yaml:"enable_target_info"`
}

// ServiceGraphsLimits override metrics_generator.processor.service_graphs;
// a key left out (nil) keeps the process's setting.
type ServiceGraphsLimits struct {
	// Dimensions are the span or resource attributes added as labels.
	Dimensions []string `yaml:"dimensions"`
	// PeerAttributes name an uninstrumented server (virtual node).
	PeerAttributes []string `yaml:"peer_attributes"`
	// HistogramBuckets are the latency histograms' buckets, in seconds.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// EnableClientServerPrefix prefixes dimension labels with client_ and
	// server_.
	EnableClientServerPrefix *bool `yaml:"enable_client_server_prefix"`
	// EnableMessagingSystemLatencyHistogram adds
	// traces_service_graph_request_messaging_system_seconds.
	EnableMessagingSystemLatencyHistogram *bool `yaml:"enable_messaging_system_latency_histogram"`
	// EnableVirtualNodeLabel labels virtual-node edges.
	EnableVirtualNodeLabel *bool `yaml:"enable_virtual_node_label"`
}

// DefaultLimits are Tempo's defaults: 30 MB/s with a 30 MB burst, 10,000
// live traces, tag answers cut at 1 MB, traces up to 5 MB.
func DefaultLimits() Limits {
	return Limits{
		Ingestion: IngestionLimits{
			RateStrategy:     RateStrategyLocal,
			RateLimitBytes:   30_000_000,
			BurstSizeBytes:   30_000_000,
			MaxTracesPerUser: 10_000,
		},
		Read:   ReadLimits{MaxBytesPerTagValuesQuery: 1_000_000},
		Global: GlobalLimits{MaxBytesPerTrace: 5_000_000},
	}
}

// Validate checks the values. Errors name the key below the tenant's block,
// such as "ingestion.rate_limit_bytes".
func (l *Limits) Validate() error {
	var errs []error
	nonNegative := func(key string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %d", key, v))
		}
	}
	if l.Ingestion.RateStrategy != RateStrategyLocal {
		errs = append(errs, fmt.Errorf("ingestion.rate_strategy: %q is not supported: use %q", l.Ingestion.RateStrategy, RateStrategyLocal))
	}
	nonNegative("ingestion.rate_limit_bytes", l.Ingestion.RateLimitBytes)
	nonNegative("ingestion.burst_size_bytes", l.Ingestion.BurstSizeBytes)
	if l.Ingestion.RateLimitBytes > 0 && l.Ingestion.BurstSizeBytes == 0 {
		errs = append(errs, errors.New("ingestion.burst_size_bytes: must be positive when ingestion.rate_limit_bytes is set, or every push is refused"))
	}
	nonNegative("ingestion.max_attribute_bytes", l.Ingestion.MaxAttributeBytes)
	nonNegative("ingestion.max_traces_per_user", l.Ingestion.MaxTracesPerUser)
	if l.Read.MaxMetricsDuration < 0 {
		errs = append(errs, fmt.Errorf("read.max_metrics_duration: must not be negative, got %s", l.Read.MaxMetricsDuration))
	}
	if l.Read.MaxBytesPerTagValuesQuery <= 0 {
		errs = append(errs, fmt.Errorf("read.max_bytes_per_tag_values_query: must be positive, got %d", l.Read.MaxBytesPerTagValuesQuery))
	}
	nonNegative("global.max_bytes_per_trace", l.Global.MaxBytesPerTrace)
	for _, p := range l.MetricsGenerator.Processors {
		switch p {
		case ProcessorSpanMetrics, ProcessorServiceGraphs, ProcessorHostInfo:
		default:
			errs = append(errs, fmt.Errorf("metrics_generator.processors: unknown processor %q (known: %s, %s, %s)", p, ProcessorSpanMetrics, ProcessorServiceGraphs, ProcessorHostInfo))
		}
	}
	nonNegative("metrics_generator.max_active_series", l.MetricsGenerator.MaxActiveSeries)
	increasing := func(key string, b []float64) {
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				errs = append(errs, fmt.Errorf("%s: buckets must increase, got %v", key, b))
				return
			}
		}
	}
	increasing("metrics_generator.processor.span_metrics.histogram_buckets", l.MetricsGenerator.Processor.SpanMetrics.HistogramBuckets)
	increasing("metrics_generator.processor.service_graphs.histogram_buckets", l.MetricsGenerator.Processor.ServiceGraphs.HistogramBuckets)
	for k := range l.MetricsGenerator.Processor.SpanMetrics.IntrinsicDimensions {
		switch k {
		case "service", "span_name", "span_kind", "status_code", "status_message":
		default:
			errs = append(errs, fmt.Errorf("metrics_generator.processor.span_metrics.intrinsic_dimensions: unknown dimension %q (known: service, span_name, span_kind, status_code, status_message)", k))
		}
	}
	if l.Compaction.BlockRetention < 0 {
		errs = append(errs, fmt.Errorf("compaction.block_retention: must not be negative, got %s", l.Compaction.BlockRetention))
	}
	return errors.Join(errs...)
}
