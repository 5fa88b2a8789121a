package servicegraphs

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/promtest"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanmetrics"
	"github.com/weftdb/weft/sinks/generator/spanview"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
)

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

func only(m map[string]float64, prefixes ...string) map[string]float64 {
	o := map[string]float64{}
	for k, v := range m {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				o[k] = v
			}
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
		if gok != wok || math.Abs(g-w) > 1e-9 {
			t.Errorf("%s: got %v (present %v), want %v (present %v)", k, g, gok, w, wok)
		}
	}
}

type fixture struct {
	p     *Processor
	reg   *registry.Registry
	prom  *prometheus.Registry
	clock atomic.Int64
}

func setup(t *testing.T, cfg Config) *fixture {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := &fixture{prom: prometheus.NewRegistry()}
	f.clock.Store(spantest.Base.UnixNano())
	f.reg = registry.New(registry.DefaultConfig(), "t", f.prom)
	f.p = New(cfg, f.reg, "t", f.prom)
	f.p.mu.Lock()
	f.p.now = func() time.Time { return time.Unix(0, f.clock.Load()) }
	f.p.mu.Unlock()
	t.Cleanup(f.p.Shutdown)
	return f
}

func (f *fixture) push(t *testing.T, spans ...spantest.Span) {
	t.Helper()
	var b spanview.Batch
	if err := b.Parse(spantest.Marshal(spans...)); err != nil {
		t.Fatal(err)
	}
	f.p.PushSpans(&b)
}

// advance moves the fake clock and runs expiry as a push does.
func (f *fixture) advance(d time.Duration) {
	f.clock.Add(int64(d))
	f.p.PushSpans(&spanview.Batch{})
}

const ms = time.Millisecond

// topology is one trace of three instrumented services, a queue, a
// database and two uninstrumented peers:
//
//	(user) -> frontend -> checkout -> payment (error on the server side)
//	                       checkout => worker (producer/consumer)
//	                       checkout -> database (db.system, server.address)
//	          frontend -> stripe (peer.service, no server span)
//	                       checkout -> ? (no server span, no peer attribute)
//
// Halves arrive in two batches, some server halves before their client.
func topology(trace uint64) (first, second []spantest.Span) {
	s := func(svc string, id, parent uint64, name string, kind ptrace.SpanKind, d time.Duration) spantest.Span {
		return spantest.Span{Service: svc, Trace: trace, ID: id, Parent: parent, Name: name, Kind: kind, Duration: d}
	}
	root := s("frontend", 1, 0, "GET /checkout", ptrace.SpanKindServer, 900*ms)
	feClient := s("frontend", 2, 1, "POST /pay", ptrace.SpanKindClient, 700*ms)
	coServer := s("checkout", 3, 2, "POST /pay", ptrace.SpanKindServer, 650*ms)
	coClient := s("checkout", 4, 3, "charge", ptrace.SpanKindClient, 300*ms)
	coClient.Status = ptrace.StatusCodeOk // the failure is on the server side only, which comes first
	payServer := s("payment", 5, 4, "charge", ptrace.SpanKindServer, 250*ms)
	payServer.Status = ptrace.StatusCodeError
	producer := s("checkout", 6, 3, "publish", ptrace.SpanKindProducer, 5*ms)
	consumer := s("worker", 7, 6, "consume", ptrace.SpanKindConsumer, 40*ms)
	consumer.Start = spantest.Base.Add(50 * ms)
	dbClient := s("checkout", 8, 3, "SELECT", ptrace.SpanKindClient, 30*ms)
	dbClient.Attrs = map[string]any{"db.system": "postgresql", "db.name": "orders", "server.address": "pg.local"}
	stripe := s("frontend", 9, 1, "POST stripe", ptrace.SpanKindClient, 120*ms)
	stripe.Attrs = map[string]any{"peer.service": "stripe"}
	lost := s("checkout", 10, 3, "GET lost", ptrace.SpanKindClient, 10*ms)
	internal := s("checkout", 11, 3, "compute", ptrace.SpanKindInternal, ms)
	return []spantest.Span{root, feClient, payServer, producer, dbClient, stripe, internal},
		[]spantest.Span{coServer, coClient, consumer, lost}
}

