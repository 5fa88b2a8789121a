package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/weftdb/weft/query/search"
)

// Traces pushed with the SDK are found by /api/search.
func TestEndToEndSearch(t *testing.T) {
	a := startWeft(t, nil)
	grpcExp, httpExp := exporters(t, a)
	sendTraces(t, grpcExp, "over-grpc", 5)
	sent := sendTraces(t, httpExp, "over-http", 5)
	want := map[string]bool{}
	for _, s := range sent {
		want[strings.TrimLeft(s.SpanContext.TraceID().String(), "0")] = true
	}

	q := url.QueryEscape(`{ resource.service.name = "over-http" }`)
	body := get(t, "http://"+a.HTTPAddr()+"/api/search?limit=100&q="+q, "", http.StatusOK)
	var resp search.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var got []string
	for _, tr := range resp.Traces {
		if !want[tr.TraceID] {
			t.Errorf("unexpected trace %s", tr.TraceID)
		}
		if tr.RootServiceName != "over-http" || !strings.HasPrefix(tr.RootTraceName, "GET /orders/") || tr.SpanSet == nil || tr.SpanSet.Matched != 2 {
			t.Errorf("trace %+v", tr)
		}
		got = append(got, tr.TraceID)
	}
	if len(got) != len(want) {
		t.Fatalf("found %d traces, want %d: %s", len(got), len(want), body)
	}
	if !sort.SliceIsSorted(resp.Traces, func(i, j int) bool { return resp.Traces[i].StartTimeUnixNano > resp.Traces[j].StartTimeUnixNano }) {
		t.Errorf("traces not sorted by start time descending")
	}
	get(t, "http://"+a.HTTPAddr()+"/api/search?q=%7B", "", http.StatusBadRequest)
	get(t, "http://"+a.HTTPAddr()+"/api/search?q=%7B%7D&tags=a%3Db", "", http.StatusBadRequest)
}
