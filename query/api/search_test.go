package api

import (
	"context"
	"net/http"
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
	if res.code != 200 || string(res.body) != `{"metrics":{"completedJobs":1,"totalJobs":1}}` {
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
		{"tags=service.name%3Dfoo", 400, "tags search is not supported yet; use q"},
		{"limit=0", 400, "limit"},
		{"limit=-1", 400, "limit"},
		{"limit=x", 400, "limit"},
		{"limit=262145", 400, "limit"},
		{"spss=101", 400, "spss"},
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