func TestTopology(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EnableMessagingSystemLatencyHistogram = true
	f := setup(t, cfg)
	const traces = 3
	for tr := uint64(1); tr <= traces; tr++ {
		a, b := topology(tr)
		f.push(t, a...)
		f.push(t, b...)
	}
	// Before the wait ends: paired and database edges only.
	if n := f.p.Pending(); n != traces*3 {
		t.Errorf("%d halves waiting, want %d (root server, stripe client, lost client per trace)", n, traces*3)
	}
	f.advance(cfg.Wait + time.Second)
	if n := f.p.Pending(); n != 0 {
		t.Errorf("%d halves still waiting after the wait", n)
	}
	got := collect(t, f.reg)
	edge := func(c, s, conn string) string {
		return fmt.Sprintf(`{client=%q,connection_type=%q,server=%q}`, c, conn, s)
	}
	edge0 := func(c, s string) string { // connection_type "" is no label
		return fmt.Sprintf(`{client=%q,server=%q}`, c, s)
	}
	diff(t, only(got, MetricRequestTotal, MetricRequestFailedTotal, MetricUnpairedSpansTotal, MetricDroppedSpansTotal), map[string]float64{
		MetricRequestTotal + edge0("frontend", "checkout"):                  traces,
		MetricRequestTotal + edge0("checkout", "payment"):                   traces,
		MetricRequestFailedTotal + edge0("checkout", "payment"):             traces,
		MetricRequestTotal + edge("checkout", "worker", "messaging_system"): traces,
		MetricRequestTotal + edge("checkout", "pg.local", "database"):       traces,
		MetricRequestTotal + edge("frontend", "stripe", "virtual_node"):     traces,
		MetricRequestTotal + edge("user", "frontend", "virtual_node"):       traces,
		MetricUnpairedSpansTotal + `{client="checkout"}`:                    traces,
	})
	// Histograms: exact bucket counts of the checkout -> payment edge.
	for le, want := range map[string]float64{"0.1": 0, "0.2": 0, "0.4": traces, "12.8": traces, "+Inf": traces} {
		k := fmt.Sprintf(`%s_bucket{client="checkout",le=%q,server="payment"}`, MetricRequestServerSeconds, le)
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	for le, want := range map[string]float64{"0.2": 0, "0.4": traces} {
		k := fmt.Sprintf(`%s_bucket{client="checkout",le=%q,server="payment"}`, MetricRequestClientSeconds, le)
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if s := got[MetricRequestServerSeconds+`_sum{client="checkout",server="payment"}`]; math.Abs(s-traces*0.25) > 1e-9 {
		t.Errorf("server seconds sum %v", s)
	}
	// Messaging latency: producer ends at 5 ms, consumer starts at 50 ms.
	if s := got[MetricRequestMessagingSystemSeconds+`_sum`+edge("checkout", "worker", "messaging_system")]; math.Abs(s-traces*0.045) > 1e-9 {
		t.Errorf("messaging seconds sum %v, want %v", s, traces*0.045)
	}
	// The database edge's server latency is the client span's.
	if c := got[MetricRequestServerSeconds+`_bucket{client="checkout",connection_type="database",le="0.1",server="pg.local"}`]; c != traces {
		t.Errorf("database edge server latency bucket %v", c)
	}
	if v := testutil.ToFloat64(f.p.expired); v != traces*3 {
		t.Errorf("expired edges %v, want %d", v, traces*3)
	}
}

func TestMaxItemsAndDimensions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxItems = 2
	cfg.Dimensions = []string{"deployment.env"}
	cfg.EnableClientServerPrefix = true
	cfg.EnableVirtualNodeLabel = true
	f := setup(t, cfg)
	env := func(v string) map[string]any { return map[string]any{"deployment.env": v} }
	f.push(t,
		spantest.Span{Service: "a", Resource: env("prod"), Trace: 1, ID: 1, Parent: 9, Kind: ptrace.SpanKindClient},
		spantest.Span{Service: "a", Trace: 1, ID: 2, Parent: 9, Kind: ptrace.SpanKindClient, Attrs: map[string]any{"peer.service": "ext"}},
		spantest.Span{Service: "a", Trace: 1, ID: 3, Parent: 9, Kind: ptrace.SpanKindClient}, // third: dropped
		spantest.Span{Service: "b", Resource: env("staging"), Trace: 1, ID: 4, Parent: 1, Kind: ptrace.SpanKindServer},
	)
	f.push(t, spantest.Span{Service: "b", Trace: 1, ID: 5, Parent: 3, Kind: ptrace.SpanKindServer}) // its client was dropped
	f.advance(cfg.Wait)
	got := only(collect(t, f.reg), MetricRequestTotal, MetricDroppedSpansTotal, MetricUnpairedSpansTotal)
	diff(t, got, map[string]float64{
		MetricRequestTotal + `{client="a",client_deployment_env="prod",server="b",server_deployment_env="staging"}`: 1,
		MetricRequestTotal + `{client="a",connection_type="virtual_node",server="ext",virtual_node="server"}`:       1,
		MetricDroppedSpansTotal + `{client="a"}`:  1,
		MetricUnpairedSpansTotal + `{server="b"}`: 1,
	})
	if v := testutil.ToFloat64(f.p.droppedW); v != 1 {
		t.Errorf("weft dropped spans %v", v)
	}
	bad := DefaultConfig()
	bad.MaxItems = 0
	bad.Dimensions = []string{"client"}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "service_graphs.max_items") || !strings.Contains(err.Error(), "service_graphs.dimensions[0]") {
		t.Errorf("Validate: %v", err)
	}
}

