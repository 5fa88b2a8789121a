package otlpwire

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/internal/spangen"
)

// richTraces is spangen data plus a span that uses every field and every
// attribute value type.
func richTraces() ptrace.Traces {
	td := spangen.Generate(spangen.Options{Seed: 7, Traces: 15, SpansPerTrace: 6, Services: 3})
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "rich")
	ra.PutInt("process.pid", 4242)
	ra.PutEmpty("nothing")
	rs.Resource().SetDroppedAttributesCount(3)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.SetSchemaUrl("https://scope.example/schema")
	ss.Scope().SetName("rich-scope")
	ss.Scope().SetVersion("v9")
	ss.Scope().Attributes().PutBool("scope.flag", true)
	ss.Scope().SetDroppedAttributesCount(2)
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1})
	sp.SetParentSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1})
	sp.TraceState().FromRaw("vendor=a,other=b")
	sp.SetName("rich span <&>")
	sp.SetKind(ptrace.SpanKindConsumer)
	sp.SetStartTimestamp(1_700_000_000_123_456_789)
	sp.SetEndTimestamp(1_700_000_001_000_000_000)
	sp.SetFlags(0x301)
	sp.Status().SetCode(ptrace.StatusCodeOk)
	sp.Status().SetMessage("fine")
	sp.SetDroppedAttributesCount(5)
	sp.SetDroppedEventsCount(6)
	sp.SetDroppedLinksCount(7)
	a := sp.Attributes()
	a.PutStr("str", "a \"quoted\" <string>")
	a.PutBool("bool", true)
	a.PutBool("false", false)
	a.PutInt("int", -42)
	a.PutDouble("double", 3.25)
	a.PutDouble("tiny", 1.5e-9)
	a.PutDouble("huge", 2e22)
	a.PutDouble("nan", math.NaN())
	a.PutDouble("inf", math.Inf(-1))
	a.PutEmptyBytes("bytes").FromRaw([]byte{0, 1, 2, 250})
	arr := a.PutEmptySlice("array")
	arr.AppendEmpty().SetStr("x<y")
	arr.AppendEmpty().SetInt(7)
	arr.AppendEmpty().SetDouble(0.5)
	arr.AppendEmpty().SetEmptyBytes().FromRaw([]byte("hi"))
	arr.AppendEmpty() // empty
	m := a.PutEmptyMap("map")
	m.PutStr("z", "last")
	m.PutStr("a", "first")
	m.PutEmptySlice("nested").AppendEmpty().SetBool(true)
	m.PutEmptyMap("inner").PutInt("n", 1)
	a.PutEmpty("empty")
	a.PutStr("", "empty key")
	ev := sp.Events().AppendEmpty()
	ev.SetName("ev1")
	ev.SetTimestamp(1_700_000_000_500_000_000)
	ev.Attributes().PutInt("ev.n", 1)
	ev.SetDroppedAttributesCount(9)
	sp.Events().AppendEmpty().SetName("ev2")
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{9})
	l.SetSpanID(pcommon.SpanID{9})
	l.TraceState().FromRaw("k=v")
	l.SetFlags(1)
	l.SetDroppedAttributesCount(4)
	l.Attributes().PutStr("link.attr", "la")
	return td
}

func pdataType(v pcommon.Value) ValueType {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return ValueTypeStr
	case pcommon.ValueTypeBool:
		return ValueTypeBool
	case pcommon.ValueTypeInt:
		return ValueTypeInt
	case pcommon.ValueTypeDouble:
		return ValueTypeDouble
	case pcommon.ValueTypeSlice:
		return ValueTypeArray
	case pcommon.ValueTypeMap:
		return ValueTypeKvlist
	case pcommon.ValueTypeBytes:
		return ValueTypeBytes
	}
	return ValueTypeEmpty
}

