package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/query/search"
)

// tenantSearcher answers each tenant with its own traces, or fails for
// tenants in fail.
type tenantSearcher struct {
	traces map[string][]*search.Trace
	fail   map[string]error
}

func (s tenantSearcher) Search(_ context.Context, _ search.Request, tenant string) (*search.Response, error) {
	if err := s.fail[tenant]; err != nil {
		return nil, err
	}
	return &search.Response{Traces: s.traces[tenant], Metrics: &search.Metrics{InspectedSpans: uint64(10 * len(s.traces[tenant])), TotalJobs: 1, CompletedJobs: 1}}, nil
}

// TestMultiTenantSearchMerges checks the merge of a|b: most recent first,
// cut to the limit, metrics summed; and that one tenant's
// failure fails the query with its own status.
func TestMultiTenantSearchMerges(t *testing.T) {
	tr := func(id string, start uint64) *search.Trace {
		return &search.Trace{TraceID: id, StartTimeUnixNano: start}
	}
	s := tenantSearcher{
		traces: map[string][]*search.Trace{
			"a": {tr("a1", 50), tr("a2", 10)},
			"b": {tr("b1", 40), tr("b2", 30)},
		},
		fail: map[string]error{"bad": status.Error(codes.InvalidArgument, "bad query for this tenant")},
	}
	h, err := New(Options{Finder: &fakeFinder{}, Searcher: s, MultitenancyEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	res := do(t, h, http.MethodGet, "/api/search?q=%7B%7D&limit=3", "X-Scope-OrgID", "a|b|a")
	if res.code != http.StatusOK {
		t.Fatalf("%d %s", res.code, res.body)
	}
	var got search.Response
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tr := range got.Traces {
		ids = append(ids, tr.TraceID)
	}
	if want := []string{"a1", "b1", "b2"}; !slices.Equal(ids, want) {
		t.Fatalf("traces %v, want %v (most recent first, cut to limit=3)", ids, want)
	}
	if got.Metrics.InspectedSpans != 40 || got.Metrics.TotalJobs != 2 {
		t.Fatalf("metrics %+v, want the sum of both tenants", got.Metrics)
	}
	res = do(t, h, http.MethodGet, "/api/search?q=%7B%7D", "X-Scope-OrgID", "a|bad")
	if res.code != http.StatusBadRequest || !strings.Contains(string(res.body), "bad query for this tenant") {
		t.Fatalf("one failing tenant: %d %s", res.code, res.body)
	}

	off, err := New(Options{Finder: &fakeFinder{}, Searcher: s, MultitenancyEnabled: true, NoMultiTenantReads: true})
	if err != nil {
		t.Fatal(err)
	}
	if res := do(t, off, http.MethodGet, "/api/search?q=%7B%7D", "X-Scope-OrgID", "a|b"); res.code != http.StatusBadRequest {
		t.Fatalf("multi-tenant reads off: %d %s, want 400", res.code, res.body)
	}
}

func TestMergeTags(t *testing.T) {
	v2 := mergeTagNamesV2([]*search.TagNamesV2Response{
		{Scopes: []*search.TagScope{{Name: "span", Tags: []string{"x", "a"}}, {Name: "resource", Tags: []string{"service.name"}}}, Truncated: "cut at 10 bytes"},
		{Scopes: []*search.TagScope{{Name: "span", Tags: []string{"a", "b"}}}},
	})
	if len(v2.Scopes) != 2 || !slices.Equal(v2.Scopes[0].Tags, []string{"a", "b", "x"}) || v2.Truncated != "cut at 10 bytes" {
		t.Fatalf("tag names v2: %+v %+v", v2.Scopes[0], v2)
	}
	vals := mergeTagValuesV2([]*search.TagValuesV2Response{
		{TagValues: []search.TagValue{{Type: "string", Value: "b"}, {Type: "int", Value: "1"}}},
		{TagValues: []search.TagValue{{Type: "string", Value: "b"}, {Type: "string", Value: "a"}}},
	})
	if want := []search.TagValue{{Type: "int", Value: "1"}, {Type: "string", Value: "a"}, {Type: "string", Value: "b"}}; !slices.Equal(vals.TagValues, want) {
		t.Fatalf("tag values v2: %v, want %v", vals.TagValues, want)
	}
}
