package generator

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
)

// staticLimits gives every tenant the limits of its map entry, or the
// defaults.
type staticLimits map[string]*overrides.Limits

func (s staticLimits) For(tenant string) *overrides.Limits {
	if l, ok := s[tenant]; ok {
		return l
	}
	d := overrides.DefaultLimits()
	return &d
}

func withProcessors(ps ...string) *overrides.Limits {
	l := overrides.DefaultLimits()
	l.MetricsGenerator.Processors = ps
	return &l
}

func newGenerator(t *testing.T, limits Limits) (*Generator, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Storage.Path = t.TempDir()
	reg := prometheus.NewRegistry()
	g := New(pipelines.Settings{Name: "metrics-generator", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg}, cfg, limits)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	return g, reg
}

func msg(tenant string, spans ...spantest.Span) *message.Message {
	m := message.NewMessage("1", spantest.Marshal(spans...))
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	return m
}

// calls sums traces_spanmetrics_calls_total of tenant's registry.
func calls(g *Generator, tenant string) float64 {
	g.mu.Lock()
	t := g.tenants[tenant]
	g.mu.Unlock()
	if t == nil {
		return 0
	}
	var n float64
	for _, ts := range t.collect(time.Now(), registry.CollectOptions{}) {
		if name(ts) == "traces_spanmetrics_calls_total" && len(ts.Samples) > 0 {
			n += ts.Samples[len(ts.Samples)-1].Value
		}
	}
	return n
}

func name(ts prompb.TimeSeries) string {
	for _, l := range ts.Labels {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}

// Spans that ended outside metrics_ingestion_time_range_slack are not
// counted, and are counted as discarded; the others are; a tenant without
// processors gets no series.
func TestConsumeSlackAndTenants(t *testing.T) {
	g, reg := newGenerator(t, staticLimits{"a": withProcessors(overrides.ProcessorSpanMetrics)})
	now := time.Now()
	span := func(id uint64, end time.Time) spantest.Span {
		return spantest.Span{Service: "svc", Trace: id, ID: id, Name: "op", Kind: ptrace.SpanKindServer, Start: end.Add(-time.Millisecond), Duration: time.Millisecond}
	}
	if err := g.Consume(msg("a", span(1, now), span(2, now.Add(-time.Minute)), span(3, now.Add(time.Minute)), span(4, now.Add(-10*time.Second)))); err != nil {
		t.Fatal(err)
	}
	if err := g.Consume(msg("b", span(5, now))); err != nil {
		t.Fatal(err)
	}
	if got := calls(g, "a"); got != 2 {
		t.Errorf("tenant a: %g calls counted, want 2 (the two spans within 30s of now)", got)
	}
	if got := testutil.ToFloat64(g.m.spansDiscarded.WithLabelValues("a", reasonSlack)); got != 2 {
		t.Errorf("discarded outside the slack: %g, want 2", got)
	}
	if n := testutil.ToFloat64(g.m.tenants); n != 1 {
		t.Errorf("active tenants %g, want 1 (b has no processors)", n)
	}
	// A message that is not OTLP is dropped and counted, never an error.
	bad := message.NewMessage("2", []byte{0xff, 0xff, 0xff})
	bad.Metadata.Set(pipelines.MetaTenant, "a")
	if err := g.Consume(bad); err != nil {
		t.Fatalf("a bad message failed Consume: %v", err)
	}
	if got := testutil.ToFloat64(g.m.discarded.WithLabelValues("a", reasonInvalid)); got != 1 {
		t.Errorf("invalid messages counted %g, want 1", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// A tenant's processors follow its overrides: turned off, the tenant's
// series go; a change of settings builds them again.
func TestTenantFollowsOverrides(t *testing.T) {
	limits := staticLimits{"a": withProcessors(overrides.ProcessorSpanMetrics)}
	g, _ := newGenerator(t, limits)
	span := spantest.Span{Service: "svc", Trace: 1, ID: 1, Name: "op", Kind: ptrace.SpanKindServer, Start: time.Now().Add(-time.Millisecond), Duration: time.Millisecond}
	if err := g.Consume(msg("a", span)); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	first := g.tenants["a"]
	g.mu.Unlock()
	// Same settings: the same processors.
	if err := g.Consume(msg("a", span)); err != nil {
		t.Fatal(err)
	}
	if calls(g, "a") != 2 {
		t.Fatalf("calls %g, want 2", calls(g, "a"))
	}
	// New dimensions: new processors and series.
	l := withProcessors(overrides.ProcessorSpanMetrics)
	l.MetricsGenerator.Processor.SpanMetrics.Dimensions = []string{"http.method"}
	limits["a"] = l
	if err := g.Consume(msg("a", span)); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	second, retired := g.tenants["a"], len(g.retired)
	g.mu.Unlock()
	if second == first || retired != 1 || !strings.Contains(second.key, "http.method") {
		t.Fatalf("after a change of dimensions: same tenant %v, %d retired, key %s", second == first, retired, second.key)
	}
	if calls(g, "a") != 1 {
		t.Fatalf("calls after the rebuild %g, want 1 (a new registry)", calls(g, "a"))
	}
	// Processors turned off: the tenant goes.
	limits["a"] = withProcessors()
	if err := g.Consume(msg("a", span)); err != nil {
		t.Fatal(err)
	}
	if calls(g, "a") != 0 || testutil.ToFloat64(g.m.tenants) != 0 {
		t.Fatalf("tenant still has series after its processors were turned off")
	}
	if err := g.collectOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.retired) != 0 {
		t.Fatalf("%d retired tenants left after a collection", len(g.retired))
	}
}
