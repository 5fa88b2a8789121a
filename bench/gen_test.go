package main

import (
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The same seed gives the same traces but for the time stamps; the tree
// respects -depth and every span has the asked-for attributes and events.
func TestGeneratorDeterministicAndShaped(t *testing.T) {
	o := genOptions{Seed: 7, Services: 12, SpansPerTrace: 25, Depth: 4, Attrs: 3, AttrBytes: 16, Events: 2, ErrorRate: 0.1, Batch: 100}
	a, b := newGenerator(o, 3), newGenerator(o, 3)
	for range 5 {
		ra, ida, na := a.next()
		rb, idb, _ := b.next()
		if na < o.Batch || na%o.SpansPerTrace != 0 {
			t.Fatalf("%d spans in a request, want whole traces of at least %d", na, o.Batch)
		}
		if len(ida) != len(idb) || ida[0] != idb[0] {
			t.Fatal("the same seed gave different trace IDs")
		}
		for _, r := range []*coltracepb.ExportTraceServiceRequest{ra, rb} {
			for _, rs := range r.ResourceSpans {
				for _, sp := range rs.ScopeSpans[0].Spans {
					sp.StartTimeUnixNano, sp.EndTimeUnixNano = 0, 0
					for _, ev := range sp.Events {
						ev.TimeUnixNano = 0
					}
				}
			}
		}
		if !proto.Equal(ra, rb) {
			t.Fatal("the same seed gave different requests")
		}
		parent := map[string]string{}
		for _, rs := range ra.ResourceSpans {
			for _, sp := range rs.ScopeSpans[0].Spans {
				parent[string(sp.SpanId)] = string(sp.ParentSpanId)
				if len(sp.Events) < o.Events {
					t.Fatalf("span %q has %d events", sp.Name, len(sp.Events))
				}
			}
		}
		for id := range parent {
			depth := 1
			for p := parent[id]; p != ""; p = parent[p] {
				depth++
			}
			if depth > o.Depth {
				t.Fatalf("a span is at depth %d, more than %d", depth, o.Depth)
			}
		}
	}
	_, id7, _ := newGenerator(o, 3).next()
	o.Seed = 8
	if _, id8, _ := newGenerator(o, 3).next(); id7[0] == id8[0] {
		t.Fatal("another seed gave the same trace ID")
	}
}
