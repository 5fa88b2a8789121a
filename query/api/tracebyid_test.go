package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/tenant"
)

// traceAPI returns a handler whose finder knows testTrace under testTraceID,
// and the trace's bytes.
func traceAPI(t *testing.T) (http.Handler, *fakeFinder, []byte) {
	t.Helper()
	b := mustMarshal(t, testTrace())
	finder := &fakeFinder{traces: map[[16]byte][]byte{testTraceID: b}}
	return newTestAPI(t, finder, false), finder, b
}

// decodeJSON decodes b keeping numbers as json.Number, so that a test can
// tell a JSON number from a JSON string.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, b)
	}
	return m
}

// at walks v along path: a string indexes an object, an int an array.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not an object: %v", path[:i], v)
			}
			if v, ok = m[p]; !ok {
				t.Fatalf("at %v: no key %q in %v", path[:i], p, m)
			}
		case int:
			a, ok := v.([]any)
			if !ok || p >= len(a) {
				t.Fatalf("at %v: no element %d in %v", path[:i], p, v)
			}
			v = a[p]
		}
	}
	return v
}

func keys(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %v", v)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func checkCompact(t *testing.T, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("JSON is not compact:\n%s", body)
	}
}

func TestTraceByIDV1JSON(t *testing.T) {
	h, finder, _ := traceAPI(t)
	want := testTrace()

	res := do(t, h, http.MethodGet, "/api/traces/"+testTraceHex)
	if res.code != http.StatusOK {
		t.Fatalf("code = %d, body %s", res.code, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if got := finder.lastCall(t); got != (findCall{tenant.Single, testTraceID, 0, 0}) {
		t.Fatalf("finder call = %+v", got)
	}
	checkCompact(t, res.body)

	m := decodeJSON(t, res.body)
	if ks := keys(t, m); !reflect.DeepEqual(ks, []string{"batches"}) {
		t.Fatalf("top-level keys = %v, want [batches]", ks)
	}
	if n := len(at(t, m, "batches").([]any)); n != 2 {
		t.Fatalf("%d batches, want 2", n)
	}
	check := func(path []any, want any) {
		t.Helper()
		if got := at(t, m, path...); !reflect.DeepEqual(got, want) {
			t.Fatalf("%v = %#v, want %#v", path, got, want)
		}
	}
	root := []any{"batches", 0, "scopeSpans", 0, "spans", 0}
	sub := func(base []any, rest ...any) []any { return append(append([]any{}, base...), rest...) }
	check([]any{"batches", 0, "resource", "attributes", 0}, map[string]any{"key": "service.name", "value": map[string]any{"stringValue": "frontend"}})
	check([]any{"batches", 0, "resource", "attributes", 1, "value", "intValue"}, "8")
	check([]any{"batches", 0, "scopeSpans", 0, "scope"}, map[string]any{"name": "my.library", "version": "1.0.0"})
	check([]any{"batches", 0, "schemaUrl"}, "https://opentelemetry.io/schemas/1.21.0")
	check(sub(root, "traceId"), b64(testTraceID[:]))
	check(sub(root, "spanId"), b64(rootSpanID))
	check(sub(root, "kind"), "SPAN_KIND_SERVER")
	check(sub(root, "startTimeUnixNano"), "1689969302000000000")
	check(sub(root, "endTimeUnixNano"), "1689970000000000000")
	check(sub(root, "status"), map[string]any{"code": "STATUS_CODE_ERROR", "message": "checkout failed"})
	check(sub(root, "attributes", 1, "value"), map[string]any{"intValue": "500"})
	check(sub(root, "attributes", 2, "value"), map[string]any{"boolValue": true})
	check(sub(root, "attributes", 3, "value"), map[string]any{"doubleValue": json.Number("0.25")})
	check(sub(root, "attributes", 4, "value"), map[string]any{"bytesValue": "AAEC/w=="})
	check(sub(root, "attributes", 5, "value", "arrayValue", "values", 1), map[string]any{"intValue": "-3"})
	check(sub(root, "attributes", 6, "value", "kvlistValue", "values", 0, "key"), "team")
	check(sub(root, "events", 0), map[string]any{
		"timeUnixNano": "1689969303000000000",
		"name":         "exception",
		"attributes":   []any{map[string]any{"key": "exception.message", "value": map[string]any{"stringValue": "out of stock"}}},
	})
	child := []any{"batches", 1, "scopeSpans", 0, "spans", 0}
	check(sub(child, "parentSpanId"), b64(rootSpanID))
	check(sub(child, "kind"), "SPAN_KIND_CLIENT")
	check(sub(child, "traceState"), "vendor=1")
	check(sub(child, "droppedAttributesCount"), json.Number("2"))
	check(sub(child, "links", 0, "traceId"), b64(linkTraceID))
	check(sub(child, "links", 0, "spanId"), b64(otherSpanID))
	check(sub(child, "status"), map[string]any{"code": "STATUS_CODE_OK"})
	check([]any{"batches", 1, "scopeSpans", 0, "spans", 1, "status"}, map[string]any{})
	if _, ok := at(t, m, child...).(map[string]any)["events"]; ok {
		t.Fatalf("empty events are not left out: %v", at(t, m, child...))
	}

	// Each batch decodes back to the ResourceSpans it came from.
	var v1 struct {
		Batches []json.RawMessage `json:"batches"`
	}
	if err := json.Unmarshal(res.body, &v1); err != nil {
		t.Fatal(err)
	}
	for i, raw := range v1.Batches {
		rs := &tracepb.ResourceSpans{}
		if err := protojson.Unmarshal(raw, rs); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !proto.Equal(rs, want.ResourceSpans[i]) {
			t.Fatalf("batch %d differs:\ngot  %v\nwant %v", i, rs, want.ResourceSpans[i])
		}
	}

	// Tempo's strict decoding of tempopb.Trace (field "batches") accepts it.
	schema := loadTempoSchema(t)
	tr := newDynamic(schema.traceV1)
	if err := protojson.Unmarshal(res.body, tr); err != nil {
		t.Fatalf("strict decoding as tempopb.Trace: %v", err)
	}
	if got := toTracesData(t, tr); !proto.Equal(got, want) {
		t.Fatalf("trace differs:\ngot  %v\nwant %v", got, want)
	}
}

func TestTraceByIDV2JSON(t *testing.T) {
	h, _, b := traceAPI(t)
	want := testTrace()

	res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "Accept", "application/json")
	if res.code != http.StatusOK {
		t.Fatalf("code = %d, body %s", res.code, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	checkCompact(t, res.body)

	m := decodeJSON(t, res.body)
	ks := keys(t, m)
	if len(ks) != 2 || m["trace"] == nil || m["metrics"] == nil {
		t.Fatalf("top-level keys = %v, want trace and metrics only", ks)
	}
	if n := len(at(t, m, "trace", "resourceSpans").([]any)); n != 2 {
		t.Fatalf("%d resourceSpans, want 2", n)
	}
	if got := at(t, m, "metrics"); !reflect.DeepEqual(got, map[string]any{"inspectedBytes": strconv.Itoa(len(b))}) {
		t.Fatalf("metrics = %v, want inspectedBytes %d as a string", got, len(b))
	}
	if got := at(t, m, "trace", "resourceSpans", 1, "scopeSpans", 0, "spans", 0, "kind"); got != "SPAN_KIND_CLIENT" {
		t.Fatalf("kind = %v", got)
	}

	schema := loadTempoSchema(t)
	resp := newDynamic(schema.response)
	if err := protojson.Unmarshal(res.body, resp); err != nil {
		t.Fatalf("strict decoding as tempopb.TraceByIDResponse: %v", err)
	}
	fields := schema.response.Fields()
	tr := resp.Get(fields.ByName("trace")).Message().Interface()
	if got := toTracesData(t, tr); !proto.Equal(got, want) {
		t.Fatalf("trace differs:\ngot  %v\nwant %v", got, want)
	}
	metrics := resp.Get(fields.ByName("metrics")).Message()
	if got := metrics.Get(metrics.Descriptor().Fields().ByName("inspectedBytes")).Uint(); got != uint64(len(b)) {
		t.Fatalf("inspectedBytes = %d, want %d", got, len(b))
	}
}

// TestTraceByIDJSONGolden pins the exact bytes for the example of Tempo's
// documentation.
func TestTraceByIDJSONGolden(t *testing.T) {
	td := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "my.service")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "my.library", Version: "1.0.0"},
			Spans: []*tracepb.Span{{
				TraceId:           testTraceID[:],
				SpanId:            rootSpanID,
				Name:              "I am a span!",
				Kind:              tracepb.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: 1689969302000000000,
				EndTimeUnixNano:   1689970000000000000,
				Attributes: []*commonpb.KeyValue{
					{Key: "my.span.attr", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}},
				},
				// No status: Tempo still writes "status":{}.
			}},
		}},
	}}}
	b := mustMarshal(t, td)
	h := newTestAPI(t, &fakeFinder{traces: map[[16]byte][]byte{testTraceID: b}}, false)

	const batch = `{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},` +
		`"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0"},` +
		`"spans":[{"traceId":"W47/95gDgQPSabYzgT/HAA==","spanId":"7uGbfsPBsQA=","name":"I am a span!",` +
		`"kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1689969302000000000","endTimeUnixNano":"1689970000000000000",` +
		`"attributes":[{"key":"my.span.attr","value":{"intValue":"42"}}],"status":{}}]}]}`
	f := func(path, want string) {
		t.Helper()
		res := do(t, h, http.MethodGet, path)
		if res.code != http.StatusOK || string(res.body) != want {
			t.Fatalf("GET %s = %d\n%s\nwant\n%s", path, res.code, res.body, want)
		}
	}
	f("/api/traces/"+testTraceHex, `{"batches":[`+batch+`]}`)
	f("/api/v2/traces/"+testTraceHex, `{"trace":{"resourceSpans":[`+batch+`]},"metrics":{"inspectedBytes":"`+strconv.Itoa(len(b))+`"}}`)
}

