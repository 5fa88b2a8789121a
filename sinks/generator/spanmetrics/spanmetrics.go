// Package spanmetrics is the metrics-generator's span-metrics processor:
// for every span it counts a call, observes its latency and adds its size to
// series labelled by service, span name, kind, status and configured
// dimensions, with Tempo's metric names, label names and label values
// (traces_spanmetrics_calls_total, traces_spanmetrics_latency,
// traces_spanmetrics_size_total, traces_target_info).
package spanmetrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanview"
)

// Metric names (Tempo's).
const (
	MetricCallsTotal = "traces_spanmetrics_calls_total"
	MetricLatency    = "traces_spanmetrics_latency"
	MetricSizeTotal  = "traces_spanmetrics_size_total"
	MetricTargetInfo = "traces_target_info"
)

// Intrinsic label names (Tempo's).
const (
	DimService       = "service"
	DimSpanName      = "span_name"
	DimSpanKind      = "span_kind"
	DimStatusCode    = "status_code"
	DimStatusMessage = "status_message"
	DimJob           = "job"
	DimInstance      = "instance"
)

var intrinsicLabels = []string{DimService, DimSpanName, DimSpanKind, DimStatusCode, DimStatusMessage, DimJob, DimInstance}

// IntrinsicDimensions choose the span properties that become labels.
type IntrinsicDimensions struct {
	// Service adds the service label (resource service.name).
	Service bool `yaml:"service"`
	// SpanName adds the span_name label.
	SpanName bool `yaml:"span_name"`
	// SpanKind adds the span_kind label (SPAN_KIND_SERVER...).
	SpanKind bool `yaml:"span_kind"`
	// StatusCode adds the status_code label (STATUS_CODE_OK...).
	StatusCode bool `yaml:"status_code"`
	// StatusMessage adds the status_message label; beware its cardinality.
	StatusMessage bool `yaml:"status_message"`
}

// DimensionMapping makes one label from one or more attributes.
type DimensionMapping struct {
	// Name of the label (sanitised).
	Name string `yaml:"name"`
	// SourceLabels are the attribute names whose values make the label.
	SourceLabels []string `yaml:"source_labels"`
	// Join separates the non-empty source values.
	Join string `yaml:"join"`
}

// Config of the processor: `metrics_generator.processor.span_metrics`, with
// Tempo's keys and defaults.
type Config struct {
	// HistogramBuckets are the latency histogram's upper bounds in seconds.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// IntrinsicDimensions choose the intrinsic labels.
	IntrinsicDimensions IntrinsicDimensions `yaml:"intrinsic_dimensions"`
	// Dimensions are attributes (resource first, then span, as Tempo looks
	// them up) added as labels named after them, sanitised.
	Dimensions []string `yaml:"dimensions"`
	// DimensionMappings rename or combine attributes into labels.
	DimensionMappings []DimensionMapping `yaml:"dimension_mappings"`
	// EnableTargetInfo emits traces_target_info and adds job and instance
	// labels to the span metrics.
	EnableTargetInfo bool `yaml:"enable_target_info"`
	// SpanMultiplierKey names a double attribute (span, then resource)
	// holding the sampling ratio; calls and latency count 1/ratio per span.
	SpanMultiplierKey string `yaml:"span_multiplier_key"`
	// FilterPolicies select the spans the processor counts.
	FilterPolicies []spanview.FilterPolicy `yaml:"filter_policies"`
	// TargetInfoExcludedDimensions are resource attributes left out of
	// traces_target_info.
	TargetInfoExcludedDimensions []string `yaml:"target_info_excluded_dimensions"`
	// EnableInstanceLabel adds the instance label when target info is on.
	EnableInstanceLabel bool `yaml:"enable_instance_label"`
}

