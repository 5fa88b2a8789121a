package generator

import (
	"fmt"
	"time"

	"github.com/weftdb/weft/sinks/generator/hostinfo"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/remotewrite"
	"github.com/weftdb/weft/sinks/generator/servicegraphs"
	"github.com/weftdb/weft/sinks/generator/spanmetrics"
)

// Config is the `metrics_generator` block of the weft config, in Tempo's
// shape. Which processors run for a tenant, and its series limit, are the
// tenant's overrides (overrides.*.metrics_generator).
type Config struct {
	// Processor holds the processors' settings for every tenant; a
	// tenant's overrides may change some of them.
	Processor ProcessorConfig `yaml:"processor"`
	// Registry configures the series: collection interval, staleness,
	// label caps, external labels.
	Registry registry.Config `yaml:"registry"`
	// Storage is where the series go: a local queue under path, sent by
	// Prometheus remote write.
	Storage remotewrite.Config `yaml:"storage"`
	// MetricsIngestionTimeRangeSlack ignores spans that ended more than
	// this long before (or after) now: replayed or late spans are not
	// counted again. 0 turns the check off.
	MetricsIngestionTimeRangeSlack time.Duration `yaml:"metrics_ingestion_time_range_slack"`
}

// ProcessorConfig is `metrics_generator.processor`.
type ProcessorConfig struct {
	// SpanMetrics derives calls, latency and size by service and span.
	SpanMetrics spanmetrics.Config `yaml:"span_metrics"`
	// ServiceGraphs derives the edges between services.
	ServiceGraphs servicegraphs.Config `yaml:"service_graphs"`
	// HostInfo counts the hosts that send spans.
	HostInfo hostinfo.Config `yaml:"host_info"`
}

// DefaultConfig is Tempo's: collection every 15s, series stale after 15m,
// 30s of slack; no remote write until one is configured.
func DefaultConfig() Config {
	return Config{
		Processor: ProcessorConfig{
			SpanMetrics:   spanmetrics.DefaultConfig(),
			ServiceGraphs: servicegraphs.DefaultConfig(),
			HostInfo:      hostinfo.DefaultConfig(),
		},
		Registry:                       registry.DefaultConfig(),
		Storage:                        remotewrite.DefaultConfig(),
		MetricsIngestionTimeRangeSlack: 30 * time.Second,
	}
}

// Validate checks the config's own keys; the nested blocks have their
// Validate, which the config loader calls with their paths.
func (c *Config) Validate() error {
	if c.MetricsIngestionTimeRangeSlack < 0 {
		return fmt.Errorf("metrics_ingestion_time_range_slack: must not be negative, got %s", c.MetricsIngestionTimeRangeSlack)
	}
	return nil
}
