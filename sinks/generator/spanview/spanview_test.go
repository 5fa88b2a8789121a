package spanview_test

import (
	"bytes"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/sinks/generator/spanview"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func label(t *testing.T, raw []byte, ok bool) string {
	t.Helper()
	if !ok {
		t.Fatal("attribute not found")
	}
	return string(spanview.AppendLabel(nil, raw))
}

func TestParse(t *testing.T) {
	start := spantest.Base
	data := spantest.Marshal(
		spantest.Span{Service: "api", Resource: map[string]any{"k8s.node.name": "n1", "service.namespace": "shop"},
			Trace: 7, ID: 1, Name: "GET /cart", Kind: ptrace.SpanKindServer, Status: ptrace.StatusCodeError, Message: "boom",
			Start: start, Duration: 1500 * time.Millisecond,
			Attrs: map[string]any{"s": "x", "b": true, "i": int64(-42), "d": 0.5, "big": 1e21, "arr": []any{"a", int64(1), false}, "kv": map[string]any{"k": "v"}, "bytes": []byte{1, 2}}},
		spantest.Span{Service: "api", Resource: map[string]any{"k8s.node.name": "n1", "service.namespace": "shop"},
			Trace: 7, ID: 2, Parent: 1, Name: "SELECT", Kind: ptrace.SpanKindClient, Start: start, Duration: time.Millisecond},
		spantest.Span{Service: "db", Trace: 8, ID: 3, Name: "q", Kind: ptrace.SpanKindConsumer, Start: start.Add(time.Second), Duration: -time.Second},
	)
	var b spanview.Batch
	if err := b.Parse(data); err != nil {
		t.Fatal(err)
	}
	if len(b.Spans) != 3 || len(b.Resources) != 2 {
		t.Fatalf("%d spans %d resources", len(b.Spans), len(b.Resources))
	}
	s := &b.Spans[0]
	tid, sid := spantest.TraceID(7), spantest.SpanID(1)
	if !bytes.Equal(s.TraceID, tid[:]) || !bytes.Equal(s.SpanID, sid[:]) || len(s.ParentSpanID) != 0 {
		t.Errorf("ids %x %x %x", s.TraceID, s.SpanID, s.ParentSpanID)
	}
	if string(s.Name) != "GET /cart" || s.Kind != spanview.KindServer || s.StatusCode != spanview.StatusError || string(s.StatusMessage) != "boom" {
		t.Errorf("span fields %q %d %d %q", s.Name, s.Kind, s.StatusCode, s.StatusMessage)
	}
	if s.Start != uint64(start.UnixNano()) || s.DurationSeconds() != 1.5 {
		t.Errorf("times %d %v", s.Start, s.DurationSeconds())
	}
	if s.Resource.ServiceName != "api" || !s.Resource.HasServiceName || b.Spans[1].Resource != s.Resource {
		t.Errorf("resource %+v", s.Resource)
	}
	// Size is proto.Size of the span message.
	var td tracepb.TracesData
	if err := proto.Unmarshal(data, &td); err != nil {
		t.Fatal(err)
	}
	for i, want := range []*tracepb.Span{td.ResourceSpans[0].ScopeSpans[0].Spans[0], td.ResourceSpans[0].ScopeSpans[0].Spans[1], td.ResourceSpans[1].ScopeSpans[0].Spans[0]} {
		if b.Spans[i].Size != proto.Size(want) {
			t.Errorf("span %d size %d, proto.Size %d", i, b.Spans[i].Size, proto.Size(want))
		}
	}
	p2 := spantest.SpanID(1)
	if !bytes.Equal(b.Spans[1].ParentSpanID, p2[:]) {
		t.Errorf("parent %x", b.Spans[1].ParentSpanID)
	}
	// Tempo's label formatting.
	for key, want := range map[string]string{
		"s": "x", "b": "true", "i": "-42", "d": "0.5", "big": "1000000000000000000000",
		"arr": "[a1false]", "kv": "{k:v}", "bytes": "",
	} {
		raw, ok := s.Lookup(key)
		if got := label(t, raw, ok); got != want {
			t.Errorf("attribute %s: %q, want %q", key, got, want)
		}
	}
	if _, ok := s.Lookup("missing"); ok {
		t.Error("missing attribute found")
	}
	raw, ok := s.Resource.Lookup("k8s.node.name")
	if label(t, raw, ok) != "n1" {
		t.Error("resource attribute")
	}
	if b.Spans[2].DurationSeconds() != 0 || b.Spans[2].Resource.ServiceName != "db" {
		t.Errorf("negative duration %v", b.Spans[2].DurationSeconds())
	}
	if spanview.SpanKindName(b.Spans[2].Kind) != "SPAN_KIND_CONSUMER" || spanview.StatusCodeName(0) != "STATUS_CODE_UNSET" {
		t.Error("names")
	}
}