func TestTraceByIDProtobuf(t *testing.T) {
	h, _, b := traceAPI(t)
	want := testTrace()

	f := func(accept string) {
		t.Helper()
		res := do(t, h, http.MethodGet, "/api/traces/"+testTraceHex, "Accept", accept)
		if res.code != http.StatusOK {
			t.Fatalf("v1 code = %d, body %s", res.code, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/protobuf" {
			t.Fatalf("v1 Content-Type = %q", ct)
		}
		if !bytes.Equal(res.body, b) {
			t.Fatalf("v1 body is not the trace's bytes")
		}
		got := &tracepb.TracesData{}
		if err := proto.Unmarshal(res.body, got); err != nil || !proto.Equal(got, want) {
			t.Fatalf("v1 body decodes to %v (%v), want %v", got, err, want)
		}

		res = do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "Accept", accept)
		if res.code != http.StatusOK {
			t.Fatalf("v2 code = %d, body %s", res.code, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/protobuf" {
			t.Fatalf("v2 Content-Type = %q", ct)
		}
		if nums := wireFields(t, res.body); !reflect.DeepEqual(nums, []protowire.Number{1, 2}) {
			t.Fatalf("v2 fields = %v, want [1 2] (status and message left out)", nums)
		}
		schema := loadTempoSchema(t)
		resp := newDynamic(schema.response)
		if err := proto.Unmarshal(res.body, resp); err != nil {
			t.Fatalf("v2 body is not a TraceByIDResponse: %v", err)
		}
		fields := schema.response.Fields()
		if got := toTracesData(t, resp.Get(fields.ByName("trace")).Message().Interface()); !proto.Equal(got, want) {
			t.Fatalf("v2 trace differs:\ngot  %v\nwant %v", got, want)
		}
		metrics := resp.Get(fields.ByName("metrics")).Message()
		if got := metrics.Get(metrics.Descriptor().Fields().ByName("inspectedBytes")).Uint(); got != uint64(len(b)) {
			t.Fatalf("v2 inspectedBytes = %d, want %d", got, len(b))
		}
	}
	f("application/protobuf")
	f("application/protobuf, application/json;q=0.5")

	// Anything else is JSON.
	for _, accept := range []string{"", "application/json", "*/*", "text/html"} {
		res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "Accept", accept)
		if ct := res.header.Get("Content-Type"); ct != "application/json" || !json.Valid(res.body) {
			t.Fatalf("Accept %q: Content-Type %q, body %q", accept, ct, res.body)
		}
	}
}