// TestShutdownFlushes checks that Shutdown treats waiting halves as expired.
func TestShutdownFlushes(t *testing.T) {
	f := setup(t, DefaultConfig())
	f.push(t, spantest.Span{Service: "web", Trace: 1, ID: 1, Kind: ptrace.SpanKindServer})
	f.p.Shutdown()
	diff(t, only(collect(t, f.reg), MetricRequestTotal), map[string]float64{
		MetricRequestTotal + `{client="user",connection_type="virtual_node",server="web"}`: 1,
	})
}

// TestExpiryTimer checks that waiting halves expire without pushes.
func TestExpiryTimer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Wait = 50 * ms
	f := setup(t, cfg)
	f.p.mu.Lock()
	f.p.now = time.Now
	f.p.mu.Unlock()
	var b spanview.Batch
	_ = b.Parse(spantest.Marshal(spantest.Span{Service: "web", Trace: 1, ID: 1, Kind: ptrace.SpanKindServer}))
	f.p.PushSpans(&b)
	deadline := time.Now().Add(5 * time.Second)
	for f.p.Pending() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * ms)
	}
	if f.p.Pending() != 0 {
		t.Fatal("the half did not expire within 5 s of a 50 ms wait")
	}
}

// TestConcurrentPushAndCollect pushes topologies on several goroutines into
// both processors while Collect runs, then checks the exact totals.
func TestConcurrentPushAndCollect(t *testing.T) {
	f := setup(t, DefaultConfig())
	sm := spanmetrics.New(spanmetrics.DefaultConfig(), f.reg, "t", f.prom)
	const workers, per = 4, 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			f.reg.Collect(time.Now(), registry.CollectOptions{Exemplars: true})
			time.Sleep(time.Millisecond)
		}
	}()
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var b spanview.Batch
			for i := 0; i < per; i++ {
				a, c := topology(uint64(1000*w + i + 1))
				for _, part := range [][]spantest.Span{a, c} {
					if err := b.Parse(spantest.Marshal(part...)); err != nil {
						errs <- err
						return
					}
					sm.PushSpans(&b)
					f.p.PushSpans(&b)
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
	f.advance(time.Hour)
	got := collect(t, f.reg)
	const n = workers * per
	if v := got[MetricRequestTotal+`{client="checkout",server="payment"}`]; v != n {
		t.Errorf("checkout -> payment %v, want %d", v, n)
	}
	if v := got[MetricRequestTotal+`{client="user",connection_type="virtual_node",server="frontend"}`]; v != n {
		t.Errorf("user -> frontend %v, want %d", v, n)
	}
	if v := got[`traces_spanmetrics_calls_total{service="checkout",span_kind="SPAN_KIND_CLIENT",span_name="charge",status_code="STATUS_CODE_OK"}`]; v != n {
		t.Errorf("checkout charge calls %v, want %d", v, n)
	}
}

// BenchmarkProcessors is Parse, span metrics and service graphs over a
// realistic batch (internal/spangen, 1000 spans of 5 services): spans/s on
// one core and allocations per span.
func BenchmarkProcessors(b *testing.B) {
	data := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 100, SpansPerTrace: 10}))
	reg := registry.New(registry.DefaultConfig(), "t", nil)
	smCfg := spanmetrics.DefaultConfig()
	smCfg.Dimensions = []string{"http.route"}
	sm := spanmetrics.New(smCfg, reg, "t", nil)
	sg := New(DefaultConfig(), reg, "t", nil)
	defer sg.Shutdown()
	var batch spanview.Batch
	_ = batch.Parse(data)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := batch.Parse(data); err != nil {
			b.Fatal(err)
		}
		sm.PushSpans(&batch)
		sg.PushSpans(&batch)
	}
	spans := float64(b.N * len(batch.Spans))
	b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
}

