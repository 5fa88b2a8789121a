package generator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/procstat"
	"github.com/weftdb/weft/internal/promtest"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/generator/remotewrite"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
)

// memLimits gives every tenant the same overrides.
type memLimits struct{ l overrides.Limits }

func (m *memLimits) For(string) *overrides.Limits { return &m.l }

// BenchmarkActiveSeriesMemory measures the memory of the metrics-generator
// holding 100,000 active series (as weft_metrics_generator_registry_active_series
// counts them: a span-metrics label set is 19 series, calls, 17 for the
// latency histogram's buckets, +Inf, _sum and _count, and size). The real
// sink (Generator) runs span metrics and service graphs for one tenant with
// the default settings, and remote-writes to a real Prometheus. Spans of 10
// services × 527 span names (SERVER, OK, 5 attributes each) are pushed four
// times over, with a collection after each round, then the process's memory
// is read after two GCs (the second empties the sync.Pools): heap in use,
// VmRSS and VmHWM (the peak) of this test process, and their growth over
// the same process before the generator was built. Run it once: go test -run XXX -bench BenchmarkActiveSeriesMemory
// -benchtime 1x ./sinks/generator/
func BenchmarkActiveSeriesMemory(b *testing.B) {
	const (
		target   = 100_000
		services = 10
		perSet   = 19 // series of one span-metrics label set
		batch    = 500
		rounds   = 4
		tenant   = "mem"
	)
	sets := (target + perSet - 1) / perSet
	var payloads [][]byte
	now := time.Now()
	for lo := 0; lo < sets; lo += batch {
		var spans []spantest.Span
		for i := lo; i < min(lo+batch, sets); i++ {
			spans = append(spans, spantest.Span{
				Service: "svc-" + strconv.Itoa(i%services), Trace: uint64(i + 1), ID: uint64(i + 1),
				Name: "GET /api/v1/op-" + strconv.Itoa(i/services), Kind: ptrace.SpanKindServer, Status: ptrace.StatusCodeOk,
				Start: now.Add(-50 * time.Millisecond), Duration: 20 * time.Millisecond,
				Attrs: map[string]any{"http.request.method": "GET", "http.route": "/api/v1/op", "http.response.status_code": 200, "url.path": "/api/v1/op", "app.attr": "value"},
			})
		}
		payloads = append(payloads, spantest.Marshal(spans...))
	}
	prom := promtest.Start(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var active int
	var heapMB, rssMB, peakMB, rssGrowthMB, baseRSSMB float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseHeap, baseRSS := ms.HeapInuse, procstat.Bytes(procstat.Self, procstat.RSS)

		cfg := DefaultConfig()
		cfg.Registry.CollectionInterval = time.Hour // collections are run below, after each round
		cfg.Registry.ExternalLabels = map[string]string{"bench_iteration": strconv.Itoa(i)}
		cfg.Storage.Path = b.TempDir()
		cfg.Storage.RemoteWrite = []remotewrite.Endpoint{{URL: prom.WriteURL(), RemoteTimeout: 10 * time.Second}}
		lim := &memLimits{overrides.DefaultLimits()}
		lim.l.MetricsGenerator.Processors = []string{overrides.ProcessorSpanMetrics, overrides.ProcessorServiceGraphs}
		g := New(pipelines.Settings{Logger: logger, Metrics: prometheus.NewRegistry()}, cfg, lim)
		if err := g.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for range rounds {
			for _, p := range payloads {
				msg := message.NewMessage("", p)
				msg.Metadata.Set(pipelines.MetaTenant, tenant)
				if err := g.Consume(msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := g.collectOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
		g.mu.Lock()
		active = g.tenants[tenant].reg.ActiveSeries()
		g.mu.Unlock()
		if active < target {
			b.Fatalf("%d active series, want at least %d", active, target)
		}
		// Every series reached Prometheus (the remote write is part of the cost).
		q := fmt.Sprintf(`count({__name__=~"traces_.+", bench_iteration="%d"})`, i)
		for {
			got, err := prom.Query(ctx, q)
			if err == nil && len(got) == 1 && got[0].Value >= target {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("%s: %v, %v; want at least %d", q, got, err, target)
			}
			time.Sleep(200 * time.Millisecond)
		}
		runtime.GC()
		runtime.GC() // a second one empties the sync.Pools (the queue's encode buffers)
		runtime.ReadMemStats(&ms)
		rss, peak := procstat.Bytes(procstat.Self, procstat.RSS), procstat.Bytes(procstat.Self, procstat.PeakRSS)
		const mb = 1 << 20
		heapMB = float64(int64(ms.HeapInuse)-int64(baseHeap)) / mb
		rssMB, peakMB, baseRSSMB = float64(rss)/mb, float64(peak)/mb, float64(baseRSS)/mb
		rssGrowthMB = float64(rss-baseRSS) / mb
		if err := g.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ReportMetric(float64(active), "active-series")
	b.ReportMetric(heapMB, "heap-inuse-MiB")
	b.ReportMetric(rssGrowthMB, "RSS-growth-MiB")
	b.ReportMetric(rssMB, "RSS-MiB")
	b.ReportMetric(peakMB, "peak-RSS-MiB")
	b.ReportMetric(baseRSSMB, "RSS-before-MiB")
}
