package generator

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/sinks/generator/hostinfo"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/servicegraphs"
	"github.com/weftdb/weft/sinks/generator/spanmetrics"
	"github.com/weftdb/weft/sinks/generator/spanview"
)

// processor turns a tenant's spans into series of its registry. PushSpans
// is called on several goroutines at once; Shutdown is called once, after
// the last PushSpans.
type processor interface {
	PushSpans(b *spanview.Batch)
	Shutdown()
}

// tenant is one tenant's registry and processors, built from the process's
// processor settings and the tenant's overrides (key says which).
type tenant struct {
	name     string
	key      string
	reg      *registry.Registry
	procs    []processor
	disabled bool // overrides.*.metrics_generator.disable_collection
	// headers are overrides.*.metrics_generator.remote_write_headers,
	// given to the tenant's queue at each collection.
	headers map[string]string
	// lim are the limits key, disabled and headers were last read from
	// (g.mu).
	lim *overrides.Limits
}

// tenantConfig is what a tenant's processors are built from.
type tenantConfig struct {
	Processors []string
	Processor  ProcessorConfig
}

// tenantSettings merges the process's processor settings with the tenant's
// overrides; key identifies the result.
func tenantSettings(cfg Config, lim *overrides.Limits) (string, tenantConfig) {
	g := lim.MetricsGenerator
	tc := tenantConfig{Processors: slices.Clone(g.Processors), Processor: cfg.Processor}
	slices.Sort(tc.Processors)
	tc.Processors = slices.Compact(tc.Processors)
	sm, so := &tc.Processor.SpanMetrics, g.Processor.SpanMetrics
	if so.Dimensions != nil {
		sm.Dimensions = so.Dimensions
	}
	if so.IntrinsicDimensions != nil {
		mergeIntrinsics(&sm.IntrinsicDimensions, so.IntrinsicDimensions)
	}
	if so.HistogramBuckets != nil {
		sm.HistogramBuckets = so.HistogramBuckets
	}
	if so.EnableTargetInfo != nil {
		sm.EnableTargetInfo = *so.EnableTargetInfo
	}
	sg, go_ := &tc.Processor.ServiceGraphs, g.Processor.ServiceGraphs
	if go_.Dimensions != nil {
		sg.Dimensions = go_.Dimensions
	}
	if go_.PeerAttributes != nil {
		sg.PeerAttributes = go_.PeerAttributes
	}
	if go_.HistogramBuckets != nil {
		sg.HistogramBuckets = go_.HistogramBuckets
	}
	if go_.EnableClientServerPrefix != nil {
		sg.EnableClientServerPrefix = *go_.EnableClientServerPrefix
	}
	if go_.EnableMessagingSystemLatencyHistogram != nil {
		sg.EnableMessagingSystemLatencyHistogram = *go_.EnableMessagingSystemLatencyHistogram
	}
	if go_.EnableVirtualNodeLabel != nil {
		sg.EnableVirtualNodeLabel = *go_.EnableVirtualNodeLabel
	}
	return fmt.Sprintf("%+v", tc), tc
}

// noShutdown is a processor without state of its own (its series are in
// the registry).
type noShutdown struct{ pusher }

type pusher interface{ PushSpans(b *spanview.Batch) }

func (noShutdown) Shutdown() {}

// mergeIntrinsics sets the intrinsic dimensions a tenant's overrides name.
func mergeIntrinsics(d *spanmetrics.IntrinsicDimensions, o map[string]bool) {
	for k, v := range o {
		switch k {
		case spanmetrics.DimService:
			d.Service = v
		case spanmetrics.DimSpanName:
			d.SpanName = v
		case spanmetrics.DimSpanKind:
			d.SpanKind = v
		case spanmetrics.DimStatusCode:
			d.StatusCode = v
		case spanmetrics.DimStatusMessage:
			d.StatusMessage = v
		}
	}
}

func newTenant(name, key string, tc tenantConfig, rc registry.Config, reg prometheus.Registerer) (*tenant, error) {
	t := &tenant{name: name, key: key, reg: registry.New(rc, name, reg)}
	for _, p := range tc.Processors {
		switch p {
		case overrides.ProcessorSpanMetrics:
			t.procs = append(t.procs, noShutdown{spanmetrics.New(tc.Processor.SpanMetrics, t.reg, name, reg)})
		case overrides.ProcessorServiceGraphs:
			t.procs = append(t.procs, servicegraphs.New(tc.Processor.ServiceGraphs, t.reg, name, reg))
		case overrides.ProcessorHostInfo:
			t.procs = append(t.procs, noShutdown{hostinfo.New(tc.Processor.HostInfo, t.reg)})
		default:
			t.close()
			return nil, fmt.Errorf("cannot build the processors of tenant %s: unknown processor %q", name, p)
		}
	}
	return t, nil
}

func (t *tenant) push(b *spanview.Batch) {
	for _, p := range t.procs {
		p.PushSpans(b)
	}
}

func (t *tenant) collect(now time.Time, opts registry.CollectOptions) []prompb.TimeSeries {
	return t.reg.Collect(now, opts)
}

// close stops the processors and lets the registry's own metrics go.
func (t *tenant) close() {
	t.shutdownProcessors()
	t.reg.Close()
}

// shutdownProcessors stops the processors once: a processor with waiting
// state (service graphs) counts it in the registry.
func (t *tenant) shutdownProcessors() {
	for _, p := range t.procs {
		p.Shutdown()
	}
	t.procs = nil
}
