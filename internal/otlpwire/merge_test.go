package otlpwire

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
)

func traceWith(service string, ids ...byte) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	for _, id := range ids {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{9})
		sp.SetSpanID(pcommon.SpanID{id})
	}
	return spangen.Marshal(td)
}

func TestMergeDedupes(t *testing.T) {
	live := traceWith("a", 1, 2, 3)
	blk1 := traceWith("a", 2, 3, 4)
	blk2 := traceWith("b", 5, 1)
	out, err := Merge(live, nil, blk1, blk2)
	if err != nil {
		t.Fatal(err)
	}
	td := unmarshal(t, out)
	ids := map[pcommon.SpanID]string{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		svc, _ := rs.Resource().Attributes().Get("service.name")
		spans := rs.ScopeSpans().At(0).Spans()
		for k := 0; k < spans.Len(); k++ {
			if _, dup := ids[spans.At(k).SpanID()]; dup {
				t.Fatalf("span %v twice", spans.At(k).SpanID())
			}
			ids[spans.At(k).SpanID()] = svc.Str()
		}
	}
	if len(ids) != 5 || ids[pcommon.SpanID{5}] != "b" || ids[pcommon.SpanID{1}] != "a" {
		t.Fatalf("merged spans %v", ids)
	}
	if out, _ := Merge(nil, live); &out[0] != &live[0] {
		t.Fatal("a single part was copied")
	}
	// One part with a span twice (a client retry inside one block).
	twice := append(traceWith("a", 1, 2), traceWith("a", 2)...)
	out, _ = Merge(twice)
	if n := unmarshal(t, out).SpanCount(); n != 2 {
		t.Fatalf("single part with a duplicate: %d spans, want 2", n)
	}
	if out, _ := Merge(); out != nil {
		t.Fatal("no parts gave data")
	}
}

func TestDropEmptyParents(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 5, Traces: 3, SpansPerTrace: 4, Services: 2})
	data := spangen.Marshal(td)
	out, err := DropEmptyParents(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(data)-2*3 {
		t.Fatalf("%d bytes from %d, want 3 empty fields (2 bytes each) dropped", len(out), len(data))
	}
	var b Batch
	if err := b.Parse(out); err != nil {
		t.Fatal(err)
	}
	if b.SpanCount() != 12 {
		t.Fatalf("%d spans, want 12", b.SpanCount())
	}
	for _, sp := range b.spans {
		if sp.EmptyParent {
			t.Fatalf("span %x still has an empty parent", sp.SpanID)
		}
	}
	again, err := DropEmptyParents(out)
	if err != nil || &again[0] != &out[0] {
		t.Fatalf("data without empty parents was copied (%v)", err)
	}
	if got := unmarshal(t, out); got.SpanCount() != 12 || got.ResourceSpans().Len() != 2 {
		t.Fatalf("pdata reads %d spans in %d resources", got.SpanCount(), got.ResourceSpans().Len())
	}
}
