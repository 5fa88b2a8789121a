package spanmetrics

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanview"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
)

// collect renders the registry as name{labels} -> last value.
func collect(t *testing.T, r *registry.Registry) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, ts := range r.Collect(time.Now(), registry.CollectOptions{}) {
		var name string
		var parts []string
		for _, l := range ts.Labels {
			if l.Name == "__name__" {
				name = l.Value
				continue
			}
			parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
		}
		out[name+"{"+strings.Join(parts, ",")+"}"] = ts.Samples[len(ts.Samples)-1].Value
	}
	return out
}

func only(m map[string]float64, prefix string) map[string]float64 {
	o := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			o[k] = v
		}
	}
	return o
}

func diff(t *testing.T, got, want map[string]float64) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || g != w {
			t.Errorf("%s: got %v (present %v), want %v (present %v)", k, g, gok, w, wok)
		}
	}
}

func push(t *testing.T, p *Processor, spans ...spantest.Span) {
	t.Helper()
	var b spanview.Batch
	if err := b.Parse(spantest.Marshal(spans...)); err != nil {
		t.Fatal(err)
	}
	p.PushSpans(&b)
}

func setup(t *testing.T, cfg Config) (*Processor, *registry.Registry, *prometheus.Registry) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	reg := registry.New(registry.DefaultConfig(), "t", prom)
	return New(cfg, reg, "t", prom), reg, prom
}

func TestSpanMetrics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HistogramBuckets = []float64{0.1, 1}
	p, reg, _ := setup(t, cfg)
	push(t, p,
		spantest.Span{Service: "api", ID: 1, Name: "GET /", Kind: ptrace.SpanKindServer, Duration: 50 * time.Millisecond},
		spantest.Span{Service: "api", ID: 2, Name: "GET /", Kind: ptrace.SpanKindServer, Duration: 500 * time.Millisecond, Status: ptrace.StatusCodeOk},
		spantest.Span{Service: "api", ID: 3, Name: "GET /", Kind: ptrace.SpanKindServer, Duration: 2 * time.Second, Status: ptrace.StatusCodeError, Message: "x"},
		spantest.Span{Service: "api", ID: 4, Name: "GET /", Kind: ptrace.SpanKindServer, Duration: 100 * time.Millisecond},
		spantest.Span{Service: "db", ID: 5, Name: "q", Kind: ptrace.SpanKindInternal},
	)
	got := collect(t, reg)
	const u = `service="api",span_kind="SPAN_KIND_SERVER",span_name="GET /",status_code="STATUS_CODE_UNSET"`
	const ok = `service="api",span_kind="SPAN_KIND_SERVER",span_name="GET /",status_code="STATUS_CODE_OK"`
	const er = `service="api",span_kind="SPAN_KIND_SERVER",span_name="GET /",status_code="STATUS_CODE_ERROR"`
	const db = `service="db",span_kind="SPAN_KIND_INTERNAL",span_name="q",status_code="STATUS_CODE_UNSET"`
	diff(t, only(got, "traces_spanmetrics_calls_total"), map[string]float64{
		"traces_spanmetrics_calls_total{" + u + "}":  2,
		"traces_spanmetrics_calls_total{" + ok + "}": 1,
		"traces_spanmetrics_calls_total{" + er + "}": 1,
		"traces_spanmetrics_calls_total{" + db + "}": 1,
	})
	diff(t, only(got, "traces_spanmetrics_latency_bucket{le=\"0.1\",service=\"api\""), map[string]float64{
		`traces_spanmetrics_latency_bucket{le="0.1",` + u + "}":  2, // 50 ms and exactly 100 ms (le is inclusive)
		`traces_spanmetrics_latency_bucket{le="0.1",` + ok + "}": 0,
		`traces_spanmetrics_latency_bucket{le="0.1",` + er + "}": 0,
	})
	if got[`traces_spanmetrics_latency_bucket{le="1",`+ok+"}"] != 1 || got[`traces_spanmetrics_latency_bucket{le="1",`+er+"}"] != 0 ||
		got[`traces_spanmetrics_latency_bucket{le="+Inf",`+er+"}"] != 1 || math.Abs(got[`traces_spanmetrics_latency_sum{`+u+"}"]-0.15) > 1e-9 ||
		got[`traces_spanmetrics_latency_count{`+u+"}"] != 2 {
		t.Errorf("latency series: %v", only(got, "traces_spanmetrics_latency"))
	}
	// size_total is the sum of proto.Size of the spans.
	var b spanview.Batch
	_ = b.Parse(spantest.Marshal(spantest.Span{Service: "db", ID: 5, Name: "q", Kind: ptrace.SpanKindInternal}))
	if got["traces_spanmetrics_size_total{"+db+"}"] != float64(b.Spans[0].Size) || b.Spans[0].Size < 20 {
		t.Errorf("size_total %v, span size %d", got["traces_spanmetrics_size_total{"+db+"}"], b.Spans[0].Size)
	}
}

