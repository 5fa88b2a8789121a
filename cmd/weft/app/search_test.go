package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/internal/tenant"
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

// Traces pushed with the SDK are found by q= and by tags= searches, with
// the right spansets and metadata, both while they are recent (live-store)
// and after a restart, when they are only in blocks.
func TestEndToEndSearchRecentAndBlocks(t *testing.T) {
	dir := t.TempDir()
	paths := func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.BlockBuilder.WAL.Path = dir + "/wal"
	}
	a := startWeft(t, paths)
	_, httpExp := exporters(t, a)
	sent := sendTraces(t, httpExp, "svc-e2e", 6)

	// What the error traces must look like: traces 0 and 3 (every third
	// child span has status error).
	type want struct{ root, child tracetest.SpanStub }
	wants := map[string]want{}
	for _, s := range sent {
		id := strings.TrimLeft(s.SpanContext.TraceID().String(), "0")
		w := wants[id]
		if s.Parent.IsValid() {
			w.child = s
		} else {
			w.root = s
		}
		wants[id] = w
	}
	check := func(t *testing.T, phase, query string, blocks bool) {
		t.Helper()
		body := get(t, "http://"+a.HTTPAddr()+"/api/search?"+query, "", http.StatusOK)
		var resp search.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(resp.Traces) != 2 {
			t.Fatalf("%s %s: %d traces, want 2: %s", phase, query, len(resp.Traces), body)
		}
		for _, tr := range resp.Traces {
			w, ok := wants[tr.TraceID]
			if !ok || w.child.Status.Code != otelcodes.Error {
				t.Fatalf("%s %s: unexpected trace %s", phase, query, tr.TraceID)
			}
			if tr.RootServiceName != "svc-e2e" || tr.RootTraceName != w.root.Name || tr.DurationMs != 10 ||
				tr.StartTimeUnixNano != uint64(w.root.StartTime.UnixNano()) {
				t.Errorf("%s %s: trace metadata %+v", phase, query, tr)
			}
			if st := tr.ServiceStats["svc-e2e"]; st == nil || st.SpanCount != 2 || st.ErrorCount != 1 || len(tr.ServiceStats) != 1 {
				t.Errorf("%s %s: serviceStats %+v", phase, query, tr.ServiceStats)
			}
			if strings.HasPrefix(query, "tags=") { // legacy search: metadata only
				if tr.SpanSet != nil || len(tr.SpanSets) != 0 {
					t.Errorf("%s %s: spansets in a legacy answer", phase, query)
				}
				continue
			}
			ss := tr.SpanSet
			if ss == nil || ss.Matched != 1 || len(ss.Spans) != 1 || len(tr.SpanSets) != 1 {
				t.Fatalf("%s %s: spanset %+v", phase, query, ss)
			}
			sp := ss.Spans[0]
			if sp.SpanID != w.child.SpanContext.SpanID().String() || sp.Name != "" || // the queries do not read name
				sp.DurationNanos != uint64(w.child.EndTime.Sub(w.child.StartTime)) || sp.StartTimeUnixNano != uint64(w.child.StartTime.UnixNano()) {
				t.Errorf("%s %s: span %+v", phase, query, sp)
			}
			attrs := map[string]string{}
			for _, kv := range sp.Attributes {
				if kv.Value != nil && kv.Value.StringValue != nil {
					attrs[kv.Key] = *kv.Value.StringValue
				}
			}
			if attrs["status"] != "error" {
				t.Errorf("%s %s: span attributes %v, want status=error", phase, query, attrs)
			}
		}
		m := resp.Metrics
		if m.InspectedSpans == 0 || m.CompletedJobs == 0 || m.TotalJobs < m.CompletedJobs {
			t.Errorf("%s %s: metrics %+v", phase, query, m)
		}
		if blocks && (m.TotalBlocks == 0 || m.TotalBlockBytes == 0 || m.InspectedBytes == 0) {
			t.Errorf("%s %s: metrics %+v, want blocks read", phase, query, m)
		}
	}
	queries := []string{
		"q=" + url.QueryEscape(`{ resource.service.name = "svc-e2e" && status = error }`),
		"tags=" + url.QueryEscape(`service.name=svc-e2e status.code=error`),
		"q=" + url.QueryEscape(`{ kind = server } > { status = error }`) + "&spss=1",
	}
	for _, q := range queries {
		check(t, "recent", q, false)
	}

	a = restartOnBlocks(t, a, paths, tenant.Single)
	n := 0
	if _, err := a.stores.Scan(context.Background(), tenant.Single, spanpred.Selection{}, func([16]byte, []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("live-store holds %d traces after restart, want 0", n)
	}
	for _, q := range queries {
		check(t, "blocks", q, true)
	}
}

// restartOnBlocks stops a and starts weft again with the same config
// (mutate must keep the data directories): the live-store starts empty and
// the block-builder replays its WAL into blocks. It waits until each of
// tenants has a block.
func restartOnBlocks(t *testing.T, a *App, mutate func(*config.Config), tenants ...string) *App {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a = startWeft(t, mutate)
	deadline := time.Now().Add(10 * time.Second)
	for _, ten := range tenants {
		for a.blocks.Count(ten) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if a.blocks.Count(ten) == 0 {
			t.Fatalf("no block of tenant %q after the restart", ten)
		}
	}
	return a
}
