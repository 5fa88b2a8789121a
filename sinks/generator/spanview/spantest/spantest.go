// Package spantest builds OTLP trace batches for the metrics-generator's
// tests with the OpenTelemetry Collector's pdata (ptrace), the same encoder
// SDK exporters' payloads are checked against.
package spantest

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Span describes one span. Trace, ID and Parent are small numbers turned
// into IDs; Parent 0 makes a root span.
type Span struct {
	Service  string
	Resource map[string]any // extra resource attributes
	Trace    uint64
	ID       uint64
	Parent   uint64
	Name     string
	Kind     ptrace.SpanKind
	Status   ptrace.StatusCode
	Message  string
	Start    time.Time
	Duration time.Duration
	Attrs    map[string]any
}

// Base is the start time used when Span.Start is zero.
var Base = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// TraceID is the ID Span.Trace n becomes.
func TraceID(n uint64) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], 0xabcd)
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// SpanID is the ID Span.ID n becomes.
func SpanID(n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// Traces builds the spans, one ResourceSpans per service (and resource
// attributes), in order of first appearance.
func Traces(spans ...Span) ptrace.Traces {
	td := ptrace.NewTraces()
	res := map[string]ptrace.SpanSlice{}
	for _, s := range spans {
		rk := fmt.Sprint(s.Service, s.Resource)
		ss, ok := res[rk]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			if s.Service != "" {
				rs.Resource().Attributes().PutStr("service.name", s.Service)
			}
			put(rs.Resource().Attributes(), s.Resource)
			sc := rs.ScopeSpans().AppendEmpty()
			sc.Scope().SetName("spantest")
			ss = sc.Spans()
			res[rk] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetTraceID(TraceID(s.Trace))
		sp.SetSpanID(SpanID(s.ID))
		if s.Parent != 0 {
			sp.SetParentSpanID(SpanID(s.Parent))
		}
		sp.SetName(s.Name)
		sp.SetKind(s.Kind)
		sp.Status().SetCode(s.Status)
		sp.Status().SetMessage(s.Message)
		start := s.Start
		if start.IsZero() {
			start = Base
		}
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.Duration)))
		put(sp.Attributes(), s.Attrs)
	}
	return td
}

// Marshal is Traces encoded as OTLP protobuf.
func Marshal(spans ...Span) []byte {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(Traces(spans...))
	if err != nil {
		panic(fmt.Sprintf("cannot marshal test traces: %v", err))
	}
	return b
}

func put(m pcommon.Map, attrs map[string]any) {
	for k, v := range attrs {
		if err := m.PutEmpty(k).FromRaw(v); err != nil {
			panic(fmt.Sprintf("attribute %s: %v", k, err))
		}
	}
}
