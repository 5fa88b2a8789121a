package frontend

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
)

// A search run under search.WithProgress reports its answer so far while
// its jobs run: the completed jobs grow from report to report, every
// trace reported is in the final answer, and no report comes when the
// interval is longer than the search.
func TestSearchReportsProgress(t *testing.T) {
	s := blocksSearcher(t, 3)
	runner := querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry())
	cfg := testConfig()
	cfg.Search.ConcurrentJobs = 1
	f := newFrontend(cfg, s, runner)
	req := search.Request{Query: `{ resource.service.name = "service-1" }`, Limit: 1000,
		Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}

	var reports []*search.Response
	ctx := search.WithProgress(context.Background(), 0, func(r *search.Response) {
		m := *r.Metrics
		reports = append(reports, &search.Response{Traces: append([]*search.Trace(nil), r.Traces...), Metrics: &m})
	})
	final, err := f.Search(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) < 2 {
		t.Fatalf("got %d progress reports from %d jobs, want one per job", len(reports), final.Metrics.TotalJobs)
	}
	inFinal := map[string]bool{}
	for _, tr := range final.Traces {
		inFinal[tr.TraceID] = true
	}
	prev := uint32(0)
	for i, r := range reports {
		if r.Metrics.CompletedJobs <= prev && i > 0 {
			t.Errorf("report %d: completed jobs %d, not more than the report before (%d)", i, r.Metrics.CompletedJobs, prev)
		}
		prev = r.Metrics.CompletedJobs
		if r.Metrics.TotalJobs != final.Metrics.TotalJobs {
			t.Errorf("report %d: total jobs %d, want %d", i, r.Metrics.TotalJobs, final.Metrics.TotalJobs)
		}
		for _, tr := range r.Traces {
			if !inFinal[tr.TraceID] {
				t.Errorf("report %d: trace %s is not in the final answer", i, tr.TraceID)
			}
		}
	}
	if last := reports[len(reports)-1]; len(last.Traces) == 0 {
		t.Errorf("the last report holds no trace; the final answer holds %d", len(final.Traces))
	}

	calls := 0
	ctx = search.WithProgress(context.Background(), time.Hour, func(*search.Response) { calls++ })
	if _, err := f.Search(ctx, req, "t"); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("got %d reports with an interval of an hour, want none", calls)
	}
}
