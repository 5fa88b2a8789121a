package app

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/tenant"
)

// TestVultureReadBack does what tempo-vulture does: push traces, read each
// back by ID as protobuf (tempopb.Trace) and compare it with what was sent,
// span by span, with proto equality. The traces are pushed as the
// OpenTelemetry Collector's pdata encodes them (both as OTLP/HTTP protobuf
// and OTLP/JSON), which writes parent_span_id even when it is empty: a root
// span must come back with the field unset, not present and empty (gogo
// decodes the two differently, and vulture counts the trace as incorrect).
// It reads the traces from the live-store, then from blocks.
func TestVultureReadBack(t *testing.T) {
	dir := t.TempDir()
	paths := func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.BlockBuilder.WAL.Path = dir + "/wal"
	}
	a := startWeft(t, paths)
	_, httpAddr := a.OTLPAddrs()

	var want []*tracepb.ResourceSpans
	for i, contentType := range []string{"application/x-protobuf", "application/json"} {
		td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 4, SpansPerTrace: 5, Services: 2, Start: time.Now().Add(-time.Minute)})
		req := ptraceotlp.NewExportRequestFromTraces(td)
		pb, err := req.MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		if emptyParentFields(pb) == 0 {
			t.Fatal("pdata no longer writes an empty parent_span_id: the test does not test the case any more")
		}
		body := pb
		if contentType == "application/json" {
			if body, err = req.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
		if code, resp := postOTLP(t, "http://"+httpAddr+"/v1/traces", contentType, body, nil); code != http.StatusOK {
			t.Fatalf("push %s: %d %s", contentType, code, resp)
		}
		var sent tracepb.TracesData
		if err := proto.Unmarshal(pb, &sent); err != nil {
			t.Fatal(err)
		}
		want = append(want, sent.ResourceSpans...)
	}
	wantByTrace := vultureSpans(want)
	if len(wantByTrace) != 8 {
		t.Fatalf("sent %d traces, want 8", len(wantByTrace))
	}

	check := func(phase string) {
		t.Helper()
		for id, wantSpans := range wantByTrace {
			body := get(t, "http://"+a.HTTPAddr()+"/api/traces/"+id, "application/protobuf", http.StatusOK)
			if n := emptyParentFields(body); n > 0 {
				t.Errorf("%s: trace %s: %d spans with an empty parent_span_id field, want it unset", phase, id, n)
			}
			// The v2 answer carries the same trace (field 1 of TraceByIDResponse).
			v2 := get(t, "http://"+a.HTTPAddr()+"/api/v2/traces/"+id, "application/protobuf", http.StatusOK)
			for _, tr := range wireFields(v2, 1) {
				if n := emptyParentFields(tr); n > 0 {
					t.Errorf("%s: v2 trace %s: %d spans with an empty parent_span_id field, want it unset", phase, id, n)
				}
			}
			var got tracepb.TracesData
			if err := proto.Unmarshal(body, &got); err != nil {
				t.Fatalf("%s: trace %s: %v", phase, id, err)
			}
			gotSpans := vultureSpans(got.ResourceSpans)[id]
			if len(gotSpans) != len(wantSpans) {
				t.Fatalf("%s: trace %s: %d spans, want %d", phase, id, len(gotSpans), len(wantSpans))
			}
			for i := range wantSpans {
				if !proto.Equal(gotSpans[i], wantSpans[i]) {
					t.Fatalf("%s: trace %s span %d:\ngot  %v\nwant %v", phase, id, i, gotSpans[i], wantSpans[i])
				}
			}
		}
	}
	check("live-store")
	a = restartOnBlocks(t, a, paths, tenant.Single)
	check("blocks")
}