func TestDimensionsAndMappings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntrinsicDimensions = IntrinsicDimensions{Service: true, StatusMessage: true}
	cfg.Dimensions = []string{"http.method", "k8s.namespace", "span_name", "missing"}
	cfg.DimensionMappings = []DimensionMapping{{Name: "route.key", SourceLabels: []string{"http.method", "http.route", "nope"}, Join: " "}}
	p, reg, _ := setup(t, cfg)
	push(t, p,
		spantest.Span{Service: "api", Resource: map[string]any{"k8s.namespace": "shop", "http.method": "RES"}, ID: 1, Name: "a", Status: ptrace.StatusCodeError, Message: "boom",
			Attrs: map[string]any{"http.method": "GET", "http.route": "/x", "span_name": int64(3), "k8s.namespace": "span-level"}},
	)
	// Resource attributes win over span attributes, as in Tempo; a
	// dimension named like an intrinsic label gets "__"; missing: no label.
	diff(t, only(collect(t, reg), "traces_spanmetrics_calls_total"), map[string]float64{
		`traces_spanmetrics_calls_total{__span_name="3",http_method="RES",k8s_namespace="shop",route_key="RES /x",service="api",status_message="boom"}`: 1,
	})
}

func TestFilterPoliciesAndMultiplier(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntrinsicDimensions = IntrinsicDimensions{SpanName: true}
	cfg.SpanMultiplierKey = "sampling.ratio"
	cfg.FilterPolicies = []spanview.FilterPolicy{
		{Include: &spanview.PolicyMatch{MatchType: "strict", Attributes: []spanview.MatchAttribute{{Key: "kind", Value: "SPAN_KIND_SERVER"}, {Key: "resource.service.name", Value: "api"}}}},
		{Exclude: &spanview.PolicyMatch{MatchType: "regex", Attributes: []spanview.MatchAttribute{{Key: "span.url.path", Value: "health"}}}},
		{Exclude: &spanview.PolicyMatch{MatchType: "strict", Attributes: []spanview.MatchAttribute{{Key: "span.code", Value: 500}}}},
	}
	p, reg, prom := setup(t, cfg)
	push(t, p,
		spantest.Span{Service: "api", ID: 1, Name: "kept", Kind: ptrace.SpanKindServer, Attrs: map[string]any{"url.path": "/cart", "sampling.ratio": 0.25}},
		spantest.Span{Service: "api", ID: 2, Name: "kept", Kind: ptrace.SpanKindServer, Attrs: map[string]any{"code": int64(200)}},
		spantest.Span{Service: "api", ID: 3, Name: "client", Kind: ptrace.SpanKindClient},
		spantest.Span{Service: "web", ID: 4, Name: "other-service", Kind: ptrace.SpanKindServer},
		spantest.Span{Service: "api", ID: 5, Name: "health", Kind: ptrace.SpanKindServer, Attrs: map[string]any{"url.path": "/healthz"}},
		spantest.Span{Service: "api", ID: 6, Name: "error", Kind: ptrace.SpanKindServer, Attrs: map[string]any{"code": int64(500)}},
	)
	diff(t, only(collect(t, reg), "traces_spanmetrics_calls_total"), map[string]float64{
		`traces_spanmetrics_calls_total{span_name="kept"}`: 4 + 1, // 1/0.25 + 1
	})
	if n := testutil.ToFloat64(FilteredSpans(prom).WithLabelValues("t", "span-metrics")); n != 4 {
		t.Errorf("filtered spans %v, want 4", n)
	}
	bad := DefaultConfig()
	bad.FilterPolicies = []spanview.FilterPolicy{{Include: &spanview.PolicyMatch{MatchType: "fuzzy", Attributes: []spanview.MatchAttribute{{Key: "foo", Value: "x"}}}}}
	bad.HistogramBuckets = []float64{1, 0.5}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "span_metrics.filter_policies[0].include: match_type") || !strings.Contains(err.Error(), "span_metrics.histogram_buckets") {
		t.Errorf("Validate: %v", err)
	}
}

func TestTargetInfo(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntrinsicDimensions = IntrinsicDimensions{Service: true}
	cfg.EnableTargetInfo = true
	cfg.TargetInfoExcludedDimensions = []string{"secret"}
	p, reg, _ := setup(t, cfg)
	push(t, p,
		spantest.Span{Service: "api", Resource: map[string]any{"service.namespace": "shop", "service.instance.id": "i-1", "k8s.pod.name": "p", "secret": "s", "job": "clash"}, ID: 1},
		spantest.Span{Service: "lonely", ID: 2}, // job only, no other attribute: no target_info
	)
	got := collect(t, reg)
	diff(t, only(got, "traces_target_info"), map[string]float64{
		`traces_target_info{__job="clash",instance="i-1",job="shop/api",k8s_pod_name="p"}`: 1,
	})
	diff(t, only(got, "traces_spanmetrics_calls_total"), map[string]float64{
		`traces_spanmetrics_calls_total{instance="i-1",job="shop/api",service="api"}`: 1,
		`traces_spanmetrics_calls_total{job="lonely",service="lonely"}`:               1,
	})
}