func TestTraceByIDNotFound(t *testing.T) {
	unknown := "0123456789abcdef0123456789abcdef"
	empty, _ := ParseTraceID("e")
	h := newTestAPI(t, &fakeFinder{traces: map[[16]byte][]byte{empty: {}}}, false)

	for _, id := range []string{unknown, "e"} {
		for _, accept := range []string{"", "application/protobuf"} {
			res := do(t, h, http.MethodGet, "/api/traces/"+id, "Accept", accept)
			if res.code != http.StatusNotFound || len(res.body) != 0 {
				t.Fatalf("v1 %s Accept %q: %d %q, want 404 with empty body", id, accept, res.code, res.body)
			}
		}

		res := do(t, h, http.MethodGet, "/api/v2/traces/"+id)
		if res.code != http.StatusOK || string(res.body) != `{"trace":{},"metrics":{}}` {
			t.Fatalf("v2 %s: %d %s, want 200 with an empty trace", id, res.code, res.body)
		}
		schema := loadTempoSchema(t)
		if err := protojson.Unmarshal(res.body, newDynamic(schema.response)); err != nil {
			t.Fatalf("strict decoding: %v", err)
		}

		res = do(t, h, http.MethodGet, "/api/v2/traces/"+id, "Accept", "application/protobuf")
		if res.code != http.StatusOK {
			t.Fatalf("v2 protobuf %s: %d %q", id, res.code, res.body)
		}
		resp := newDynamic(schema.response)
		if err := proto.Unmarshal(res.body, resp); err != nil {
			t.Fatalf("v2 protobuf %s: %v", id, err)
		}
		tr := resp.Get(schema.response.Fields().ByName("trace")).Message()
		if n := tr.Get(tr.Descriptor().Fields().ByName("resourceSpans")).List().Len(); n != 0 {
			t.Fatalf("v2 protobuf %s: %d resourceSpans, want 0", id, n)
		}
	}
}

