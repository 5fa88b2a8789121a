package frontend

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
)

// A pipeline of 6,000 stages (72 KB, within the size limit) is refused
// with 400 naming query_frontend.max_query_pipeline_stages, counted; a
// limit raised past the parser's default holds end to end.
func TestPipelineStagesLimit(t *testing.T) {
	s := blocksSearcher(t, 1)
	f := newFrontend(testConfig(), s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	q := "{ .a = 1 }" + strings.Repeat(" | { .a = 1 }", 5999)
	_, err := f.Search(context.Background(), search.Request{Query: q}, "t")
	const key = "query_frontend.max_query_pipeline_stages"
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "more than 64 pipeline stages") || !strings.Contains(err.Error(), key) {
		t.Fatalf("6,000 stages: %v, want InvalidArgument naming %s", err, key)
	}
	if got := testutil.ToFloat64(f.refused.WithLabelValues(key)); got != 1 {
		t.Errorf("weft_query_frontend_limit_refusals_total{limit=%q} = %v, want 1", key, got)
	}
	cfg := testConfig()
	cfg.MaxQueryPipelineStages = 100
	f = newFrontend(cfg, s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	q = "{ .a = 1 }" + strings.Repeat(" | { .a = 1 }", 99)
	if _, err := f.Search(context.Background(), search.Request{Query: q}, "t"); err != nil {
		t.Errorf("100 stages with max_query_pipeline_stages 100: %v", err)
	}
}
