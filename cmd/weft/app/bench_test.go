package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/stages/distributor"
)

// benchSpans is the size of one benchmark push: 200 traces of 10 spans over
// 5 services, about 2,000 spans of ~300 bytes.
const benchTraces, benchSpansPerTrace = 200, 10

// requests pre-generates distinct pushes, so the live-store inserts instead
// of deduplicating.
func requests(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = spangen.Marshal(spangen.Generate(spangen.Options{
			Seed: uint64(i + 1), Traces: benchTraces, SpansPerTrace: benchSpansPerTrace, Services: 5,
			Start: time.Now().Add(-time.Minute),
		}))
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds spans/s, CPU nanoseconds per span (all cores of the process
// together) and allocated bytes per span.
func report(b *testing.B, spans int, cpu0 time.Duration, ms0 *runtime.MemStats) {
	b.Helper()
	cpu := cpuTime() - cpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	total := float64(b.N * spans)
	b.ReportMetric(total/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/span")
	b.ReportMetric(float64(ms.TotalAlloc-ms0.TotalAlloc)/total, "B/span")
}

// benchSource hands its pipeline Output to the benchmark.
type benchSource struct{ out pipelines.Output }

func (*benchSource) Start(context.Context) error    { return nil }
func (*benchSource) Shutdown(context.Context) error { return nil }

type benchSourceFactory struct{ src *benchSource }

func (benchSourceFactory) Type() string               { return "bench" }
func (benchSourceFactory) Role() pipelines.Role       { return pipelines.RoleSource }
func (benchSourceFactory) Input() pipelines.DataType  { return "" }
func (benchSourceFactory) Output() pipelines.DataType { return pipelines.DataTraces }
func (benchSourceFactory) DefaultConfig() any         { return &struct{}{} }
func (f benchSourceFactory) Create(set pipelines.Settings, _ any) (pipelines.Node, error) {
	f.src.out = set.Output
	return f.src, nil
}

// BenchmarkWritePath measures one OTLP push of ~2,000 spans through the
// distributor into the live-store, in one process: "pipeline" pushes the
// request bytes straight into the compiled graph; "otlp-http" and
// "otlp-grpc" go through the real OTLP endpoints over loopback (client cost
// included).
func BenchmarkWritePath(b *testing.B) {
	reqs := requests(64)
	spans := benchTraces * benchSpansPerTrace
	bytesPer := len(reqs[0])

	b.Run("pipeline", func(b *testing.B) {
		src := &benchSource{}
		ls := livestore.DefaultConfig()
		ls.MaxBytes = 64 << 30
		reg, err := pipelines.NewRegistry(benchSourceFactory{src}, distributor.NewFactory(distributor.DefaultConfig(), nil), livestore.NewFactory(ls, nil))
		if err != nil {
			b.Fatal(err)
		}
		spec, err := pipelines.Parse("bench.yaml", []byte(`nodes:
  in: {kind: bench, target: distributor}
  distributor: {kind: distributor, target: distributor, from: [in]}
  live-store: {kind: live_store, target: live-store, from: [distributor]}
`))
		if err != nil {
			b.Fatal(err)
		}
		p, err := pipelines.Compile(spec, reg, pipelines.Options{Targets: []string{"all"}, Metrics: prometheus.NewRegistry(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer p.Shutdown(ctx)
		runBench(b, spans, bytesPer, func(i int) error {
			oc, err := src.out.Push(ctx, message.NewMessage(watermill.NewUUID(), reqs[i%len(reqs)]))
			if err == nil {
				err = oc.Err()
			}
			return err
		}, reqs)
	})

	b.Run("otlp-http", func(b *testing.B) {
		a := benchApp(b)
		_, httpAddr := a.OTLPAddrs()
		url := "http://" + httpAddr + "/v1/traces"
		runBench(b, spans, bytesPer, func(i int) error {
			resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(reqs[i%len(reqs)]))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
			return nil
		}, reqs)
	})

	b.Run("otlp-grpc", func(b *testing.B) {
		a := benchApp(b)
		grpcAddr, _ := a.OTLPAddrs()
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		client := coltracepb.NewTraceServiceClient(conn)
		msgs := make([]*coltracepb.ExportTraceServiceRequest, len(reqs))
		for i, r := range reqs {
			msgs[i] = &coltracepb.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(r, msgs[i]); err != nil {
				b.Fatal(err)
			}
		}
		runBench(b, spans, bytesPer, func(i int) error {
			_, err := client.Export(context.Background(), msgs[i%len(msgs)])
			return err
		}, reqs)
	})
}

// runBench pushes each pre-generated request once to warm up (so the timed
// loop, which cycles through them again, measures inserts of new spans into
// existing traces as well as new traces), then times pushes.
func runBench(b *testing.B, spans, bytesPer int, push func(i int) error, reqs [][]byte) {
	b.Helper()
	b.SetBytes(int64(bytesPer))
	b.ReportAllocs()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := push(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, spans, cpu0, &ms0)
}

func benchApp(b *testing.B) *App {
	b.Helper()
	cfg := config.Default()
	cfg.Server.HTTPListenAddress, cfg.Server.HTTPListenPort = "127.0.0.1", 0
	cfg.Server.GRPCListenAddress, cfg.Server.GRPCListenPort = "127.0.0.1", 0
	cfg.Distributor.Receivers.OTLP.Protocols.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Distributor.Receivers.OTLP.Protocols.HTTP.Endpoint = "127.0.0.1:0"
	cfg.LiveStore.MaxBytes = 64 << 30
	// Measure capacity, not the default per-tenant rate limit (30 MB/s)
	// and live traces (10,000).
	cfg.Overrides.Defaults.Ingestion.RateLimitBytes = 0
	cfg.Overrides.Defaults.Ingestion.MaxTracesPerUser = 0
	dir := b.TempDir()
	cfg.Storage.Trace.Store.Local.Path = dir + "/blocks"
	cfg.BlockBuilder.WAL.Path = dir + "/wal"
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), BuildInfo{})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}
