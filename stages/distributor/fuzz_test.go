package distributor

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// FuzzProcess feeds arbitrary bytes to the distributor as an OTLP protobuf
// push, the first place a client's bytes are parsed: it must not panic, it
// refuses bad input with InvalidArgument, what it passes on parses again,
// and every span that came in is either passed on or refused in the push's
// outcome (bad IDs, or over the small per-trace limits the fuzzer runs
// with).
func FuzzProcess(f *testing.F) {
	f.Add(spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 2, SpansPerTrace: 3, Services: 2})))
	f.Add(spangen.Marshal(spangen.Generate(spangen.Options{Seed: 2, Traces: 1, SpansPerTrace: 1, Services: 1})))
	f.Add([]byte{0x0a, 0x50, 0x01, 0x02})             // truncated resource_spans
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})             // an empty scope_spans
	f.Add([]byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00}) // a span with no IDs
	f.Add([]byte{})
	limits := overrides.DefaultLimits()
	limits.Ingestion.RateLimitBytes = 0
	limits.Ingestion.MaxTracesPerUser = 4
	limits.Global.MaxBytesPerTrace = 2000
	cfg := Config{MaxAttributeBytes: 16, Partitions: 4, TraceIdlePeriod: time.Second}
	d := New(pipelines.Settings{Name: "distributor", Metrics: prometheus.NewRegistry()}, cfg, fixedLimits{"single-tenant": &limits})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var in otlpwire.Batch
		inErr := in.Parse(payload)
		msg := msgOf(payload, "")
		ctx, outcome := pipelines.ContextWithOutcome(context.Background())
		msg.SetContext(ctx)
		out, err := d.Process(msg)
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument {
				t.Fatalf("Process refused with %v, want InvalidArgument: %v", c, err)
			}
			return
		}
		if inErr != nil {
			t.Fatalf("Process accepted a payload Parse refuses: %v", inErr)
		}
		spans := 0
		for _, m := range out {
			var b otlpwire.Batch
			if err := b.Parse(m.Payload); err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			if m.Metadata.Get(pipelines.MetaTenant) == "" || m.Metadata.Get(pipelines.MetaPartition) == "" {
				t.Fatalf("output without tenant or partition: %v", m.Metadata)
			}
			spans += b.SpanCount()
		}
		if spans+int(outcome.Rejected()) != in.SpanCount() {
			t.Fatalf("%d spans passed on and %d refused, of %d in", spans, outcome.Rejected(), in.SpanCount())
		}
	})
}
