// Package hostinfo is the metrics-generator's host-info processor: for
// every resource that names its host by one of host_identifiers it sets
// traces_host_info{grafana_host_id, host_source} to 1, as Tempo does, so
// that hosts sending traces can be counted and joined with host metrics.
package hostinfo

import (
	"errors"
	"fmt"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanview"
)

// Label names (Tempo's).
const (
	LabelHostID     = "grafana_host_id"
	LabelHostSource = "host_source"
)

// Config of the processor: `metrics_generator.processor.host_info`.
type Config struct {
	// HostIdentifiers are resource attributes naming the host, the first
	// present (with a non-empty string value) wins.
	HostIdentifiers []string `yaml:"host_identifiers"`
	// MetricName is the gauge's name.
	MetricName string `yaml:"metric_name"`
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{HostIdentifiers: []string{"k8s.node.name", "host.id"}, MetricName: "traces_host_info"}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.HostIdentifiers) == 0 {
		errs = append(errs, errors.New("metrics_generator.processor.host_info.host_identifiers is empty"))
	}
	if c.MetricName == "" || registry.SanitizeLabelName(c.MetricName) != c.MetricName {
		errs = append(errs, fmt.Errorf("metrics_generator.processor.host_info.metric_name: %q is not a valid metric name", c.MetricName))
	}
	return errors.Join(errs...)
}

// Processor sets the host-info gauge. It is safe for concurrent use.
type Processor struct {
	cfg   Config
	gauge *registry.Gauge
}

// New returns a processor writing into reg; cfg must be valid.
func New(cfg Config, reg *registry.Registry) *Processor {
	return &Processor{cfg: cfg, gauge: reg.NewGauge(cfg.MetricName, []string{LabelHostID, LabelHostSource})}
}

// Shutdown does nothing: host info keeps no state outside the registry.
func (p *Processor) Shutdown() {}

// PushSpans sets the gauge for each resource of the batch that has spans.
func (p *Processor) PushSpans(b *spanview.Batch) {
	var last *spanview.Resource
	var values [2]string
	for i := range b.Spans {
		r := b.Spans[i].Resource
		if r == last {
			continue
		}
		last = r
		for _, id := range p.cfg.HostIdentifiers {
			raw, ok := r.Lookup(id)
			if !ok {
				continue
			}
			v, err := otlpwire.ReadAnyValue(raw)
			if err != nil || len(v.Str()) == 0 {
				continue // Tempo reads string values only
			}
			values[0], values[1] = spanview.UnsafeString(v.Str()), id
			p.gauge.Set(values[:], 1)
			break
		}
	}
}
