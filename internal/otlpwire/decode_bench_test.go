package otlpwire

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/spangen"
)

// benchRequest is a realistic export request: 200 traces of 10 spans over 5
// services (about 2,000 spans, 6-8 attributes each).
func benchRequest(b *testing.B) []byte {
	b.Helper()
	return spangen.Marshal(spangen.Generate(spangen.Options{Seed: 42, Traces: 200, SpansPerTrace: 10, Services: 5}))
}

// The three ways to read an OTLP request, measured on the same bytes. The
// write path uses the wire-level Parse; pdata is kept for OTLP/JSON input.
func BenchmarkDecode(b *testing.B) {
	data := benchRequest(b)
	spans := 2000
	b.Run("otlpwire", func(b *testing.B) {
		var batch Batch
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := batch.Parse(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
	b.Run("pdata", func(b *testing.B) {
		u := &ptrace.ProtoUnmarshaler{}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := u.UnmarshalTraces(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
	b.Run("proto-otlp", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var td tracepb.TracesData
			if err := proto.Unmarshal(data, &td); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
}