// TestParseBad feeds every truncation and some corruptions of a batch:
// an error or a consistent batch, never a panic.
func TestParseBad(t *testing.T) {
	data := spantest.Marshal(spantest.Span{Service: "a", Trace: 1, ID: 1, Name: "x", Attrs: map[string]any{"k": "v", "n": int64(3)}})
	var b spanview.Batch
	errs := 0
	for n := 0; n < len(data); n++ {
		if b.Parse(data[:n]) != nil {
			errs++
		}
		c := bytes.Clone(data)
		c[n] ^= 0xff
		_ = b.Parse(c)
		for i := range b.Spans {
			for _, a := range b.Spans[i].Attrs() {
				_ = spanview.AppendLabel(nil, a.Value)
			}
		}
	}
	if errs == 0 {
		t.Error("no truncation was refused")
	}
	if err := b.Parse([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("a length past the end was accepted")
	}
}

func spangenBatch(traces int) []byte {
	return spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: traces, SpansPerTrace: 10}))
}

// TestParseNoAllocs checks that a reused Batch allocates per batch (one
// service name per resource, the wire reader's per-batch slices), never per
// span: four times the spans cost no more allocations.
func TestParseNoAllocs(t *testing.T) {
	allocs := func(traces int) float64 {
		data := spangenBatch(traces)
		var b spanview.Batch
		if err := b.Parse(data); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(10, func() {
			if err := b.Parse(data); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(100), allocs(400)
	if large > small+2 || small > 40 {
		t.Errorf("allocations per Parse: %v for 1000 spans, %v for 4000 spans", small, large)
	}
}

func BenchmarkParse(b *testing.B) {
	data := spangenBatch(100)
	var batch spanview.Batch
	_ = batch.Parse(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := batch.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Spans)), "ns/span")
}

// FuzzParse: any input gives an error or a batch whose attributes can all
// be read, never a panic. `go test -fuzz FuzzParse ./sinks/generator/spanview/`
// explores further than the seeds.
func FuzzParse(f *testing.F) {
	f.Add(spantest.Marshal(spantest.Span{Service: "a", Trace: 1, ID: 1, Parent: 2, Name: "x", Kind: ptrace.SpanKindServer,
		Attrs: map[string]any{"k": "v", "n": int64(3), "arr": []any{1.5, "x"}, "kv": map[string]any{"a": true}}}))
	f.Add(spangenBatch(2))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b spanview.Batch
		if err := b.Parse(data); err != nil {
			return
		}
		for i := range b.Spans {
			s := &b.Spans[i]
			_ = s.DurationSeconds()
			_ = s.Resource.ServiceName
			for _, a := range s.Attrs() {
				_ = spanview.AppendLabel(nil, a.Value)
			}
			for _, a := range s.Resource.Attrs() {
				_ = spanview.AppendLabel(nil, a.Value)
			}
		}
	})
}

func TestRetain(t *testing.T) {
	var b spanview.Batch
	err := b.Parse(spantest.Marshal(
		spantest.Span{Service: "a", ID: 1, Duration: time.Second},
		spantest.Span{Service: "b", ID: 2, Duration: time.Hour},
		spantest.Span{Service: "a", ID: 3, Duration: time.Second},
	))
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(spantest.Base.Add(time.Minute).UnixNano())
	if n := b.Retain(func(s *spanview.Span) bool { return s.End <= limit }); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	if len(b.Spans) != 2 || b.Spans[1].Resource.ServiceName != "a" || b.Spans[1].SpanID[7] != 3 {
		t.Errorf("kept %d spans, second of %q", len(b.Spans), b.Spans[1].Resource.ServiceName)
	}
}
