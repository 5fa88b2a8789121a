package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/search"
)

// testServiceFragment is part of the service.name of testTrace's first
// resource.
const testServiceFragment = "ronten"

// fakeLive is a live-store of one trace.
type fakeLive struct {
	id   [16]byte
	data []byte
}

// Scan hands over the trace whatever the selection: a selection is only
// what may match, the engine decides.
// EachPart gives the trace as one part that still changes (no memo).
func (l *fakeLive) EachPart(_ context.Context, _ string, fn func(spanpred.Part) bool) error {
	fn(openPart{l.data})
	return nil
}

// openPart is a spanpred.Part that still changes.
type openPart struct{ data []byte }

func (p openPart) EachData(fn func([]byte) bool)              { fn(p.data) }
func (openPart) Memo(string, func() (any, int64)) (any, bool) { return nil, false }

func (l *fakeLive) Scan(_ context.Context, _ string, _ spanpred.Selection, fn func([16]byte, []byte) bool) (int64, error) {
	fn(l.id, l.data)
	return int64(len(l.data)), nil
}

func (l *fakeLive) FindTraceByID(_ context.Context, _ string, id [16]byte, _, _ int64) ([]byte, error) {
	if id == l.id {
		return l.data, nil
	}
	return nil, nil
}

func liveOf(t *testing.T, td *tracepb.TracesData) *fakeLive {
	return &fakeLive{id: testTraceID, data: mustMarshal(t, td)}
}

// fakeTagger records the last request.
type fakeTagger struct {
	req    search.TagsRequest
	tenant string
	calls  []string
	err    error
}

func (f *fakeTagger) record(call string, req search.TagsRequest, tenant string) error {
	f.calls = append(f.calls, call)
	f.req, f.tenant = req, tenant
	return f.err
}

var tagMetrics = &search.MetadataMetrics{InspectedBytes: 630188, TotalJobs: 1, CompletedJobs: 1}

func (f *fakeTagger) TagNames(_ context.Context, req search.TagsRequest, tenant string) (*search.TagNamesResponse, error) {
	if err := f.record("names", req, tenant); err != nil {
		return nil, err
	}
	return &search.TagNamesResponse{TagNames: []string{"host.name", "service.name"}, Metrics: tagMetrics}, nil
}

func (f *fakeTagger) TagNamesV2(_ context.Context, req search.TagsRequest, tenant string) (*search.TagNamesV2Response, error) {
	if err := f.record("namesV2", req, tenant); err != nil {
		return nil, err
	}
	return &search.TagNamesV2Response{Scopes: []*search.TagScope{{Name: "resource", Tags: []string{"service.name"}}}, Metrics: tagMetrics}, nil
}

func (f *fakeTagger) TagValues(_ context.Context, req search.TagsRequest, tenant string) (*search.TagValuesResponse, error) {
	if err := f.record("values", req, tenant); err != nil {
		return nil, err
	}
	return &search.TagValuesResponse{TagValues: []string{"a", "b"}, Metrics: tagMetrics, Truncated: "response truncated at 10 bytes (x.y)"}, nil
}

func (f *fakeTagger) TagValuesV2(_ context.Context, req search.TagsRequest, tenant string) (*search.TagValuesV2Response, error) {
	if err := f.record("valuesV2", req, tenant); err != nil {
		return nil, err
	}
	return &search.TagValuesV2Response{TagValues: []search.TagValue{{Type: "int", Value: "200"}}, Metrics: tagMetrics}, nil
}

