// Package spangen generates realistic, deterministic OTLP traces for tests
// and benchmarks: several services, a span tree per trace, HTTP and database
// attributes, events, links and errors.
package spangen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Options shape the generated traces.
type Options struct {
	Seed          uint64
	Traces        int       // number of traces
	SpansPerTrace int       // spans in each trace
	Services      int       // distinct services; spans of a trace are spread over them
	Start         time.Time // start of the first trace; zero means 2026-01-01
}

// Generate returns the traces, grouped as an SDK would send them: one
// ResourceSpans per service, one ScopeSpans per service.
func Generate(o Options) ptrace.Traces {
	if o.Services <= 0 {
		o.Services = 5
	}
	if o.SpansPerTrace <= 0 {
		o.SpansPerTrace = 10
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	td := ptrace.NewTraces()
	scopes := make([]ptrace.SpanSlice, o.Services)
	for s := 0; s < o.Services; s++ {
		rs := td.ResourceSpans().AppendEmpty()
		attrs := rs.Resource().Attributes()
		attrs.PutStr("service.name", fmt.Sprintf("service-%d", s))
		attrs.PutStr("service.version", "1.4.2")
		attrs.PutStr("k8s.namespace.name", "shop")
		attrs.PutStr("k8s.pod.name", fmt.Sprintf("service-%d-7c9d8f-%05d", s, rng.IntN(100000)))
		attrs.PutStr("host.name", fmt.Sprintf("node-%d", s%3))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		ss.Scope().SetVersion("0.60.0")
		scopes[s] = ss.Spans()
	}
	start := o.Start
	for t := 0; t < o.Traces; t++ {
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
		ids := make([]pcommon.SpanID, o.SpansPerTrace)
		traceStart := start.Add(time.Duration(t) * time.Millisecond)
		for i := 0; i < o.SpansPerTrace; i++ {
			binary.BigEndian.PutUint64(ids[i][:], rng.Uint64()|1)
			svc := 0
			if i > 0 {
				svc = rng.IntN(o.Services)
			}
			sp := scopes[svc].AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(ids[i])
			if i > 0 {
				sp.SetParentSpanID(ids[rng.IntN(i)])
				sp.SetKind(ptrace.SpanKindClient)
			} else {
				sp.SetKind(ptrace.SpanKindServer)
			}
			route := routes[rng.IntN(len(routes))]
			sp.SetName("GET " + route)
			st := traceStart.Add(time.Duration(i) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(st.Add(time.Duration(1+rng.IntN(500)) * time.Millisecond)))
			a := sp.Attributes()
			a.PutStr("http.request.method", "GET")
			a.PutStr("url.path", route)
			a.PutStr("http.route", route)
			code := int64(200)
			if rng.IntN(50) == 0 {
				code = 500
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("upstream returned 500")
				ev := sp.Events().AppendEmpty()
				ev.SetName("exception")
				ev.SetTimestamp(pcommon.NewTimestampFromTime(st))
				ev.Attributes().PutStr("exception.type", "io.EOF")
				ev.Attributes().PutStr("exception.message", "unexpected EOF while reading response body")
			}
			a.PutInt("http.response.status_code", code)
			a.PutStr("server.address", fmt.Sprintf("service-%d.shop.svc", svc))
			a.PutInt("server.port", 8080)
			if i%4 == 3 {
				a.PutStr("db.system", "postgresql")
				a.PutStr("db.statement", "SELECT id, name, price FROM products WHERE id = $1")
			}
			if i == 1 && t > 0 {
				l := sp.Links().AppendEmpty()
				l.SetTraceID(tid)
				l.SetSpanID(ids[0])
			}
		}
	}
	return td
}

var routes = []string{"/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz", "/api/orders"}

// Marshal returns the OTLP protobuf encoding of td.
func Marshal(td ptrace.Traces) []byte {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		panic(fmt.Sprintf("cannot marshal generated traces: %v", err)) // generated data is always valid
	}
	return b
}
