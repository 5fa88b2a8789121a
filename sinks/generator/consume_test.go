package generator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// BenchmarkConsume is the whole sink on the ingest path, as the
// distributor's messages reach it in monolithic mode: the tenant's
// processors looked up from its overrides, Parse, the time-range slack
// filter, span metrics and service graphs (default settings), over
// realistic batches (internal/spangen, traces of 10 spans over 5 services,
// ending now) of 1000 spans, and of 20 spans as the distributor's
// per-partition messages often are: spans/s on one core.
func BenchmarkConsume(b *testing.B) {
	for _, traces := range []int{100, 2} {
		spansPerBatch := traces * 10
		b.Run(fmt.Sprintf("spans=%d", spansPerBatch), func(b *testing.B) {
			data := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: traces, SpansPerTrace: 10, Start: time.Now().Add(-5 * time.Second)}))
			cfg := DefaultConfig()
			cfg.Registry.CollectionInterval = time.Hour
			cfg.Storage.Path = b.TempDir()
			lim := &memLimits{overrides.DefaultLimits()}
			lim.l.MetricsGenerator.Processors = []string{overrides.ProcessorSpanMetrics, overrides.ProcessorServiceGraphs}
			g := New(pipelines.Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}, cfg, lim)
			if err := g.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer g.Shutdown(context.Background())
			msg := message.NewMessage("", data)
			msg.Metadata.Set(pipelines.MetaTenant, "t")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := g.Consume(msg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got, want := testutil.ToFloat64(g.m.spans.WithLabelValues("t")), float64(b.N*spansPerBatch); got != want {
				b.Fatalf("%.0f spans counted, want %.0f", got, want)
			}
			b.ReportMetric(float64(b.N*spansPerBatch)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

// A tenant's settings follow its overrides: new limits (another pointer,
// as a reload of the runtime overrides gives) apply to the next message,
// whether they keep the processors (disable_collection) or change them.
func TestTenantFollowsNewLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Registry.CollectionInterval = time.Hour
	cfg.Storage.Path = t.TempDir()
	lim := &memLimits{overrides.DefaultLimits()}
	lim.l.MetricsGenerator.Processors = []string{overrides.ProcessorSpanMetrics, overrides.ProcessorServiceGraphs}
	g := New(pipelines.Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}, cfg, lim)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	msg := message.NewMessage("", spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 2, SpansPerTrace: 10, Start: time.Now().Add(-time.Second)})))
	msg.Metadata.Set(pipelines.MetaTenant, "t")
	consume := func() *tenant {
		t.Helper()
		if err := g.Consume(msg); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.tenants["t"]
	}
	first := consume()
	if first == nil || first.disabled || len(first.procs) != 2 {
		t.Fatalf("tenant %+v, want two processors, collecting", first)
	}
	if again := consume(); again != first {
		t.Fatal("the same limits rebuilt the tenant")
	}

	next := &memLimits{lim.l}
	next.l.MetricsGenerator.DisableCollection = true
	*lim = memLimits{} // what the generator must no longer read
	g.limits = next
	if got := consume(); got != first || !got.disabled {
		t.Errorf("after new limits with disable_collection: tenant %p (was %p), disabled %v; want the same tenant, disabled", got, first, got.disabled)
	}

	last := &memLimits{next.l}
	last.l.MetricsGenerator.Processors = []string{overrides.ProcessorSpanMetrics}
	last.l.MetricsGenerator.DisableCollection = false
	g.limits = last
	if got := consume(); got == first || len(got.procs) != 1 || got.disabled {
		t.Errorf("after new limits with span-metrics only: tenant %+v; want a new tenant with one processor, collecting", got)
	}
}