// DefaultBuckets are Tempo's latency buckets: 0.002·2^k s up to 16.384 s.
func DefaultBuckets() []float64 {
	b := make([]float64, 14)
	for i := range b {
		b[i] = 0.002 * float64(int(1)<<i)
	}
	return b
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		HistogramBuckets: DefaultBuckets(),
		IntrinsicDimensions: IntrinsicDimensions{
			Service: true, SpanName: true, SpanKind: true, StatusCode: true,
		},
		EnableInstanceLabel: true,
	}
}

const keyPrefix = "metrics_generator.processor.span_metrics."

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.HistogramBuckets) == 0 {
		errs = append(errs, errors.New(keyPrefix+"histogram_buckets is empty"))
	}
	if !slices.IsSorted(c.HistogramBuckets) || len(slices.Compact(slices.Clone(c.HistogramBuckets))) != len(c.HistogramBuckets) {
		errs = append(errs, fmt.Errorf(keyPrefix+"histogram_buckets must be strictly increasing, got %v", c.HistogramBuckets))
	}
	seen := map[string]string{}
	for _, n := range c.labelNames() {
		seen[n] = "intrinsic dimension"
	}
	for i, d := range c.Dimensions {
		if d == "" {
			errs = append(errs, fmt.Errorf(keyPrefix+"dimensions[%d] is empty", i))
			continue
		}
		l := dimensionLabel(d)
		if prev, dup := seen[l]; dup {
			errs = append(errs, fmt.Errorf(keyPrefix+"dimensions[%d]: %q makes label %q, as %s does", i, d, l, prev))
		}
		seen[l] = fmt.Sprintf("dimensions[%d]", i)
	}
	for i, m := range c.DimensionMappings {
		if m.Name == "" || len(m.SourceLabels) == 0 {
			errs = append(errs, fmt.Errorf(keyPrefix+"dimension_mappings[%d]: name and source_labels are required", i))
			continue
		}
		l := dimensionLabel(m.Name)
		if prev, dup := seen[l]; dup {
			errs = append(errs, fmt.Errorf(keyPrefix+"dimension_mappings[%d]: %q makes label %q, as %s does", i, m.Name, l, prev))
		}
		seen[l] = fmt.Sprintf("dimension_mappings[%d]", i)
	}
	if _, err := spanview.NewFilter(keyPrefix+"filter_policies", c.FilterPolicies); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// labelNames are the intrinsic labels the config enables, in label order.
func (c *Config) labelNames() []string {
	var l []string
	d := c.IntrinsicDimensions
	for _, x := range []struct {
		on   bool
		name string
	}{{d.Service, DimService}, {d.SpanName, DimSpanName}, {d.SpanKind, DimSpanKind}, {d.StatusCode, DimStatusCode}, {d.StatusMessage, DimStatusMessage}} {
		if x.on {
			l = append(l, x.name)
		}
	}
	return l
}

// dimensionLabel is Tempo's label for an attribute: sanitised, and
// prefixed with "__" when it would take an intrinsic label's name.
func dimensionLabel(attr string) string {
	l := registry.SanitizeLabelName(attr)
	if slices.Contains(intrinsicLabels, l) {
		return "__" + l
	}
	return l
}

// Processor computes span metrics into a tenant's registry. PushSpans may
// be called from several goroutines.
type Processor struct {
	cfg      Config
	filter   *spanview.Filter
	excluded map[string]bool

	calls      *registry.Counter
	latency    *registry.Histogram
	size       *registry.Counter
	targetInfo *registry.Gauge

	reg      *registry.Registry
	names    []string
	filtered prometheus.Counter
	pool     sync.Pool // *scratch
}

type scratch struct {
	values []string
	buf    []byte
	fbuf   []byte
	tnames []string
	tvals  []string
}