// BenchmarkSpanMetrics is Parse and the span-metrics processor over a
// realistic batch (internal/spangen): spans/s on one core, allocs/span.
func BenchmarkSpanMetrics(b *testing.B) {
	data := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 100, SpansPerTrace: 10}))
	cfg := DefaultConfig()
	cfg.Dimensions = []string{"http.route", "http.response.status_code"}
	reg := registry.New(registry.DefaultConfig(), "t", nil)
	p := New(cfg, reg, "t", nil)
	var batch spanview.Batch
	_ = batch.Parse(data)
	p.PushSpans(&batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := batch.Parse(data); err != nil {
			b.Fatal(err)
		}
		p.PushSpans(&batch)
	}
	spans := float64(b.N * len(batch.Spans))
	b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
}

// TestOverflow: past max_active_series, new label sets go to the overflow
// series of each metric, and nothing is lost from the totals.
func TestOverflow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntrinsicDimensions = IntrinsicDimensions{SpanName: true}
	cfg.HistogramBuckets = []float64{1}
	p, reg, _ := setup(t, cfg)
	// Each span name costs 1 (calls) + 4 (latency: 2 buckets, sum, count) +
	// 1 (size) = 6 series; a limit of 12 admits two names. (The limit is
	// per series: with 13, op2's calls series would still fit.)
	reg.SetMaxActiveSeries(12)
	var spans []spantest.Span
	for i := 0; i < 5; i++ {
		spans = append(spans, spantest.Span{Service: "a", ID: uint64(i + 1), Name: fmt.Sprint("op", i)})
	}
	push(t, p, spans...)
	got := collect(t, reg)
	diff(t, only(got, "traces_spanmetrics_calls_total"), map[string]float64{
		`traces_spanmetrics_calls_total{span_name="op0"}`:        1,
		`traces_spanmetrics_calls_total{span_name="op1"}`:        1,
		`traces_spanmetrics_calls_total{metric_overflow="true"}`: 3,
	})
	if got[`traces_spanmetrics_latency_count{metric_overflow="true"}`] != 3 {
		t.Errorf("latency overflow count %v", got[`traces_spanmetrics_latency_count{metric_overflow="true"}`])
	}
}

// TestOverflowMemoryFlat pushes spans with ten times the limit's label sets
// through Parse and the processor: the registry stays at the limit and the
// heap does not grow with the refused label sets.
func TestOverflowMemoryFlat(t *testing.T) {
	cfg := DefaultConfig()
	p, reg, _ := setup(t, cfg)
	const limit = 19 * 100 // 100 label sets of calls + latency (17) + size
	reg.SetMaxActiveSeries(limit)
	batches := make([][]byte, 100)
	for i := range batches {
		spans := make([]spantest.Span, 100)
		for j := range spans {
			spans[j] = spantest.Span{Service: "api", ID: uint64(j + 1), Name: fmt.Sprintf("GET /items/%d-%d", i, j), Duration: time.Millisecond}
		}
		batches[i] = spantest.Marshal(spans...)
	}
	var b spanview.Batch
	pushAll := func(from, to int) {
		for _, data := range batches[from:to] {
			if err := b.Parse(data); err != nil {
				t.Fatal(err)
			}
			p.PushSpans(&b)
		}
	}
	pushAll(0, 10) // 1000 label sets: the first 100 fill the limit
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pushAll(10, 100) // 9000 more, all refused
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 256<<10 {
		t.Errorf("heap grew by %d bytes while 9000 new label sets were refused", grow)
	}
	if n := reg.ActiveSeries(); n != limit+19 {
		t.Errorf("active series %d, want %d (the limit and one overflow series per metric)", n, limit+19)
	}
	if v := collect(t, reg)[`traces_spanmetrics_calls_total{metric_overflow="true"}`]; v != 9900 {
		t.Errorf("overflow calls %v, want 9900", v)
	}
}

// TestConfigYAML decodes a Tempo span_metrics block strictly.
func TestConfigYAML(t *testing.T) {
	const doc = `
histogram_buckets: [0.1, 1]
intrinsic_dimensions: {service: true, span_name: false, status_message: true}
dimensions: [http.method]
dimension_mappings:
  - name: svc_route
    source_labels: [service.name, http.route]
    join: "/"
enable_target_info: true
span_multiplier_key: sampling.ratio
target_info_excluded_dimensions: [host.arch]
enable_instance_label: false
filter_policies:
  - include:
      match_type: strict
      attributes:
        - {key: kind, value: SPAN_KIND_SERVER}
        - {key: span.http.status_code, value: 200}
    exclude:
      match_type: regex
      attributes:
        - {key: name, value: "health.*"}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.IntrinsicDimensions.StatusMessage || cfg.IntrinsicDimensions.SpanName || !cfg.IntrinsicDimensions.SpanKind ||
		cfg.DimensionMappings[0].Join != "/" || cfg.EnableInstanceLabel || cfg.FilterPolicies[0].Include.Attributes[1].Value != 200 {
		t.Errorf("decoded %+v", cfg)
	}
}