// checkAttributes compares the attributes of msg with want, in order, type
// and string form included.
func checkAttributes(t *testing.T, what string, msg []byte, k MessageKind, want pcommon.Map) {
	t.Helper()
	type kv struct {
		key string
		typ ValueType
		str string
	}
	var got []kv
	err := EachAttribute(msg, k, func(key []byte, v AnyValueView) bool {
		s, err := v.AppendString(nil)
		if err != nil {
			t.Fatalf("%s: %q: %v", what, key, err)
		}
		got = append(got, kv{string(key), v.Type(), string(s)})
		return true
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(got) != want.Len() {
		t.Fatalf("%s: %d attributes, want %d", what, len(got), want.Len())
	}
	i := 0
	want.Range(func(key string, v pcommon.Value) bool {
		w := kv{key, pdataType(v), v.AsString()}
		if got[i] != w {
			t.Errorf("%s: attribute %d = %+v, want %+v", what, i, got[i], w)
		}
		i++
		return true
	})
}

func TestReadFieldsMatchPdata(t *testing.T) {
	td := richTraces()
	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	spans := 0
	for ri := range b.Resources {
		res := &b.Resources[ri]
		wrs := td.ResourceSpans().At(ri)
		rf, err := ReadResourceHeader(res.Header)
		if err != nil {
			t.Fatal(err)
		}
		if string(rf.SchemaURL) != wrs.SchemaUrl() || rf.DroppedAttributesCount != wrs.Resource().DroppedAttributesCount() ||
			rf.Attributes != wrs.Resource().Attributes().Len() {
			t.Errorf("resource %d: %+v", ri, rf)
		}
		checkAttributes(t, "resource", res.Header, MessageResourceHeader, wrs.Resource().Attributes())
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			wss := wrs.ScopeSpans().At(si)
			sf, err := ReadScopeHeader(sc.Header)
			if err != nil {
				t.Fatal(err)
			}
			if string(sf.Name) != wss.Scope().Name() || string(sf.Version) != wss.Scope().Version() ||
				string(sf.SchemaURL) != wss.SchemaUrl() || sf.DroppedAttributesCount != wss.Scope().DroppedAttributesCount() ||
				sf.Attributes != wss.Scope().Attributes().Len() {
				t.Errorf("scope %d/%d: %+v", ri, si, sf)
			}
			checkAttributes(t, "scope", sc.Header, MessageScopeHeader, wss.Scope().Attributes())
			for pi, sp := range sc.Spans {
				spans++
				w := wss.Spans().At(pi)
				f, err := ReadSpan(sp.Raw)
				if err != nil {
					t.Fatal(err)
				}
				tid, sid, pid := w.TraceID(), w.SpanID(), w.ParentSpanID()
				wantParent := pid[:]
				if pid.IsEmpty() {
					wantParent = nil
				}
				switch {
				case !bytes.Equal(f.TraceID, tid[:]), !bytes.Equal(f.SpanID, sid[:]), !bytes.Equal(f.ParentSpanID, wantParent):
					t.Errorf("span %s: ids %x %x %x", w.Name(), f.TraceID, f.SpanID, f.ParentSpanID)
				case string(f.TraceState) != w.TraceState().AsRaw(), string(f.Name) != w.Name(), f.Kind != int32(w.Kind()):
					t.Errorf("span %s: %q %q %d", w.Name(), f.TraceState, f.Name, f.Kind)
				case f.StartTimeUnixNano != uint64(w.StartTimestamp()), f.EndTimeUnixNano != uint64(w.EndTimestamp()), f.Flags != w.Flags():
					t.Errorf("span %s: times %d %d flags %x", w.Name(), f.StartTimeUnixNano, f.EndTimeUnixNano, f.Flags)
				case f.StatusCode != int32(w.Status().Code()), string(f.StatusMessage) != w.Status().Message():
					t.Errorf("span %s: status %d %q", w.Name(), f.StatusCode, f.StatusMessage)
				case f.DroppedAttributesCount != w.DroppedAttributesCount(), f.DroppedEventsCount != w.DroppedEventsCount(),
					f.DroppedLinksCount != w.DroppedLinksCount():
					t.Errorf("span %s: dropped %d %d %d", w.Name(), f.DroppedAttributesCount, f.DroppedEventsCount, f.DroppedLinksCount)
				case f.Attributes != w.Attributes().Len(), f.Events != w.Events().Len(), f.Links != w.Links().Len():
					t.Errorf("span %s: counts %d %d %d", w.Name(), f.Attributes, f.Events, f.Links)
				}
				checkAttributes(t, "span "+w.Name(), sp.Raw, MessageSpan, w.Attributes())
				ei := 0
				if err := EachEvent(sp.Raw, func(ev []byte) bool {
					we := w.Events().At(ei)
					ef, err := ReadEvent(ev)
					if err != nil {
						t.Fatal(err)
					}
					if string(ef.Name) != we.Name() || ef.TimeUnixNano != uint64(we.Timestamp()) ||
						ef.DroppedAttributesCount != we.DroppedAttributesCount() || ef.Attributes != we.Attributes().Len() {
						t.Errorf("event %d of %s: %+v", ei, w.Name(), ef)
					}
					checkAttributes(t, "event", ev, MessageEvent, we.Attributes())
					ei++
					return true
				}); err != nil || ei != w.Events().Len() {
					t.Fatalf("events of %s: %v, %d", w.Name(), err, ei)
				}
				li := 0
				if err := EachLink(sp.Raw, func(l []byte) bool {
					wl := w.Links().At(li)
					lf, err := ReadLink(l)
					if err != nil {
						t.Fatal(err)
					}
					ltid, lsid := wl.TraceID(), wl.SpanID()
					if !bytes.Equal(lf.TraceID, ltid[:]) || !bytes.Equal(lf.SpanID, lsid[:]) || string(lf.TraceState) != wl.TraceState().AsRaw() ||
						lf.Flags != wl.Flags() || lf.DroppedAttributesCount != wl.DroppedAttributesCount() || lf.Attributes != wl.Attributes().Len() {
						t.Errorf("link %d of %s: %+v", li, w.Name(), lf)
					}
					checkAttributes(t, "link", l, MessageLink, wl.Attributes())
					li++
					return true
				}); err != nil || li != w.Links().Len() {
					t.Fatalf("links of %s: %v, %d", w.Name(), err, li)
				}
			}
		}
	}
	if spans != td.SpanCount() {
		t.Fatalf("checked %d spans, want %d", spans, td.SpanCount())
	}
}

func TestAnyValueAccessors(t *testing.T) {
	td := richTraces()
	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	rich := b.Resources[len(b.Resources)-1].Scopes[0].Spans[0].Raw
	want := td.ResourceSpans().At(td.ResourceSpans().Len() - 1).ScopeSpans().At(0).Spans().At(0).Attributes()
	seen := 0
	err := EachAttribute(rich, MessageSpan, func(key []byte, v AnyValueView) bool {
		w, _ := want.Get(string(key))
		seen++
		switch v.Type() {
		case ValueTypeStr:
			if string(v.Str()) != w.Str() {
				t.Errorf("%s: %q", key, v.Str())
			}
		case ValueTypeBool:
			if v.Bool() != w.Bool() {
				t.Errorf("%s: %v", key, v.Bool())
			}
		case ValueTypeInt:
			if v.Int() != w.Int() {
				t.Errorf("%s: %d", key, v.Int())
			}
		case ValueTypeDouble:
			if math.Float64bits(v.Double()) != math.Float64bits(w.Double()) {
				t.Errorf("%s: %v", key, v.Double())
			}
		case ValueTypeBytes:
			if !bytes.Equal(v.Bytes(), w.Bytes().AsRaw()) {
				t.Errorf("%s: %x", key, v.Bytes())
			}
		case ValueTypeArray:
			n := 0
			if err := v.EachValue(func(AnyValueView) bool { n++; return true }); err != nil || n != w.Slice().Len() {
				t.Errorf("%s: %d elements, %v", key, n, err)
			}
		case ValueTypeKvlist:
			n := 0
			if err := v.EachKeyValue(func([]byte, AnyValueView) bool { n++; return true }); err != nil || n != w.Map().Len() {
				t.Errorf("%s: %d entries, %v", key, n, err)
			}
		}
		// Accessors of the wrong type give zero values.
		if v.Type() != ValueTypeStr && v.Str() != nil || v.Type() != ValueTypeInt && v.Int() != 0 {
			t.Errorf("%s: wrong-type accessors are not zero", key)
		}
		return true
	})
	if err != nil || seen != want.Len() {
		t.Fatalf("%v, %d attributes", err, seen)
	}
	// Stopping early.
	n := 0
	if err := EachAttribute(rich, MessageSpan, func([]byte, AnyValueView) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Fatalf("early stop: %v after %d", err, n)
	}
	n = 0
	res := b.Resources[len(b.Resources)-1].Header
	if err := EachAttribute(res, MessageResourceHeader, func([]byte, AnyValueView) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("early stop in header: %v after %d", err, n)
	}
	if err := EachAttribute(rich, 0, func([]byte, AnyValueView) bool { return true }); err == nil {
		t.Fatal("kind 0 accepted")
	}
}

func TestFieldReadersRefuseMalformed(t *testing.T) {
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varintField := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	good := append(bytesField(5, []byte("name")), varintField(6, 2)...)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-1], "span"},
		{"name as varint", varintField(5, 1), "name: wrong wire type"},
		{"kind as bytes", bytesField(6, []byte("x")), "kind: wrong wire type"},
		{"bad status", bytesField(15, varintField(2, 1)), "status.message: wrong wire type"},
	}
	for _, tc := range tests {
		if _, err := ReadSpan(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if f, err := ReadSpan(good); err != nil || string(f.Name) != "name" || f.Kind != 2 {
		t.Fatalf("good span: %+v, %v", f, err)
	}
	badAttr := bytesField(9, append(bytesField(1, []byte("k")), bytesField(2, varintField(1, 3))...))
	if err := EachAttribute(badAttr, MessageSpan, func([]byte, AnyValueView) bool { return true }); err == nil {
		t.Fatal("string value with varint wire type accepted")
	}
	if err := EachAttribute([]byte{0x4a, 0x10, 0x01}, MessageSpan, func([]byte, AnyValueView) bool { return true }); err == nil {
		t.Fatal("truncated attribute accepted")
	}
}

func TestReadFieldsAllocations(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 8, Traces: 2, SpansPerTrace: 4, Services: 1})
	var b Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	raw := b.Resources[0].Scopes[0].Spans[0].Raw
	header := b.Resources[0].Header
	var buf []byte
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ReadSpan(raw); err != nil {
			t.Fatal(err)
		}
		_ = EachAttribute(raw, MessageSpan, func(key []byte, v AnyValueView) bool {
			buf, _ = v.AppendString(buf[:0])
			return true
		})
		_ = EachAttribute(header, MessageResourceHeader, func(key []byte, v AnyValueView) bool {
			buf, _ = v.AppendString(buf[:0])
			return true
		})
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per span, want 0", allocs)
	}
}

func BenchmarkReadSpan(b *testing.B) {
	var batch Batch
	if err := batch.Parse(benchRequest(b)); err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		for _, res := range batch.Resources {
			for _, sc := range res.Scopes {
				for _, sp := range sc.Spans {
					if _, err := ReadSpan(sp.Raw); err != nil {
						b.Fatal(err)
					}
					_ = EachAttribute(sp.Raw, MessageSpan, func(key []byte, v AnyValueView) bool {
						buf, _ = v.AppendString(buf[:0])
						return true
					})
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch.SpanCount()), "ns/span")
}
