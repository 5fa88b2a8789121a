package otlpwire

import (
	"bytes"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/internal/spangen"
)

func unmarshal(t *testing.T, b []byte) ptrace.Traces {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		t.Fatalf("pdata cannot read our encoding: %v", err)
	}
	return td
}

func TestParseFindsEverySpan(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 1, Traces: 20, SpansPerTrace: 7, Services: 3})
	data := spangen.Marshal(td)
	var b Batch
	if err := b.Parse(data); err != nil {
		t.Fatal(err)
	}
	if got, want := b.SpanCount(), td.SpanCount(); got != want {
		t.Fatalf("spans = %d, want %d", got, want)
	}
	if len(b.Resources) != td.ResourceSpans().Len() {
		t.Fatalf("resources = %d, want %d", len(b.Resources), td.ResourceSpans().Len())
	}
	for i, res := range b.Resources {
		ss := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
		for j, sp := range res.Scopes[0].Spans {
			want := ss.At(j)
			if tid := want.TraceID(); !bytes.Equal(sp.TraceID, tid[:]) {
				t.Fatalf("resource %d span %d: trace ID %x, want %x", i, j, sp.TraceID, tid)
			}
			if sid := want.SpanID(); !bytes.Equal(sp.SpanID, sid[:]) {
				t.Fatalf("resource %d span %d: span ID %x, want %x", i, j, sp.SpanID, sid)
			}
		}
	}
	// Reusing the batch gives the same view.
	if err := b.Parse(data); err != nil || b.SpanCount() != td.SpanCount() {
		t.Fatalf("reparse: %v, %d spans", err, b.SpanCount())
	}
}

func TestBuilderRoundTripAndRegroup(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 2, Traces: 30, SpansPerTrace: 5, Services: 4})
	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	// Split by the first byte of the trace ID into two builders.
	var even, odd Builder
	for ri := range b.Resources {
		res := &b.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				if sp.TraceID[0]%2 == 0 {
					even.Add(res, sc, sp.Raw)
				} else {
					odd.Add(res, sc, sp.Raw)
				}
			}
		}
	}
	if even.SpanCount()+odd.SpanCount() != td.SpanCount() {
		t.Fatalf("lost spans: %d + %d != %d", even.SpanCount(), odd.SpanCount(), td.SpanCount())
	}
	e := even.AppendTo(nil)
	if len(e) != even.Size() {
		t.Fatalf("Size() = %d, AppendTo wrote %d", even.Size(), len(e))
	}
	all := odd.AppendTo(e) // concatenation is a valid TracesData
	got := unmarshal(t, all)
	if got.SpanCount() != td.SpanCount() {
		t.Fatalf("round trip spans = %d, want %d", got.SpanCount(), td.SpanCount())
	}
	// Every span keeps its resource: compare service.name per span ID.
	want := map[pcommon.SpanID]string{}
	collect := func(td ptrace.Traces, m map[pcommon.SpanID]string) {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				if ss.Scope().Name() == "" {
					t.Fatalf("scope lost its name")
				}
				for k := 0; k < ss.Spans().Len(); k++ {
					m[ss.Spans().At(k).SpanID()] = svc.Str()
				}
			}
		}
	}
	collect(td, want)
	gotM := map[pcommon.SpanID]string{}
	collect(got, gotM)
	for id, svc := range want {
		if gotM[id] != svc {
			t.Fatalf("span %x: service %q, want %q", id, gotM[id], svc)
		}
	}
	// Reset reuses the builder.
	even.Reset()
	if even.SpanCount() != 0 || len(even.AppendTo(nil)) != 0 {
		t.Fatalf("Reset left spans behind")
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	good := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 3, Traces: 1, SpansPerTrace: 2, Services: 1}))
	span := func(fields ...[]byte) []byte {
		// TracesData{resource_spans{scope_spans{spans{fields}}}}
		var s []byte
		for _, f := range fields {
			s = append(s, f...)
		}
		ss := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), s)
		rs := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), ss)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rs)
	}
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	kv := func(key string, val []byte) []byte {
		return append(bytesField(1, []byte(key)), bytesField(2, val)...)
	}
	deep := bytesField(1, []byte("x"))
	for i := 0; i < MaxDepth+2; i++ {
		deep = bytesField(5, bytesField(1, deep)) // AnyValue{array{values:[...]}}
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-3], "cannot parse OTLP traces"},
		{"garbage", []byte("this is not protobuf at all"), "cannot parse OTLP traces"},
		{"wrong wire type for trace id", span(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7)), "trace_id: wrong wire type"},
		{"bad utf8 name", span(bytesField(5, []byte{0xff, 0xfe})), "name: invalid UTF-8"},
		{"bad nested attribute", span(bytesField(9, kv("k", []byte{0x0a, 0x05, 'a'}))), "attributes"},
		{"too deep", span(bytesField(9, kv("k", deep))), "nested deeper than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Batch
			err := b.Parse(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	var b Batch
	if err := b.Parse(nil); err != nil || b.SpanCount() != 0 {
		t.Fatalf("empty input: %v, %d spans", err, b.SpanCount())
	}
}

func TestTruncate(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	rs.Resource().Attributes().PutStr("big.resource", strings.Repeat("r", 100))
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("scope")
	ss.Scope().Attributes().PutStr("big.scope", strings.Repeat("s", 100))
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("span")
	sp.Attributes().PutStr("small", "ok")
	sp.Attributes().PutStr(strings.Repeat("k", 40), "v")
	sp.Attributes().PutStr("big", strings.Repeat("é", 30)) // 60 bytes, 2 per rune
	sp.Attributes().PutInt("int", 5)
	ev := sp.Events().AppendEmpty()
	ev.SetName("ev")
	ev.Attributes().PutStr("big.event", strings.Repeat("e", 50))
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{2})
	l.SetSpanID(pcommon.SpanID{2})
	l.Attributes().PutStr("big.link", strings.Repeat("l", 50))

	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	const max = 31
	res := &b.Resources[0]
	sc := &res.Scopes[0]
	var n, total int
	res.Header, n = TruncateResourceHeader(res.Header, max)
	total += n
	sc.Header, n = TruncateScopeHeader(sc.Header, max)
	total += n
	span, n := TruncateSpan(sc.Spans[0].Raw, max)
	total += n
	if total != 6 {
		t.Fatalf("cut %d keys and values, want 6", total)
	}
	var bl Builder
	bl.Add(res, sc, span)
	got := unmarshal(t, bl.AppendTo(nil))
	grs := got.ResourceSpans().At(0)
	check := func(m pcommon.Map, key string, wantLen int) {
		t.Helper()
		v, ok := m.Get(key)
		if !ok {
			t.Fatalf("attribute %q missing: %v", key, m.AsRaw())
		}
		if len(v.Str()) != wantLen {
			t.Fatalf("attribute %q has %d bytes, want %d", key, len(v.Str()), wantLen)
		}
	}
	check(grs.Resource().Attributes(), "big.resource", max)
	check(grs.Resource().Attributes(), "service.name", 3)
	gss := grs.ScopeSpans().At(0)
	check(gss.Scope().Attributes(), "big.scope", max)
	gsp := gss.Spans().At(0)
	check(gsp.Attributes(), "small", 2)
	check(gsp.Attributes(), strings.Repeat("k", max), 1)
	check(gsp.Attributes(), "big", 30) // cut on a rune boundary
	if v, _ := gsp.Attributes().Get("int"); v.Int() != 5 {
		t.Fatalf("int attribute changed: %v", v.AsRaw())
	}
	check(gsp.Events().At(0).Attributes(), "big.event", max)
	check(gsp.Links().At(0).Attributes(), "big.link", max)
	if gsp.Name() != "span" || gsp.Events().At(0).Name() != "ev" {
		t.Fatalf("other fields changed")
	}

	// Nothing to cut: the same slice comes back.
	small := sc.Spans[0].Raw
	if out, n := TruncateSpan(small, 1<<20); n != 0 || &out[0] != &small[0] {
		t.Fatalf("untouched span was copied")
	}
}