// New returns a processor writing into reg; cfg must be valid. Spans left
// out by the filter policies are counted in
// weft_metrics_generator_spans_filtered_total{tenant,processor} on prom.
func New(cfg Config, reg *registry.Registry, tenant string, prom prometheus.Registerer) *Processor {
	filter, err := spanview.NewFilter(keyPrefix+"filter_policies", cfg.FilterPolicies)
	if err != nil {
		filter = nil // Validate reports it; an invalid filter keeps every span
	}
	names := cfg.labelNames()
	p := &Processor{cfg: cfg, filter: filter, excluded: map[string]bool{}}
	for _, d := range cfg.Dimensions {
		names = append(names, dimensionLabel(d))
	}
	for _, m := range cfg.DimensionMappings {
		names = append(names, dimensionLabel(m.Name))
	}
	if cfg.EnableTargetInfo {
		names = append(names, DimJob, DimInstance)
		p.targetInfo = reg.NewGauge(MetricTargetInfo, nil)
	}
	for _, e := range cfg.TargetInfoExcludedDimensions {
		p.excluded[e] = true
	}
	p.reg, p.names = reg, names
	p.calls = reg.NewCounter(MetricCallsTotal, names)
	p.latency = reg.NewHistogram(MetricLatency, names, cfg.HistogramBuckets)
	p.size = reg.NewCounter(MetricSizeTotal, names)
	p.filtered = FilteredSpans(prom).WithLabelValues(tenant, "span-metrics")
	n := len(names)
	p.pool.New = func() any { return &scratch{values: make([]string, n)} }
	return p
}

// Shutdown does nothing: span metrics keep no state outside the registry.
// It is there so that every processor has the same methods.
func (p *Processor) Shutdown() {}

// FilteredSpans counts spans left out by a processor's filter policies.
func FilteredSpans(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_spans_filtered_total",
		Help: "Spans left out of a metrics-generator processor by its filter_policies.",
	}, []string{"tenant", "processor"}))
}

// PushSpans adds the batch's spans to the metrics.
func (p *Processor) PushSpans(b *spanview.Batch) {
	sc := p.pool.Get().(*scratch)
	defer p.pool.Put(sc)
	now := time.Now().UnixMilli() // one clock reading per batch
	var lastRes *spanview.Resource
	var job, instance string
	targetDone := false
	for i := range b.Spans {
		s := &b.Spans[i]
		var keep bool
		if keep, sc.fbuf = p.filter.Keep(s, sc.fbuf); !keep {
			p.filtered.Inc()
			continue
		}
		if s.Resource != lastRes {
			lastRes, targetDone = s.Resource, false
			if p.cfg.EnableTargetInfo {
				job, instance = serviceLabels(s.Resource)
			}
		}
		p.observe(sc, s, job, instance, now)
		if p.cfg.EnableTargetInfo && !targetDone {
			p.setTargetInfo(sc, s.Resource, job, instance)
			targetDone = true
		}
	}
}

// serviceLabels are Tempo's job ("namespace/name" or "name") and instance
// (service.instance.id) of a resource.
func serviceLabels(r *spanview.Resource) (job, instance string) {
	if r.HasServiceName && r.ServiceName != "" {
		job = r.ServiceName
		if raw, ok := r.Lookup("service.namespace"); ok {
			if ns := string(spanview.AppendLabel(nil, raw)); ns != "" {
				job = ns + "/" + job
			}
		}
	}
	if raw, ok := r.Lookup("service.instance.id"); ok {
		instance = string(spanview.AppendLabel(nil, raw))
	}
	return job, instance
}

