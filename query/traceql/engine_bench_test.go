package traceql

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildBenchTrace makes a 100-span trace over 5 services: a root with 9
// children, each with 10 children (the last one of them a leaf error).
func buildBenchTrace(b *testing.B) []byte {
	td := ptrace.NewTraces()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var scopes []ptrace.ScopeSpans
	for i := range 5 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", i))
		rs.Resource().Attributes().PutStr("k8s.namespace", "prod")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("lib")
		scopes = append(scopes, ss)
	}
	id := func(i int) pcommon.SpanID { return pcommon.SpanID{0xab, 6: byte(i >> 8), 7: byte(i)} }
	n := 0
	add := func(parent int, name string) int {
		me := n
		n++
		sp := scopes[me%5].Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, 15: 1})
		sp.SetSpanID(id(me))
		if parent >= 0 {
			sp.SetParentSpanID(id(parent))
		}
		sp.SetName(name)
		sp.SetKind(ptrace.SpanKind(1 + me%5))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(me) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(me*3+10) * time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("http.method", []string{"GET", "POST"}[me%2])
		a.PutInt("http.status_code", int64(200+me%4*100))
		a.PutDouble("load", float64(me)/7)
		a.PutBool("sampled", me%3 == 0)
		a.PutStr("http.url", fmt.Sprintf("https://api.example.com/v1/orders/%d", me))
		if me%10 == 9 {
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Events().AppendEmpty().SetName("exception")
		}
		return me
	}
	root := add(-1, "root")
	for i := range 9 {
		mid := add(root, fmt.Sprintf("mid-%d", i))
		for j := range 10 {
			add(mid, fmt.Sprintf("leaf-%d", j))
		}
	}
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkEval(b *testing.B) {
	data := buildBenchTrace(b)
	tr, err := NewTrace(data)
	if err != nil {
		b.Fatal(err)
	}
	if len(tr.Spans) != 100 {
		b.Fatalf("%d spans", len(tr.Spans))
	}
	b.Run("NewTrace", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := NewTrace(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct{ name, query string }{
		{"simple", `{ resource.service.name = "svc-1" }`},
		{"errors", `{ status = error && span.http.status_code >= 500 } | by(resource.service.name) | count() > 1`},
		{"structural", `{ resource.service.name = "svc-0" && kind = internal } >> { span.http.method = "POST" && duration > 20ms }`},
		{"regex", `{ span.http.url =~ "https?://api\\.example\\.com/v[0-9]+/orders/1.*" && name != "root" } | select(span.http.method, duration)`},
		{"aggregate", `{ span.load > 2.5 } | avg(duration) > 10ms`},
	} {
		q, err := Parse(c.query)
		if err != nil {
			b.Fatal(err)
		}
		if res, err := q.Eval(tr); err != nil || len(res) == 0 {
			b.Fatalf("%s: %v %v", c.name, res, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Eval(tr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