// pdata writes parent_span_id on root spans with length zero: Parse marks
// those spans and DropEmptyParent removes the field and nothing else.
func TestDropEmptyParent(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 3, Traces: 4, SpansPerTrace: 3, Services: 1})
	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	roots := 0
	for _, sp := range b.Resources[0].Scopes[0].Spans {
		var parents [][]byte
		_ = forEachField(sp.Raw, func(num protowire.Number, _ protowire.Type, val []byte) error {
			if num == fieldSpanParentSpanID {
				parents = append(parents, val)
			}
			return nil
		})
		if len(parents) != 1 {
			t.Fatalf("pdata wrote %d parent_span_id fields, want 1", len(parents))
		}
		root := len(parents[0]) == 0
		if sp.EmptyParent != root {
			t.Fatalf("EmptyParent = %v for parent %x", sp.EmptyParent, parents[0])
		}
		got := DropEmptyParent(sp.Raw)
		if !root {
			if &got[0] != &sp.Raw[0] || len(got) != len(sp.Raw) {
				t.Fatal("a span with a parent was copied")
			}
			continue
		}
		roots++
		// The field is a tag byte (0x22) and a zero length.
		if len(got) != len(sp.Raw)-2 {
			t.Fatalf("DropEmptyParent: %d bytes from %d", len(got), len(sp.Raw))
		}
		var again Batch
		one := protowire.AppendTag(nil, 2, protowire.BytesType)
		one = protowire.AppendBytes(one, got)
		rs := protowire.AppendTag(nil, 2, protowire.BytesType)
		rs = protowire.AppendBytes(rs, one)
		data := protowire.AppendTag(nil, 1, protowire.BytesType)
		data = protowire.AppendBytes(data, rs)
		if err := again.Parse(data); err != nil {
			t.Fatal(err)
		}
		sp2 := again.Resources[0].Scopes[0].Spans[0]
		if sp2.EmptyParent || !bytes.Equal(sp2.SpanID, sp.SpanID) || !bytes.Equal(sp2.TraceID, sp.TraceID) {
			t.Fatalf("span after DropEmptyParent: %+v", sp2)
		}
		if SpanName(got) != SpanName(sp.Raw) {
			t.Fatalf("name %q, want %q", SpanName(got), SpanName(sp.Raw))
		}
	}
	if roots != 4 {
		t.Fatalf("%d roots, want 4", roots)
	}
}
