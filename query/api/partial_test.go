package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
)

const skippedBlock = "0f0e0d0c-0000-4000-8000-000000000001"

func noteSkip(ctx context.Context) {
	partial.FromContext(ctx).Add(partial.Skip{Tenant: "single-tenant", Block: skippedBlock, Reason: partial.ReasonDamaged,
		Error: "cannot read block " + skippedBlock + ": open single-tenant/" + skippedBlock + "/data.parquet: unexpected EOF"})
}

// skippingFinder answers like fakeFinder and notes a damaged block.
type skippingFinder struct{ fakeFinder }

func (f *skippingFinder) FindTraceByID(ctx context.Context, tenant string, id [16]byte, start, end int64) ([]byte, error) {
	noteSkip(ctx)
	return f.fakeFinder.FindTraceByID(ctx, tenant, id, start, end)
}

type skippingSearcher struct{}

func (skippingSearcher) Search(ctx context.Context, _ search.Request, _ string) (*search.Response, error) {
	noteSkip(ctx)
	return &search.Response{Traces: []*search.Trace{{TraceID: "abc", RootServiceName: "svc"}}, Metrics: &search.Metrics{CompletedJobs: 2, TotalJobs: 2}}, nil
}

type skippingTagger struct{ fakeTagger }

func (t *skippingTagger) TagValuesV2(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesV2Response, error) {
	noteSkip(ctx)
	return t.fakeTagger.TagValuesV2(ctx, req, tenant)
}

func (t *skippingTagger) TagValues(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesResponse, error) {
	noteSkip(ctx)
	return t.fakeTagger.TagValues(ctx, req, tenant)
}

func checkWarning(t *testing.T, what string, r response) {
	t.Helper()
	for _, w := range r.header.Values("Warning") {
		if strings.HasPrefix(w, `299 weft "partial answer: block `+skippedBlock) && strings.Contains(w, "data.parquet") {
			return
		}
	}
	t.Errorf("%s: Warning headers %q do not name the skipped block", what, r.header.Values("Warning"))
}

// A query that skipped a block says so: trace by ID v2 with status
// PARTIAL and a message naming the block, v1 with the trace found (or 404)
// and a Warning header, search and tag values with "status":"PARTIAL" and
// "message" added to their JSON; the skipped block is counted.
func TestPartialAnswers(t *testing.T) {
	finder := &skippingFinder{fakeFinder{traces: map[[16]byte][]byte{testTraceID: mustMarshal(t, testTrace())}}}
	reg := prometheus.NewRegistry()
	h, err := New(Options{Finder: finder, Searcher: skippingSearcher{}, Tagger: &skippingTagger{}, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}

	r := do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex)
	var v2 struct {
		Trace   json.RawMessage `json:"trace"`
		Status  string          `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(r.body, &v2); err != nil || r.code != http.StatusOK {
		t.Fatalf("v2: %d %v %s", r.code, err, r.body)
	}
	if v2.Status != "PARTIAL" || !strings.Contains(v2.Message, skippedBlock) || !strings.Contains(string(v2.Trace), "resourceSpans") {
		t.Fatalf("v2: status %q message %q trace %.80s", v2.Status, v2.Message, v2.Trace)
	}
	checkWarning(t, "v2", r)
	// Protobuf: field 3 (status) is PARTIAL, field 4 the message.
	r = do(t, h, http.MethodGet, "/api/v2/traces/"+testTraceHex, "Accept", contentTypeProtobuf)
	var gotStatus uint64
	var gotMsg string
	for b := r.body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		switch num {
		case 3:
			gotStatus, _ = protowire.ConsumeVarint(b)
		case 4:
			s, _ := protowire.ConsumeString(b)
			gotMsg = s
		}
		b = b[m:]
	}
	if gotStatus != uint64(partialStatusPartial) || !strings.Contains(gotMsg, skippedBlock) {
		t.Fatalf("v2 protobuf: status %d message %q", gotStatus, gotMsg)
	}

	r = do(t, h, http.MethodGet, "/api/traces/"+testTraceHex)
	if r.code != http.StatusOK || !strings.Contains(string(r.body), `"batches"`) {
		t.Fatalf("v1: %d %s", r.code, r.body)
	}
	checkWarning(t, "v1", r)
	r = do(t, h, http.MethodGet, "/api/traces/00000000000000000000000000000001")
	if r.code != http.StatusNotFound {
		t.Fatalf("v1 not found: %d", r.code)
	}
	checkWarning(t, "v1 not found", r)

	r = do(t, h, http.MethodGet, "/api/search?q=%7B%7D")
	var sr map[string]any
	if err := json.Unmarshal(r.body, &sr); err != nil || r.code != http.StatusOK {
		t.Fatalf("search: %d %v %s", r.code, err, r.body)
	}
	if sr["status"] != "PARTIAL" || !strings.Contains(sr["message"].(string), skippedBlock) || sr["traces"] == nil || sr["metrics"] == nil {
		t.Fatalf("search: %s", r.body)
	}
	checkWarning(t, "search", r)
	r = do(t, h, http.MethodGet, "/api/search?q=%7B%7D", "Accept", contentTypeProtobuf)
	checkWarning(t, "search protobuf", r)

	r = do(t, h, http.MethodGet, "/api/v2/search/tag/span.color/values")
	var tr map[string]any
	if err := json.Unmarshal(r.body, &tr); err != nil || tr["status"] != "PARTIAL" || tr["tagValues"] == nil {
		t.Fatalf("tag values: %d %v %s", r.code, err, r.body)
	}
	checkWarning(t, "tag values", r)
	// Cut by the byte cap and partial: both warnings.
	r = do(t, h, http.MethodGet, "/api/search/tag/color/values")
	if n := len(r.header.Values("Warning")); n != 2 {
		t.Fatalf("v1 tag values: %d Warning headers, want 2: %q", n, r.header.Values("Warning"))
	}

	// v2 ×2, v1 ×2, search ×2, tag values ×2: one skipped block each.
	if n := testutil.ToFloat64(h.(*handler).skips.skipped.WithLabelValues(partial.ReasonDamaged)); n != 8 {
		t.Fatalf("weft_query_blocks_skipped_total{reason=damaged} = %v, want 8", n)
	}
}

func TestWithPartialJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:          `{"status":"PARTIAL","message":"m \""}`,
		`{"a":1}`:     `{"a":1,"status":"PARTIAL","message":"m \""}`,
		"{\"a\":1}\n": `{"a":1,"status":"PARTIAL","message":"m \""}`,
	} {
		if got := string(withPartialJSON([]byte(in), `m "`)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