func TestTraceByIDMalformedID(t *testing.T) {
	finder := &fakeFinder{}
	h := newTestAPI(t, finder, false)
	f := func(id, wantBody string) {
		t.Helper()
		for _, prefix := range []string{"/api/traces/", "/api/v2/traces/"} {
			res := do(t, h, http.MethodGet, prefix+id)
			if res.code != http.StatusBadRequest {
				t.Fatalf("GET %s%s = %d %q, want 400", prefix, id, res.code, res.body)
			}
			if !strings.HasPrefix(string(res.body), wantBody) {
				t.Fatalf("GET %s%s body = %q, want it to start with %q", prefix, id, res.body, wantBody)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("Content-Type = %q", ct)
			}
		}
		if n := finder.callCount(); n != 0 {
			t.Fatalf("finder called %d times for a malformed ID", n)
		}
	}
	f("xyz", `invalid trace ID "xyz": character 'x' at position 1 is not a hex digit`)
	f("0x12", `invalid trace ID "0x12": character 'x' at position 2`)
	f("abcg", `invalid trace ID "abcg": character 'g' at position 4`)
	f(strings.Repeat("a", 33), `invalid trace ID "`+strings.Repeat("a", 33)+`": 33 hex digits, at most 32`)
	f("%20", `invalid trace ID " "`)
}

func TestTraceByIDShortIDPadded(t *testing.T) {
	finder := &fakeFinder{}
	h := newTestAPI(t, finder, false)
	f := func(id string, want [16]byte) {
		t.Helper()
		do(t, h, http.MethodGet, "/api/traces/"+id)
		if got := finder.lastCall(t).id; got != want {
			t.Fatalf("%s: finder got %x, want %x", id, got, want)
		}
	}
	f("abc", [16]byte{14: 0x0a, 15: 0xbc})
	f("1", [16]byte{15: 1})
	f("00ff", [16]byte{15: 0xff})
	f("5B8EFFF798038103D269B633813FC700", testTraceID)
	f(testTraceHex, testTraceID)
}

