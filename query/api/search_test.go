package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/query/search"
)

type fakeSearcher struct {
	req    search.Request
	tenant string
	calls  int
	resp   *search.Response
	err    error
}

func (f *fakeSearcher) Search(_ context.Context, req search.Request, tenant string) (*search.Response, error) {
	f.calls++
	f.req, f.tenant = req, tenant
	if f.err != nil {
		return nil, f.err
	}
	if f.resp != nil {
		return f.resp, nil
	}
	return &search.Response{Metrics: &search.Metrics{TotalJobs: 1, CompletedJobs: 1}}, nil
}

func newSearchAPI(t *testing.T, s Searcher, multitenancy bool) http.Handler {
	t.Helper()
	h, err := New(Options{Finder: &fakeFinder{}, Searcher: s, MultitenancyEnabled: multitenancy})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSearchParams(t *testing.T) {
	f := &fakeSearcher{}
	h := newSearchAPI(t, f, true)
	res := do(t, h, "GET", `/api/search?q=%7B%20.a%20%3D%201%20%7D&limit=5&spss=7&start=100&end=200&minDuration=10ms&maxDuration=2s`, "X-Scope-OrgID", "acme")
	if res.code != 200 || string(res.body) != `{"traces":[],"metrics":{"completedJobs":1,"totalJobs":1}}` {
		t.Fatalf("got %d %s", res.code, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	want := search.Request{Query: "{ .a = 1 }", Limit: 5, SpansPerSpanSet: 7, Start: time.Unix(100, 0), End: time.Unix(200, 0),
		MinDuration: 10 * time.Millisecond, MaxDuration: 2 * time.Second}
	if f.tenant != "acme" || f.req.Query != want.Query || f.req.Limit != want.Limit || f.req.SpansPerSpanSet != want.SpansPerSpanSet ||
		!f.req.Start.Equal(want.Start) || !f.req.End.Equal(want.End) || f.req.MinDuration != want.MinDuration || f.req.MaxDuration != want.MaxDuration {
		t.Fatalf("request %+v for %q, want %+v", f.req, f.tenant, want)
	}
	// Absent parameters: defaults are the searcher's, the range unbounded.
	do(t, h, "GET", "/api/search", "X-Scope-OrgID", "acme")
	if f.req != (search.Request{}) {
		t.Fatalf("request without parameters: %+v", f.req)
	}
	// Tenant required with multi-tenancy.
	if res := do(t, h, "GET", "/api/search"); res.code != http.StatusUnauthorized {
		t.Fatalf("no tenant: %d %s", res.code, res.body)
	}
}

func TestSearchErrors(t *testing.T) {
	f := &fakeSearcher{}
	h := newSearchAPI(t, f, false)
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"tags=service.name%3Dfoo&q=%7B%7D", 400, "q and tags cannot be used together"},
		{"tags=a%3D1%20a%3D2", 400, `key "a" appears more than once`},
		{"tags=status.code%3Dbad", 400, "status.code"},
		{"tags=http.status_code%3Dx", 400, "http.status_code"},
		{"tags=a%3D%22unterminated", 400, "invalid tags"},
		{"limit=0", 400, "limit"},
		{"limit=-1", 400, "limit"},
		{"limit=x", 400, "limit"},
		{"start=100", 400, "only one of start and end"},
		{"since=x", 400, "since"},
		{"end=2026-13-01T00:00:00Z&start=1", 400, "end"},
		{"spss=x", 400, "spss"},
		{"start=x", 400, "start"},
		{"start=200&end=100", 400, "end"},
		{"minDuration=x", 400, "minDuration"},
		{"maxDuration=-1s", 400, "maxDuration"},
		{"minDuration=2s&maxDuration=1s", 400, "maxDuration"},
	} {
		res := do(t, h, "GET", "/api/search?"+tc.query)
		if res.code != tc.code || !strings.Contains(string(res.body), tc.msg) {
			t.Errorf("%s: got %d %q, want %d containing %q", tc.query, res.code, res.body, tc.code, tc.msg)
		}
	}
	if f.calls != 0 {
		t.Fatalf("searcher called %d times for bad requests", f.calls)
	}
	// Searcher errors keep their gRPC meaning.
	f.err = status.Error(codes.InvalidArgument, "bad query")
	if res := do(t, h, "GET", "/api/search?q=x"); res.code != 400 || !strings.Contains(string(res.body), "bad query") {
		t.Fatalf("InvalidArgument: %d %s", res.code, res.body)
	}
	f.err = context.DeadlineExceeded
	if res := do(t, h, "GET", "/api/search"); res.code != http.StatusGatewayTimeout {
		t.Fatalf("deadline: %d", res.code)
	}
	// A real searcher reports TraceQL parse errors as 400 with the message.
	h = newSearchAPI(t, search.New(nil, nil, nil), false)
	if res := do(t, h, "GET", "/api/search?q=%7B%20.a%20%3D%20%7D"); res.code != 400 || !strings.Contains(string(res.body), "line 1") {
		t.Fatalf("parse error: %d %s", res.code, res.body)
	}
	// Without a searcher the route is not implemented.
	h = newSearchAPI(t, nil, false)
	if res := do(t, h, "GET", "/api/search"); res.code != http.StatusNotImplemented {
		t.Fatalf("no searcher: %d", res.code)
	}
}

func TestSearchLegacyTags(t *testing.T) {
	f := &fakeSearcher{}
	h := newSearchAPI(t, f, false)
	for _, tc := range []struct{ tags, want string }{
		{`service.name=sh.op`, `{ resource.service.name =~ ".*sh\\.op.*" }`},
		{`name="GET /a" root.name=x root.service.name=y`, `{ name =~ ".*GET /a.*" } && { rootName =~ ".*x.*" } && { rootServiceName =~ ".*y.*" }`},
		{`http.url=/p?q status.code=2 http.status_code=500`, `{ span.http.url =~ ".*/p\\?q.*" } && { status = error } && { span.http.status_code = 500 }`},
		{`k8s.pod.name=p1 error=true`, `{ resource.k8s.pod.name =~ ".*p1.*" } && { (status = error || .error = true || .error = "true") }`},
		{`team="a \"b\""`, `{ ."team" = "a \"b\"" }`},
	} {
		res := do(t, h, "GET", "/api/search?tags="+url.QueryEscape(tc.tags))
		if res.code != 200 {
			t.Fatalf("%s: %d %s", tc.tags, res.code, res.body)
		}
		if f.req.Query != tc.want || !f.req.Legacy {
			t.Errorf("%s: query %s (legacy %v), want %s (legacy)", tc.tags, f.req.Query, f.req.Legacy, tc.want)
		}
	}
}

// TestSearchLegacyTagsEndToEnd runs translated tags through a real
// searcher.
func TestSearchLegacyTagsEndToEnd(t *testing.T) {
	h := newSearchAPI(t, search.New(liveOf(t, testTrace()), nil, nil), false)
	for _, tc := range []struct {
		tags  string
		found bool
	}{
		{`service.name=` + testServiceFragment, true},
		{`service.name=nope`, false},
		// Tags match anywhere in the trace, not all on one span.
		{`service.name=cart name="GET /checkout"`, true},
		{`service.name=cart status.code=error`, true},
		{`service.name=cart http.method=GET`, true},
		{`service.name=nope http.method=GET`, false},
		{`error=true`, true},
		{`status.code=2`, true},
		{`status.code=unset name=db`, true},
		{`status.code=ok name=reserve`, true},
		{`status.code=ok name=db service.name=front`, true},
	} {
		res := do(t, h, "GET", "/api/search?tags="+url.QueryEscape(tc.tags))
		if res.code != 200 {
			t.Fatalf("%s: %d %s", tc.tags, res.code, res.body)
		}
		if got := strings.Contains(string(res.body), `"traceID"`); got != tc.found {
			t.Errorf("%s: found %v: %s", tc.tags, got, res.body)
		}
		// The legacy search answers trace metadata only.
		if strings.Contains(string(res.body), `"spanSet`) {
			t.Errorf("%s: spansets in a legacy answer: %s", tc.tags, res.body)
		}
	}
}

// TestSearchLegacyDurations checks that minDuration and maxDuration apply
// to a legacy search only, in whole milliseconds, as in Tempo. The test
// trace lasts 698s exactly.
func TestSearchLegacyDurations(t *testing.T) {
	h := newSearchAPI(t, search.New(liveOf(t, testTrace()), nil, nil), false)
	for _, tc := range []struct {
		params string
		found  bool
	}{
		{"minDuration=698s", true},
		{"minDuration=698001ms", false},
		{"minDuration=698000999us", true}, // 698000ms
		{"maxDuration=697999999us", false},
		{"maxDuration=698s", true},
		{"tags=service.name%3Dcart&minDuration=699s", false},
		{"tags=service.name%3Dcart&maxDuration=699s", true},
		{"q=%7B%7D&minDuration=699s", true}, // ignored with q
		{"q=%7B%7D&maxDuration=1ms", true},
	} {
		res := do(t, h, "GET", "/api/search?"+tc.params)
		if res.code != 200 {
			t.Fatalf("%s: %d %s", tc.params, res.code, res.body)
		}
		if got := strings.Contains(string(res.body), `"traceID"`); got != tc.found {
			t.Errorf("%s: found %v: %s", tc.params, got, res.body)
		}
	}
}

func TestSearchProtobuf(t *testing.T) {
	s := "v"
	f := &fakeSearcher{resp: &search.Response{
		Traces:  []*search.Trace{{TraceID: "abc", RootServiceName: "svc", DurationMs: 3, SpanSets: []*search.SpanSet{{Matched: 1, Attributes: []*search.KeyValue{{Key: "k", Value: &search.AnyValue{StringValue: &s}}}}}}},
		Metrics: &search.Metrics{InspectedTraces: 1, TotalJobs: 1, CompletedJobs: 1},
	}}
	h := newSearchAPI(t, f, false)
	res := do(t, h, "GET", "/api/search", "Accept", "application/protobuf")
	if res.code != 200 || res.header.Get("Content-Type") != "application/protobuf" {
		t.Fatalf("%d %q", res.code, res.header.Get("Content-Type"))
	}
	got, err := search.UnmarshalResponse(res.body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Traces) != 1 || got.Traces[0].TraceID != "abc" || got.Traces[0].SpanSets[0].Attributes[0].Key != "k" || got.Metrics.InspectedTraces != 1 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestParseSearchTimes(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query      string
		start, end time.Time
	}{
		{"start=1764072000&end=1764072060", time.Unix(1764072000, 0), time.Unix(1764072060, 0)},
		{"start=1764072000000000000&end=1764072060500000000", time.Unix(1764072000, 0), time.Unix(1764072060, 5e8)},
		{"start=1764072000.25&end=1764072060.5", time.Unix(1764072000, 25e7), time.Unix(1764072060, 5e8)},
		{"start=2026-11-25T11:00:00Z&end=2026-11-25T11:30:00.5Z", now.Add(-time.Hour), now.Add(-30*time.Minute + 500*time.Millisecond)},
		{"since=30m&start=1&end=2", now.Add(-30 * time.Minute), now},
		{"", time.Time{}, time.Time{}},
	} {
		q, _ := url.ParseQuery(tc.query)
		start, end, err := parseSearchTimes(q, now)
		if err != nil || !start.Equal(tc.start) || !end.Equal(tc.end) {
			t.Errorf("%s: got %s %s %v, want %s %s", tc.query, start, end, err, tc.start, tc.end)
		}
	}
}