// vultureSpans splits resource spans by trace ID (hex) into one
// ResourceSpans per span, holding the span with its resource and scope,
// sorted by span ID: the order-free form vulture compares.
func vultureSpans(rss []*tracepb.ResourceSpans) map[string][]*tracepb.ResourceSpans {
	out := map[string][]*tracepb.ResourceSpans{}
	for _, rs := range rss {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				one := &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
					ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{sp}}}}
				id := hex.EncodeToString(sp.TraceId)
				out[id] = append(out[id], one)
			}
		}
	}
	for _, spans := range out {
		sort.Slice(spans, func(i, j int) bool {
			return bytes.Compare(spans[i].ScopeSpans[0].Spans[0].SpanId, spans[j].ScopeSpans[0].Spans[0].SpanId) < 0
		})
	}
	return out
}

// emptyParentFields counts the spans of OTLP TracesData b that carry a
// parent_span_id field of length zero.
func emptyParentFields(b []byte) int {
	n := 0
	for _, rs := range wireFields(b, 1) {
		for _, ss := range wireFields(rs, 2) {
			for _, sp := range wireFields(ss, 2) {
				for _, p := range wireFields(sp, 4) {
					if len(p) == 0 {
						n++
					}
				}
			}
		}
	}
	return n
}

// wireFields returns the values of the length-delimited fields numbered num
// of message b.
func wireFields(b []byte, num protowire.Number) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return out
		}
		b = b[l:]
		m := protowire.ConsumeFieldValue(n, typ, b)
		if m < 0 {
			return out
		}
		if n == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			out = append(out, v)
		}
		b = b[m:]
	}
	return out
}

// The v2 q filter, end to end: the spans it matches come back, from the
// live-store and from blocks, and a q over the configured query size limit
// is a 400 naming the limit's key.
func TestTraceByIDV2FilterEndToEnd(t *testing.T) {
	dir := t.TempDir()
	paths := func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.BlockBuilder.WAL.Path = dir + "/wal"
		c.QueryFrontend.MaxQueryExpressionSizeBytes = 100
	}
	a := startWeft(t, paths)
	_, httpExp := exporters(t, a)
	sent := sendTraces(t, httpExp, "svc-filter", 2)
	var child tracetest.SpanStub
	for _, s := range sent {
		if s.Parent.IsValid() {
			child = s
			break
		}
	}
	tid := child.SpanContext.TraceID()
	path := "/api/v2/traces/" + hex.EncodeToString(tid[:]) + "?q=" + url.QueryEscape(`{ kind = client && name = "SELECT orders" }`)
	check := func(phase string) {
		t.Helper()
		body := get(t, "http://"+a.HTTPAddr()+path, "application/protobuf", http.StatusOK)
		rs := decodeV2Proto(t, body)
		if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 1 {
			t.Fatalf("%s: %d resource spans, want the one child span: %v", phase, len(rs), rs)
		}
		sp := rs[0].ScopeSpans[0].Spans[0]
		sid := child.SpanContext.SpanID()
		if !bytes.Equal(sp.SpanId, sid[:]) || attrMap(rs[0].Resource.Attributes)["service.name"] != "svc-filter" || rs[0].ScopeSpans[0].Scope.GetName() != "weft.e2e" {
			t.Fatalf("%s: span %x of %v", phase, sp.SpanId, rs[0].Resource)
		}
		if !bytes.Contains(body, []byte("only a subset of spans matching the filter")) {
			t.Fatalf("%s: answer is not marked filtered", phase)
		}
	}
	check("live-store")
	a = restartOnBlocks(t, a, paths, tenant.Single)
	check("blocks")

	long := "/api/v2/traces/" + hex.EncodeToString(tid[:]) + "?q=" + url.QueryEscape(`{ name = "`+strings.Repeat("x", 100)+`" }`)
	if body := get(t, "http://"+a.HTTPAddr()+long, "", http.StatusBadRequest); !bytes.Contains(body, []byte("query_frontend.max_query_expression_size_bytes")) {
		t.Fatalf("over the size limit: %s", body)
	}
	if !strings.Contains(string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK)), `weft_query_trace_filters_total{result="bad_request"} 1`) {
		t.Fatal("the refused q is not counted")
	}
	get(t, "http://"+a.HTTPAddr()+"/api/traces/", "", http.StatusNotFound)
}