func TestTraceByIDTimeRange(t *testing.T) {
	finder := &fakeFinder{}
	h := newTestAPI(t, finder, false)
	success := func(query string, start, end int64) {
		t.Helper()
		res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex+"?"+query)
		if res.code != http.StatusOK {
			t.Fatalf("%s: %d %q", query, res.code, res.body)
		}
		if got := finder.lastCall(t); got.start != start || got.end != end {
			t.Fatalf("%s: finder got start=%d end=%d, want %d %d", query, got.start, got.end, start, end)
		}
	}
	success("", 0, 0)
	success("start=1700000000&end=1700000600", 1700000000, 1700000600)
	success("start=1700000000", 1700000000, 0)
	success("end=1700000600", 0, 1700000600)
	success("start=&end=", 0, 0)
	// 0 is unbounded, so end=0 never comes before start (as in Tempo).
	success("start=1700000000&end=0", 1700000000, 0)

	failure := func(query, wantBody string) {
		t.Helper()
		calls := finder.callCount()
		for _, prefix := range []string{"/api/traces/", "/api/v2/traces/"} {
			res := do(t, h, http.MethodGet, prefix+testTraceHex+"?"+query)
			if res.code != http.StatusBadRequest || !strings.HasPrefix(string(res.body), wantBody) {
				t.Fatalf("%s: %d %q, want 400 %q", query, res.code, res.body, wantBody)
			}
		}
		if finder.callCount() != calls {
			t.Fatalf("%s: finder called for a bad request", query)
		}
	}
	failure("start=-1", `invalid start "-1": must be a non-negative integer`)
	failure("end=-5", `invalid end "-5": must be a non-negative integer`)
	failure("start=abc", `invalid start "abc"`)
	failure("end=1.5", `invalid end "1.5"`)
	failure("start=2024-01-01T00:00:00Z", `invalid start "2024-01-01T00:00:00Z"`)
	failure("start=20&end=10", "invalid time range: end (10) must be after start (20)")
	failure("start=20&end=20", "invalid time range: end (20) must be after start (20)")
}

func TestTraceByIDTenant(t *testing.T) {
	finder := &fakeFinder{traces: map[[16]byte][]byte{testTraceID: mustMarshal(t, testTrace())}}
	multi := newTestAPI(t, finder, true)
	single := newTestAPI(t, finder, false)

	f := func(h http.Handler, header string, wantCode int, wantBody, wantTenant string) {
		t.Helper()
		for _, prefix := range []string{"/api/traces/", "/api/v2/traces/"} {
			calls := finder.callCount()
			var headers []string
			if header != "" {
				headers = []string{tenant.Header, header}
			}
			res := do(t, h, http.MethodGet, prefix+testTraceHex, headers...)
			if res.code != wantCode {
				t.Fatalf("%s with %q: %d %q, want %d", prefix, header, res.code, res.body, wantCode)
			}
			if wantBody != "" && !strings.HasPrefix(string(res.body), wantBody) {
				t.Fatalf("%s with %q: body %q, want %q", prefix, header, res.body, wantBody)
			}
			if wantTenant == "" {
				if finder.callCount() != calls {
					t.Fatalf("%s with %q: finder called", prefix, header)
				}
				continue
			}
			if got := finder.lastCall(t).tenant; got != wantTenant {
				t.Fatalf("%s with %q: finder got tenant %q, want %q", prefix, header, got, wantTenant)
			}
		}
	}
	f(multi, "", http.StatusUnauthorized, "no org id\n", "")
	f(multi, "a/b", http.StatusBadRequest, `invalid tenant ID "a/b"`, "")
	f(multi, "..", http.StatusBadRequest, "invalid tenant ID", "")
	f(multi, "team-a", http.StatusOK, "", "team-a")
	f(single, "", http.StatusOK, "", tenant.Single)
	f(single, "team-a", http.StatusOK, "", tenant.Single)
}

