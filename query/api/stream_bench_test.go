package api

import (
	"fmt"
	"testing"

	"google.golang.org/grpc"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/streaming/tempopb"
)

// discardStream is a search stream whose messages go nowhere.
type discardStream struct {
	grpc.ServerStreamingServer[tempopb.SearchResponse]
	sent int
}

func (d *discardStream) Send(*tempopb.SearchResponse) error { d.sent++; return nil }

// BenchmarkSearchProgress is one progress report of a streamed search
// holding n traces of 3 spans, none changed since the report before: what
// the frontend's merge loop waits for at most every 500ms.
func BenchmarkSearchProgress(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			resp := &search.Response{Metrics: &search.Metrics{TotalJobs: 100, CompletedJobs: 50}}
			for i := range n {
				ss := &search.SpanSet{Matched: 3}
				for j := range 3 {
					ss.Spans = append(ss.Spans, &search.Span{SpanID: fmt.Sprintf("%016x", i*3+j), Name: "GET /orders/{id}", StartTimeUnixNano: uint64(i), DurationNanos: 1000,
						Attributes: []*search.KeyValue{{Key: "service.name", Value: &search.AnyValue{StringValue: ptr("checkout")}}}})
				}
				resp.Traces = append(resp.Traces, &search.Trace{TraceID: fmt.Sprintf("%x", i+1), RootServiceName: "checkout", RootTraceName: "GET /orders/{id}",
					StartTimeUnixNano: uint64(i), DurationMs: 12, SpanSet: ss, SpanSets: []*search.SpanSet{ss}})
			}
			s := &streamServer{maxBytes: DefaultMaxStreamingPacketSize}
			d := &differ{s: s, stream: &discardStream{}, sent: map[string]string{}, latest: make([]*search.Response, 1)}
			d.progress(0, resp, n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				d.progress(0, resp, n)
			}
			if d.err != nil {
				b.Fatal(d.err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