func newTagAPI(t *testing.T, tg Tagger, multitenancy bool) http.Handler {
	t.Helper()
	h, err := New(Options{Finder: &fakeFinder{}, Tagger: tg, MultitenancyEnabled: multitenancy, MaxBytesPerTagValuesQuery: 1234})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTagRoutes(t *testing.T) {
	f := &fakeTagger{}
	h := newTagAPI(t, f, true)
	for _, tc := range []struct {
		target, call, body, name string
	}{
		{"/api/search/tags?scope=span&limit=5&start=100&end=200", "names",
			`{"tagNames":["host.name","service.name"],"metrics":{"inspectedBytes":"630188","totalJobs":1,"completedJobs":1}}`, ""},
		{"/api/v2/search/tags?scope=none&q=%7B.a%3D1%7D", "namesV2",
			`{"scopes":[{"name":"resource","tags":["service.name"]}],"metrics":{"inspectedBytes":"630188","totalJobs":1,"completedJobs":1}}`, ""},
		{"/api/search/tag/service.name/values", "values",
			`{"tagValues":["a","b"],"metrics":{"inspectedBytes":"630188","totalJobs":1,"completedJobs":1}}`, "service.name"},
		{"/api/v2/search/tag/span.http.status_code/values?q=%7B%7D", "valuesV2",
			`{"tagValues":[{"type":"int","value":"200"}],"metrics":{"inspectedBytes":"630188","totalJobs":1,"completedJobs":1}}`, "span.http.status_code"},
		// Any character in a tag name, "/" and "%" included.
		{"/api/search/tag/a%2Fb%25c%20d/values/values", "values", "", "a/b%c d/values"},
	} {
		res := do(t, h, "GET", tc.target, "X-Scope-OrgID", "acme")
		if res.code != 200 || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", tc.target, res.code, res.body)
		}
		if tc.body != "" && string(res.body) != tc.body {
			t.Errorf("%s: body %s, want %s", tc.target, res.body, tc.body)
		}
		if last := f.calls[len(f.calls)-1]; last != tc.call || f.tenant != "acme" || f.req.Name != tc.name || f.req.MaxBytes != 1234 {
			t.Errorf("%s: call %s tenant %s req %+v", tc.target, last, f.tenant, f.req)
		}
	}
	res := do(t, h, "GET", "/api/search/tags?scope=span&limit=5&start=100&end=200", "X-Scope-OrgID", "acme")
	if f.req.Scope != "span" || f.req.Limit != 5 || !f.req.Start.Equal(time.Unix(100, 0)) || !f.req.End.Equal(time.Unix(200, 0)) || res.code != 200 {
		t.Errorf("v1 names request %+v", f.req)
	}
	do(t, h, "GET", "/api/search/tags?q=%7B.a%7D", "X-Scope-OrgID", "acme")
	if f.req.Query != "" {
		t.Errorf("v1 passed q on: %+v", f.req)
	}
	do(t, h, "GET", "/api/v2/search/tags?q=%7B.a%7D", "X-Scope-OrgID", "acme")
	if f.req.Query != "{.a}" {
		t.Errorf("v2 q: %+v", f.req)
	}
	// Truncation is told in a Warning header naming the limit, and
	// counted.
	cut := h.(*handler).tagsCut.WithLabelValues(routeTagValuesV1)
	before := testutil.ToFloat64(cut)
	res = do(t, h, "GET", "/api/search/tag/x/values", "X-Scope-OrgID", "acme")
	if w := res.header.Get("Warning"); !strings.Contains(w, "x.y") {
		t.Errorf("warning %q", w)
	}
	if got := testutil.ToFloat64(cut) - before; got != 1 {
		t.Errorf("weft_query_tag_answers_truncated_total{route=%q} grew by %v, want 1", routeTagValuesV1, got)
	}
}

func TestTagRoutesProtobuf(t *testing.T) {
	h := newTagAPI(t, &fakeTagger{}, false)
	for _, target := range []string{"/api/search/tags", "/api/v2/search/tags", "/api/search/tag/a/values", "/api/v2/search/tag/.a/values"} {
		res := do(t, h, "GET", target, "Accept", "application/protobuf")
		if res.code != 200 || res.header.Get("Content-Type") != "application/protobuf" {
			t.Fatalf("%s: %d %q", target, res.code, res.header.Get("Content-Type"))
		}
		nums := wireFields(t, res.body)
		if len(nums) < 2 || nums[0] != 1 || nums[len(nums)-1] != protowire.Number(2) {
			t.Errorf("%s: fields %v", target, nums)
		}
	}
}