func TestTraceByIDFinderErrors(t *testing.T) {
	f := func(err error, wantCode int, wantBody string) {
		t.Helper()
		h := newTestAPI(t, &fakeFinder{err: err}, false)
		for _, prefix := range []string{"/api/traces/", "/api/v2/traces/"} {
			for _, accept := range []string{"", "application/protobuf"} {
				res := do(t, h, http.MethodGet, prefix+testTraceHex, "Accept", accept)
				if res.code != wantCode || string(res.body) != wantBody {
					t.Fatalf("%s (Accept %q) with %v: %d %q, want %d %q", prefix, accept, err, res.code, res.body, wantCode, wantBody)
				}
			}
		}
	}
	f(errors.New("cannot read block 42: disk on fire"), http.StatusInternalServerError, "cannot read block 42: disk on fire\n")
	f(status.Error(codes.Internal, "boom"), http.StatusInternalServerError, "boom\n")
	f(status.Error(codes.InvalidArgument, "bad range"), http.StatusBadRequest, "bad range\n")
	f(status.Error(codes.NotFound, "hidden"), http.StatusNotFound, "hidden\n")
	f(status.Error(codes.ResourceExhausted, "job queue full"), http.StatusTooManyRequests, "job queue full\n")
	f(status.Error(codes.Unavailable, "no querier"), http.StatusServiceUnavailable, "no querier\n")
	f(status.Error(codes.Canceled, "gone"), 499, "gone\n")
	f(status.Error(codes.DeadlineExceeded, "too slow"), http.StatusGatewayTimeout, "too slow\n")
	f(fmt.Errorf("cannot ask live-store: %w", status.Error(codes.Unavailable, "down")), http.StatusServiceUnavailable,
		"cannot ask live-store: rpc error: code = Unavailable desc = down\n")
	f(fmt.Errorf("cannot search: %w", context.Canceled), 499, "cannot search: context canceled\n")
	f(context.DeadlineExceeded, http.StatusGatewayTimeout, "context deadline exceeded\n")
}

func TestTraceByIDCorruptTrace(t *testing.T) {
	f := func(trace []byte, path, accept, wantBody string) {
		t.Helper()
		h := newTestAPI(t, &fakeFinder{traces: map[[16]byte][]byte{testTraceID: trace}}, false)
		res := do(t, h, http.MethodGet, path+testTraceHex, "Accept", accept)
		if res.code != http.StatusInternalServerError || !strings.HasPrefix(string(res.body), wantBody) {
			t.Fatalf("%x at %s (Accept %q): %d %q, want 500 %q", trace, path, accept, res.code, res.body, wantBody)
		}
	}
	truncated := []byte{0x0a, 0x05, 0x01}
	wrongType := []byte{0x08, 0x01}
	for _, path := range []string{"/api/traces/", "/api/v2/traces/"} {
		for _, accept := range []string{"", "application/protobuf"} {
			f(truncated, path, accept, "cannot decode trace "+testTraceHex+": ")
			f(wrongType, path, accept, "cannot decode trace "+testTraceHex+": field resource_spans has wire type 0")
		}
		// Sound framing around a broken ResourceSpans fails when decoded for JSON.
		f([]byte{0x0a, 0x02, 0xff, 0xff}, path, "", "cannot encode trace "+testTraceHex+": cannot unmarshal TracesData")
	}
}