// TestConfigYAML decodes a Tempo service_graphs block strictly.
func TestConfigYAML(t *testing.T) {
	const doc = `
wait: 5s
max_items: 500
workers: 4
histogram_buckets: [0.5, 1]
dimensions: [env]
enable_client_server_prefix: true
enable_messaging_system_latency_histogram: true
peer_attributes: [peer.service, host.name]
span_multiplier_key: ratio
enable_virtual_node_label: true
database_name_attributes: [db.name]
filter_policies:
  - exclude: {match_type: strict, attributes: [{key: resource.service.name, value: noisy}]}
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
	if cfg.Wait != 5*time.Second || cfg.MaxItems != 500 || !cfg.EnableVirtualNodeLabel || cfg.DatabaseNameAttributes[0] != "db.name" || cfg.FilterPolicies[0].Exclude == nil {
		t.Errorf("decoded %+v", cfg)
	}
}

// BenchmarkServiceGraphsPairs is Parse and the service-graph processor over
// batches where every client span meets its server span (500 pairs among
// five services per batch): spans/s on one core.
func BenchmarkServiceGraphsPairs(b *testing.B) {
	var spans []spantest.Span
	for i := uint64(1); i <= 500; i++ {
		c, s := fmt.Sprint("svc-", i%5), fmt.Sprint("svc-", (i+1)%5)
		spans = append(spans,
			spantest.Span{Service: c, Trace: i, ID: 2 * i, Parent: 1, Name: "call", Kind: ptrace.SpanKindClient, Duration: 30 * ms},
			spantest.Span{Service: s, Trace: i, ID: 2*i + 1, Parent: 2 * i, Name: "handle", Kind: ptrace.SpanKindServer, Duration: 20 * ms})
	}
	data := spantest.Marshal(spans...)
	reg := registry.New(registry.DefaultConfig(), "t", nil)
	sg := New(DefaultConfig(), reg, "t", nil)
	defer sg.Shutdown()
	var batch spanview.Batch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := batch.Parse(data); err != nil {
			b.Fatal(err)
		}
		sg.PushSpans(&batch)
	}
	b.ReportMetric(float64(b.N*len(batch.Spans))/b.Elapsed().Seconds(), "spans/s")
	if sg.Pending() != 0 {
		b.Fatalf("%d halves left waiting", sg.Pending())
	}
}

// TestTopologyInPrometheus pushes the topology through Parse, span metrics
// and service graphs, remote-writes one collection to a real Prometheus and
// reads the counts back with PromQL, comparing them with counts computed
// from the pushed spans.
func TestTopologyInPrometheus(t *testing.T) {
	prom := promtest.Start(t)
	f := setup(t, DefaultConfig())
	sm := spanmetrics.New(spanmetrics.DefaultConfig(), f.reg, "t", f.prom)
	const traces = 3
	spans, size := 0, 0
	for tr := uint64(1); tr <= traces; tr++ {
		a, b := topology(tr)
		for _, part := range [][]spantest.Span{a, b} {
			var batch spanview.Batch
			if err := batch.Parse(spantest.Marshal(part...)); err != nil {
				t.Fatal(err)
			}
			for _, s := range batch.Spans {
				spans++
				size += s.Size
			}
			sm.PushSpans(&batch)
			f.p.PushSpans(&batch)
		}
	}
	f.advance(time.Minute)
	now := time.Now()
	prom.Write(t, f.reg.Collect(now, registry.CollectOptions{Exemplars: true}))

	one := func(q string) float64 {
		t.Helper()
		got := prom.QueryMap(t, q, now)
		if len(got) != 1 {
			t.Fatalf("%s: %v, want one series", q, got)
		}
		for _, v := range got {
			return v
		}
		return 0
	}
	if v := one(`sum(traces_spanmetrics_calls_total)`); v != float64(spans) {
		t.Errorf("calls %v, want %d spans", v, spans)
	}
	if v := one(`sum(traces_spanmetrics_size_total)`); v != float64(size) {
		t.Errorf("size %v, want %d bytes", v, size)
	}
	if v := one(`sum(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"})`); v != traces {
		t.Errorf("errors %v, want %d", v, traces)
	}
	if v := one(`traces_spanmetrics_latency_bucket{service="payment",le="0.256"}`); v != traces {
		t.Errorf("payment latency <= 0.256 s: %v, want %d", v, traces)
	}
	if v := one(`traces_spanmetrics_latency_bucket{service="payment",le="0.128"}`); v != 0 {
		t.Errorf("payment latency <= 0.128 s: %v, want 0", v)
	}
	for _, e := range []struct{ q string }{
		{`traces_service_graph_request_total{client="frontend",server="checkout",connection_type=""}`},
		{`traces_service_graph_request_failed_total{client="checkout",server="payment"}`},
		{`traces_service_graph_request_total{client="checkout",server="worker",connection_type="messaging_system"}`},
		{`traces_service_graph_request_total{client="checkout",server="pg.local",connection_type="database"}`},
		{`traces_service_graph_request_total{client="user",server="frontend",connection_type="virtual_node"}`},
		{`traces_service_graph_request_total{client="frontend",server="stripe",connection_type="virtual_node"}`},
		{`traces_service_graph_unpaired_spans_total{client="checkout"}`},
		{`traces_service_graph_request_server_seconds_count{client="checkout",server="payment"}`},
	} {
		if v := one(e.q); v != traces {
			t.Errorf("%s = %v, want %d", e.q, v, traces)
		}
	}
	if v := one(`count(traces_service_graph_request_total)`); v != 6 {
		t.Errorf("%v edges, want 6", v)
	}
}