func TestTagRoutesErrors(t *testing.T) {
	f := &fakeTagger{}
	h := newTagAPI(t, f, false)
	for _, tc := range []struct {
		target string
		code   int
		msg    string
	}{
		{"/api/search/tags?scope=none", 400, "invalid scope"},
		{"/api/search/tags?scope=bogus", 400, "invalid scope"},
		{"/api/v2/search/tags?scope=bogus", 400, "none"},
		{"/api/search/tags?limit=x", 400, "limit"},
		{"/api/search/tags?maxStaleValues=-1", 400, "maxStaleValues"},
		{"/api/search/tags?start=x&end=5", 400, "start"},
		{"/api/search/tags?start=5", 400, "only one of start and end provided"},
		{"/api/search/tags?start=9&end=5", 400, "end"},
		{"/api/v2/search/tag/x/valuez", 404, ""},
	} {
		res := do(t, h, "GET", tc.target)
		if res.code != tc.code || !strings.Contains(string(res.body), tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.target, res.code, res.body, tc.code, tc.msg)
		}
	}
	if len(f.calls) != 0 {
		t.Fatalf("tagger called for bad requests: %v", f.calls)
	}
	f.err = status.Error(codes.InvalidArgument, "invalid tag name \"x\"")
	if res := do(t, h, "GET", "/api/v2/search/tag/x/values"); res.code != 400 || !strings.Contains(string(res.body), "invalid tag name") {
		t.Errorf("InvalidArgument: %d %s", res.code, res.body)
	}
	if res := do(t, newTagAPI(t, nil, false), "GET", "/api/search/tags"); res.code != http.StatusNotImplemented {
		t.Errorf("no tagger: %d", res.code)
	}
}

// TestTagRoutesEndToEnd serves tag look-ups from a real searcher.
func TestTagRoutesEndToEnd(t *testing.T) {
	h := newTagAPI(t, search.New(liveOf(t, testTrace()), nil, nil), false)
	res := do(t, h, "GET", "/api/v2/search/tag/resource.service.name/values")
	var body struct {
		TagValues []search.TagValue `json:"tagValues"`
		Metrics   map[string]any    `json:"metrics"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil || res.code != 200 {
		t.Fatalf("%d %s %v", res.code, res.body, err)
	}
	if len(body.TagValues) != 2 || body.TagValues[0] != (search.TagValue{Type: "string", Value: "cart"}) ||
		body.TagValues[1] != (search.TagValue{Type: "string", Value: "frontend"}) || body.Metrics["inspectedBytes"] == nil {
		t.Errorf("values %s", res.body)
	}
	if res := do(t, h, "GET", "/api/v2/search/tag/service.name/values"); res.code != 400 || !strings.Contains(string(res.body), "invalid tag name") {
		t.Errorf("non-TraceQL name: %d %s", res.code, res.body)
	}
}

// TestTagBytesPerTenant checks that each tenant's own
// read.max_bytes_per_tag_values_query reaches the tagger, in a multi-tenant
// read too.
func TestTagBytesPerTenant(t *testing.T) {
	f := &fakeTagger{}
	h, err := New(Options{Finder: &fakeFinder{}, Tagger: f, MultitenancyEnabled: true, MaxBytesPerTagValuesQuery: 1234,
		TenantMaxBytesPerTagValuesQuery: func(tenant string) int {
			if tenant == "small" {
				return 10
			}
			return 1234
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res := do(t, h, "GET", "/api/search/tag/service.name/values", "X-Scope-OrgID", "small"); res.code != 200 || f.req.MaxBytes != 10 {
		t.Fatalf("small: %d, MaxBytes %d, want 10", res.code, f.req.MaxBytes)
	}
	if res := do(t, h, "GET", "/api/search/tag/service.name/values", "X-Scope-OrgID", "big"); res.code != 200 || f.req.MaxBytes != 1234 {
		t.Fatalf("big: %d, MaxBytes %d, want 1234", res.code, f.req.MaxBytes)
	}
}