// TestTraceByIDResponseEncoding covers the v2 fields the handler does not
// set yet (status PARTIAL and message) in both encodings.
func TestTraceByIDResponseEncoding(t *testing.T) {
	want := testTrace()
	r := traceByIDResponse{
		trace:          mustMarshal(t, want),
		inspectedBytes: 7,
		status:         partialStatusPartial,
		message:        `trace exceeds max_bytes_per_trace <5 MB> & was "truncated"`,
	}
	schema := loadTempoSchema(t)
	fields := schema.response.Fields()
	check := func(what string, resp proto.Message) {
		t.Helper()
		m := resp.ProtoReflect()
		if got := toTracesData(t, m.Get(fields.ByName("trace")).Message().Interface()); !proto.Equal(got, want) {
			t.Fatalf("%s: trace differs", what)
		}
		metrics := m.Get(fields.ByName("metrics")).Message()
		if got := metrics.Get(metrics.Descriptor().Fields().ByName("inspectedBytes")).Uint(); got != 7 {
			t.Fatalf("%s: inspectedBytes = %d", what, got)
		}
		if got := m.Get(fields.ByName("status")).Enum(); got != 1 {
			t.Fatalf("%s: status = %d, want PARTIAL", what, got)
		}
		if got := m.Get(fields.ByName("message")).String(); got != r.message {
			t.Fatalf("%s: message = %q", what, got)
		}
	}

	body, err := r.marshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	checkCompact(t, body)
	if !bytes.Contains(body, []byte(`,"status":"PARTIAL","message":"trace exceeds`)) {
		t.Fatalf("JSON lacks status and message:\n%s", body)
	}
	resp := newDynamic(schema.response)
	if err := protojson.Unmarshal(body, resp); err != nil {
		t.Fatalf("strict decoding: %v\n%s", err, body)
	}
	check("JSON", resp)

	b := r.appendProto(nil)
	if nums := wireFields(t, b); !reflect.DeepEqual(nums, []protowire.Number{1, 2, 3, 4}) {
		t.Fatalf("fields = %v, want [1 2 3 4]", nums)
	}
	resp = newDynamic(schema.response)
	if err := proto.Unmarshal(b, resp); err != nil {
		t.Fatal(err)
	}
	check("protobuf", resp)
}

// TestTraceTooLarge sets a tenant's max_bytes_per_trace between the size of
// the first ResourceSpans of the test trace and the whole: v1 answers 422
// naming the limit and its key, v2 the first ResourceSpans with status
// PARTIAL and the same message, and both are counted.
func TestTraceTooLarge(t *testing.T) {
	td := testTrace()
	whole := mustMarshal(t, td)
	first := mustMarshal(t, &tracepb.TracesData{ResourceSpans: td.ResourceSpans[:1]})
	limit := len(first) + 1
	reg := prometheus.NewRegistry()
	h, err := New(Options{Finder: &fakeFinder{traces: map[[16]byte][]byte{testTraceID: whole}}, Metrics: reg, MultitenancyEnabled: true,
		TenantMaxBytesPerTrace: func(tenant string) int {
			if tenant == "small" {
				return limit
			}
			return 0
		}})
	if err != nil {
		t.Fatal(err)
	}
	res := do(t, h, http.MethodGet, "/api/traces/"+testTraceHex, "X-Scope-OrgID", "small")
	if res.code != http.StatusUnprocessableEntity || !strings.Contains(string(res.body), "overrides.defaults.global.max_bytes_per_trace") ||
		!strings.Contains(string(res.body), fmt.Sprintf("limit of %d bytes", limit)) {
		t.Fatalf("v1: %d %s", res.code, res.body)
	}
	res = do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "X-Scope-OrgID", "small", "Accept", "application/protobuf")
	if res.code != http.StatusOK {
		t.Fatalf("v2: %d %s", res.code, res.body)
	}
	got := decodeV2(t, res.body)
	if got.status != 1 || !strings.Contains(got.message, "max_bytes_per_trace") || !bytes.Equal(got.trace, first) {
		t.Fatalf("v2: status %d message %q, %d trace bytes, want PARTIAL and the first %d", got.status, got.message, len(got.trace), len(first))
	}
	if res := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "X-Scope-OrgID", "big"); res.code != http.StatusOK || strings.Contains(string(res.body), "PARTIAL") {
		t.Fatalf("a tenant without the limit: %d %s", res.code, res.body)
	}
	if n := testutil.ToFloat64(h.(*handler).tooLarge.WithLabelValues("small")); n != 2 {
		t.Fatalf("weft_query_traces_too_large_total = %v, want 2", n)
	}
}

// v2Answer is a decoded binary tempopb.TraceByIDResponse.
type v2Answer struct {
	trace   []byte
	status  uint64
	message string
}

func decodeV2(t *testing.T, b []byte) v2Answer {
	t.Helper()
	var a v2Answer
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			a.trace, n = v, m
		case num == 3 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			a.status, n = v, m
		case num == 4 && typ == protowire.BytesType:
			v, m := protowire.ConsumeString(b)
			a.message, n = v, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
	}
	return a
}