func (p *Processor) observe(sc *scratch, s *spanview.Span, job, instance string, now int64) {
	v := sc.values[:0]
	d := p.cfg.IntrinsicDimensions
	if d.Service {
		v = append(v, s.Resource.ServiceName)
	}
	if d.SpanName {
		v = append(v, spanview.UnsafeString(s.Name))
	}
	if d.SpanKind {
		v = append(v, spanview.SpanKindName(s.Kind))
	}
	if d.StatusCode {
		v = append(v, spanview.StatusCodeName(s.StatusCode))
	}
	if d.StatusMessage {
		v = append(v, spanview.UnsafeString(s.StatusMessage))
	}
	// Values are formatted into sc.buf; strings view parts of it. A later
	// append may move the buffer, which leaves the earlier views valid.
	sc.buf = sc.buf[:0]
	for _, dim := range p.cfg.Dimensions {
		var val string
		val, sc.buf = lookupLabel(s, dim, sc.buf)
		v = append(v, val)
	}
	for _, m := range p.cfg.DimensionMappings {
		start := len(sc.buf)
		for _, src := range m.SourceLabels {
			raw, ok := s.Resource.Lookup(src)
			if !ok {
				raw, ok = s.Lookup(src)
			}
			if !ok {
				continue
			}
			at := len(sc.buf)
			if at > start {
				sc.buf = append(sc.buf, m.Join...)
			}
			mark := len(sc.buf)
			sc.buf = spanview.AppendLabel(sc.buf, raw)
			if len(sc.buf) == mark { // empty value: no separator either
				sc.buf = sc.buf[:at]
			}
		}
		v = append(v, spanview.UnsafeString(sc.buf[start:]))
	}
	if p.cfg.EnableTargetInfo {
		v = append(v, job)
		if p.cfg.EnableInstanceLabel {
			v = append(v, instance)
		} else {
			v = append(v, "")
		}
	}
	mult := 1.0
	if p.cfg.SpanMultiplierKey != "" {
		mult = s.Multiplier(p.cfg.SpanMultiplierKey)
	}
	ls := p.reg.LabelSet(p.names, v)
	p.calls.Add(ls, mult, now)
	p.latency.Record(ls, s.DurationSeconds(), s.TraceID, mult, now)
	p.size.Add(ls, float64(s.Size), now) // Tempo: size ignores the span multiplier
	sc.values = v
}

// lookupLabel is an attribute's label value, resource first then span (as
// Tempo looks dimensions up); "" when absent.
func lookupLabel(s *spanview.Span, key string, buf []byte) (string, []byte) {
	raw, ok := s.Resource.Lookup(key)
	if !ok {
		raw, ok = s.Lookup(key)
	}
	if !ok {
		return "", buf
	}
	start := len(buf)
	buf = spanview.AppendLabel(buf, raw)
	return spanview.UnsafeString(buf[start:]), buf
}

// setTargetInfo sets traces_target_info for a resource: its attributes
// other than service.name, service.namespace, service.instance.id and the
// excluded ones, with job and instance; only when there is job or instance
// and at least one other label (Tempo's rule).
func (p *Processor) setTargetInfo(sc *scratch, r *spanview.Resource, job, instance string) {
	names, vals := sc.tnames[:0], sc.tvals[:0]
	sc.buf = sc.buf[:0]
	other := 0
	for _, a := range r.Attrs() {
		k := string(a.Key)
		if k == "" || (k[0] >= '0' && k[0] <= '9') || k == "service.name" || k == "service.namespace" || k == "service.instance.id" || p.excluded[k] {
			continue
		}
		start := len(sc.buf)
		sc.buf = spanview.AppendLabel(sc.buf, a.Value)
		val := spanview.UnsafeString(sc.buf[start:])
		if val == "" {
			continue
		}
		name := dimensionLabel(k)
		if slices.Contains(names, name) {
			continue // first of colliding attributes wins
		}
		names, vals = append(names, name), append(vals, val)
		other++
	}
	ident := 0
	if job != "" {
		names, vals = append(names, DimJob), append(vals, job)
		ident++
	}
	if instance != "" && p.cfg.EnableInstanceLabel {
		names, vals = append(names, DimInstance), append(vals, instance)
		ident++
	}
	if ident > 0 && other > 0 {
		p.targetInfo.SetLabels(names, vals, 1)
	}
	sc.tnames, sc.tvals = names, vals
}
