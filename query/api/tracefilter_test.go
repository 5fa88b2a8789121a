package api

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/query/traceql"
)

// filterAPI serves testTrace with its own metrics registry.
func filterAPI(t *testing.T, limits traceql.Limits) (*handler, *fakeFinder) {
	t.Helper()
	finder := &fakeFinder{traces: map[[16]byte][]byte{testTraceID: mustMarshal(t, testTrace())}}
	h, err := New(Options{Finder: finder, Metrics: prometheus.NewRegistry(), TraceQLLimits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return h.(*handler), finder
}

// spanNames lists the spans of TracesData b as "service/scope/name",
// sorted.
func spanNames(t *testing.T, b []byte) []string {
	t.Helper()
	var td tracepb.TracesData
	if err := proto.Unmarshal(b, &td); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rs := range td.ResourceSpans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			if len(ss.Spans) == 0 {
				t.Fatalf("empty ScopeSpans of %s in the answer", svc)
			}
			for _, sp := range ss.Spans {
				out = append(out, svc+"/"+ss.GetScope().GetName()+"/"+sp.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The v2 q parameter keeps the spans its spanset filter matches, each with
// its resource and scope, and says PARTIAL when it left spans out; v1
// ignores it, as Tempo's does.
func TestTraceByIDV2Filter(t *testing.T) {
	h, _ := filterAPI(t, traceql.Limits{})
	whole := mustMarshal(t, testTrace())
	for _, c := range []struct {
		q    string
		want []string // nil: the whole trace, COMPLETE
	}{
		{`{ resource.service.name = "cart" }`, []string{"cart/cart.client/db", "cart/cart.client/reserve"}},
		{`{ status = error }`, []string{"frontend/my.library/GET /checkout"}},
		{`{ name = "db" || span.http.method = "GET" }`, []string{"cart/cart.client/db", "frontend/my.library/GET /checkout"}},
		{`{ kind = client && link.link.kind = "follows" }`, []string{"cart/cart.client/reserve"}},
		{`{ instrumentation:name = "cart.client" && duration > 500ms }`, []string{"cart/cart.client/reserve"}},
		{`{ childCount = 0 }`, []string{"cart/cart.client/db"}},
		{`{ .nothing = "here" }`, []string{}},
		{`{ }`, nil},
		{`{ duration > 0 } with (most_recent=true)`, nil},
	} {
		for _, accept := range []string{"application/protobuf", ""} {
			res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex+"?q="+url.QueryEscape(c.q), "Accept", accept)
			if res.code != http.StatusOK {
				t.Fatalf("q=%s: %d %s", c.q, res.code, res.body)
			}
			if accept == "" {
				body := string(res.body)
				if (c.want == nil) == strings.Contains(body, `"status":"PARTIAL"`) || (c.want != nil) != strings.Contains(body, filteredMessage) {
					t.Fatalf("q=%s JSON: %s", c.q, body)
				}
				continue
			}
			got := decodeV2(t, res.body)
			if c.want == nil {
				if got.status != 0 || got.message != "" || string(got.trace) != string(whole) {
					t.Fatalf("q=%s: status %d %q, %d bytes, want the whole trace", c.q, got.status, got.message, len(got.trace))
				}
				continue
			}
			wantMsg := fmt.Sprintf("%s (%d of 3 spans)", filteredMessage, len(c.want))
			if got.status != 1 || got.message != wantMsg {
				t.Fatalf("q=%s: status %d message %q, want PARTIAL %q", c.q, got.status, got.message, wantMsg)
			}
			if names := spanNames(t, got.trace); fmt.Sprint(names) != fmt.Sprint(c.want) {
				t.Fatalf("q=%s: spans %v, want %v", c.q, names, c.want)
			}
		}
	}
	// The spans kept are what was stored, resource and scope included.
	got := decodeV2(t, do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex+"?q="+url.QueryEscape(`{ name = "GET /checkout" }`), "Accept", "application/protobuf").body)
	want := &tracepb.TracesData{ResourceSpans: testTrace().ResourceSpans[:1]}
	var gotTD tracepb.TracesData
	if err := proto.Unmarshal(got.trace, &gotTD); err != nil || !proto.Equal(&gotTD, want) {
		t.Fatalf("filtered trace differs from the stored first ResourceSpans (%v):\n%v", err, &gotTD)
	}
	// v1 has no q.
	if res := do(t, h, http.MethodGet, "/api/traces/"+testTraceHex+"?q="+url.QueryEscape(`{ status = error }`), "Accept", "application/protobuf"); res.code != http.StatusOK || string(res.body) != string(whole) {
		t.Fatalf("v1 with q: %d, %d bytes", res.code, len(res.body))
	}
	// Not found stays an empty 200.
	if res := do(t, h, http.MethodGet, "/api/v2/traces/abc?q="+url.QueryEscape(`{ status = error }`)); res.code != http.StatusOK || string(res.body) != `{"trace":{},"metrics":{}}` {
		t.Fatalf("not found: %d %s", res.code, res.body)
	}
	if n := testutil.ToFloat64(h.filters.WithLabelValues(filterSubset)); n != 15 {
		t.Fatalf("subset filters = %v, want 15", n)
	}
	if n := testutil.ToFloat64(h.filters.WithLabelValues(filterWhole)); n != 4 {
		t.Fatalf("whole filters = %v, want 4", n)
	}
}

// A q that is not a single spanset filter, that does not parse, or that is
// over a query limit is a 400 naming the problem, before any look-up.
func TestTraceByIDV2FilterBadRequest(t *testing.T) {
	h, finder := filterAPI(t, traceql.Limits{MaxBytes: 64, MaxDepth: 3})
	for _, c := range []struct{ q, want string }{
		{`{ status = error } | count() > 1`, "invalid q: trace by ID takes a single spanset filter { ... }, not a pipeline of 2 stages"},
		{`{ kind = server } >> { kind = client }`, "invalid q: trace by ID takes a single spanset filter { ... }, not spanset operator >>"},
		{`{ .a = 1 } && { .b = 2 }`, "not spanset operator &&"},
		{`{ trace:rootName = "x" }`, "invalid q: trace-level intrinsic rootName (at line 1, column 3) is not supported by the trace by ID filter"},
		{`{ traceDuration > 1s }`, "trace-level intrinsic traceDuration"},
		{`{ .a = }`, "invalid q: parse error at line 1, column 8"},
		{`{ span.name = "` + strings.Repeat("x", 64) + `" }`, "query_frontend.max_query_expression_size_bytes"},
		{`{ ((((.a = 1)))) }`, "query_frontend.max_query_nesting_depth"},
		{`count_over_time()`, "invalid q"},
		{`{ .a = 1 } | rate()`, "invalid q: trace by ID takes a single spanset filter { ... }, not metrics function rate (at line 1, column 14)"},
	} {
		res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex+"?q="+url.QueryEscape(c.q))
		if res.code != http.StatusBadRequest || !strings.Contains(string(res.body), c.want) {
			t.Fatalf("q=%s: %d %q, want 400 with %q", c.q, res.code, res.body, c.want)
		}
	}
	if n := finder.callCount(); n != 0 {
		t.Fatalf("finder called %d times for bad filters", n)
	}
	if n := testutil.ToFloat64(h.filters.WithLabelValues(filterBadRequest)); n != 10 {
		t.Fatalf("bad_request filters = %v, want 10", n)
	}
}

// With a trace over max_bytes_per_trace, the filter runs on the part that
// fits, and the message names both.
func TestTraceByIDV2FilterTooLarge(t *testing.T) {
	td := testTrace()
	whole := mustMarshal(t, td)
	first := mustMarshal(t, &tracepb.TracesData{ResourceSpans: td.ResourceSpans[:1]})
	h, err := New(Options{Finder: &fakeFinder{traces: map[[16]byte][]byte{testTraceID: whole}},
		TenantMaxBytesPerTrace: func(string) int { return len(first) + 1 }})
	if err != nil {
		t.Fatal(err)
	}
	get := func(q string) v2Answer {
		t.Helper()
		res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex+"?q="+url.QueryEscape(q), "Accept", "application/protobuf")
		if res.code != http.StatusOK {
			t.Fatalf("q=%s: %d %s", q, res.code, res.body)
		}
		return decodeV2(t, res.body)
	}
	// The part that fits is the root span alone: it matches.
	got := get(`{ kind = server }`)
	if got.status != 1 || !strings.Contains(got.message, "max_bytes_per_trace") || strings.Contains(got.message, filteredMessage) || string(got.trace) != string(first) {
		t.Fatalf("status %d message %q", got.status, got.message)
	}
	// It does not match: nothing is left, and the message says both.
	got = get(`{ kind = client }`)
	if got.status != 1 || !strings.Contains(got.message, "max_bytes_per_trace") || !strings.HasSuffix(got.message, "; "+filteredMessage+" (0 of 1 spans)") || len(got.trace) != 0 {
		t.Fatalf("status %d message %q, %d trace bytes", got.status, got.message, len(got.trace))
	}
}
