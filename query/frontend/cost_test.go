package frontend

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/memlimit"
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

// countingQuerier runs jobs on q, each held at least hold, and records
// the most jobs in flight at once.
type countingQuerier struct {
	q        Querier
	hold     time.Duration
	mu       sync.Mutex
	cur, max int
}

func (c *countingQuerier) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	c.mu.Lock()
	c.cur++
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}()
	time.Sleep(c.hold)
	return c.q.SearchJob(ctx, tenant, job)
}

// Concurrent searches that each need more jobs than their share of
// max_outstanding_per_tenant all succeed: a search holds job slots only
// for the jobs it has in flight, not for all it planned (50 searches of
// 81 jobs each got 96% 429s with the default 2000), and the tenant's jobs
// in flight never pass the limit.
func TestOutstandingCountsJobsInFlight(t *testing.T) {
	s := blocksSearcher(t, 3)
	s.TargetBytesPerJob = 1 // a job per row group
	cfg := testConfig()
	cfg.MaxOutstandingPerTenant = 40
	cq := &countingQuerier{q: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()), hold: 2 * time.Millisecond}
	f := newFrontend(cfg, s, cq)
	req := search.Request{Query: `{ resource.service.name = "absent" }`, Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}
	if n := len(s.Plan(req, "t")); n < 20 {
		t.Fatalf("a search has %d jobs, want at least 20", n)
	}
	const searches = 20 // 20 × ≥20 jobs planned, 40 allowed outstanding
	start := make(chan struct{})
	errs := make(chan error, searches)
	var wg sync.WaitGroup
	for range searches {
		wg.Go(func() {
			<-start
			resp, err := f.Search(context.Background(), req, "t")
			if err == nil && resp.Metrics.CompletedJobs != resp.Metrics.TotalJobs {
				err = fmt.Errorf("%d of %d jobs completed", resp.Metrics.CompletedJobs, resp.Metrics.TotalJobs)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d concurrent searches failed", failed, searches)
	}
	if cq.max > cfg.MaxOutstandingPerTenant {
		t.Errorf("%d jobs in flight at once, more than max_outstanding_per_tenant %d", cq.max, cfg.MaxOutstandingPerTenant)
	}
	if len(f.outstanding) != 0 {
		t.Errorf("job slots left held: %v", f.outstanding)
	}
}

// budgetQuerier runs jobs on q and records the result budget of the
// searches whose jobs it ran.
type budgetQuerier struct {
	q       Querier
	mu      sync.Mutex
	budgets map[*search.ResultBudget]bool
}

func (b *budgetQuerier) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	b.mu.Lock()
	if rb := search.ResultBudgetFrom(ctx); rb != nil {
		b.budgets[rb] = true
	}
	b.mu.Unlock()
	return b.q.SearchJob(ctx, tenant, job)
}

// A search whose results would hold more than
// query_frontend.search.max_result_bytes is refused with 400 naming the
// key, counted, and the bytes accounted never pass the budget on the way;
// the same search within the budget answers.
func TestMaxResultBytes(t *testing.T) {
	s := blocksSearcher(t, 3) // 600 traces of 6 spans
	req := search.Request{Query: `{ } with (most_recent=true)`, Limit: search.MaxLimit, SpansPerSpanSet: search.MaxSpansPerSpanSet,
		Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}
	const key = "query_frontend.search.max_result_bytes"
	for _, concurrency := range []int{1, 1000} {
		cfg := testConfig()
		cfg.Search.ConcurrentJobs = concurrency
		cfg.Search.MaxResultBytes = 100 << 10
		bq := &budgetQuerier{q: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()), budgets: map[*search.ResultBudget]bool{}}
		f := newFrontend(cfg, s, bq)
		_, err := f.Search(context.Background(), req, "t")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "search results would hold more than 102400 bytes, the limit ("+key+")") {
			t.Fatalf("concurrency %d: %v, want InvalidArgument naming %s", concurrency, err, key)
		}
		if got := testutil.ToFloat64(f.refused.WithLabelValues(key)); got != 1 {
			t.Errorf("weft_query_frontend_limit_refusals_total{limit=%q} = %v, want 1", key, got)
		}
		if len(bq.budgets) != 1 {
			t.Fatalf("jobs ran with %d budgets, want the search's one", len(bq.budgets))
		}
		for b := range bq.budgets {
			if b.Peak() > b.Max() || b.Peak() < b.Max()/2 || !b.Exceeded() {
				t.Errorf("concurrency %d: budget %s: the peak must be near the budget, never above", concurrency, b)
			}
		}
	}
	// Within the budget (the default) the search answers every trace.
	bq := &budgetQuerier{q: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()), budgets: map[*search.ResultBudget]bool{}}
	f := newFrontend(testConfig(), s, bq)
	resp, err := f.Search(context.Background(), req, "t")
	if err != nil || len(resp.Traces) != 600 {
		t.Fatalf("default budget: %v, %d traces", err, len(resp.Traces))
	}
	for b := range bq.budgets {
		if b.Peak() < 300<<10 || b.Peak() > b.Max() {
			t.Errorf("default budget: %s, want a peak of at least 300 KiB accounted for 600 traces", b)
		}
	}
}

// A regular expression compiling to more instructions than
// query_frontend.max_query_regex_size is refused with 400 naming the key,
// counted, before it is compiled.
func TestRegexSizeLimit(t *testing.T) {
	s := blocksSearcher(t, 1)
	f := newFrontend(testConfig(), s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	const key = "query_frontend.max_query_regex_size"
	q := `{ span.http.route !~ "` + strings.Repeat("[a-z]{1000}", 30) + `" }`
	_, err := f.Search(context.Background(), search.Request{Query: q}, "t")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "more than the limit of 20000 ("+key+")") {
		t.Fatalf("%v, want InvalidArgument naming %s", err, key)
	}
	if got := testutil.ToFloat64(f.refused.WithLabelValues(key)); got != 1 {
		t.Errorf("weft_query_frontend_limit_refusals_total{limit=%q} = %v, want 1", key, got)
	}
	cfg := testConfig()
	cfg.MaxQueryRegexSize = 40000
	f = newFrontend(cfg, s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	if _, err := f.Search(context.Background(), search.Request{Query: q}, "t"); err != nil {
		t.Errorf("with max_query_regex_size 40000: %v", err)
	}
}

// While the process is above the memory limiter's threshold, a search is
// refused with 503 naming memory_limiter.limit_bytes, counted, and runs
// once memory is back.
func TestSearchWaitsForMemory(t *testing.T) {
	s := blocksSearcher(t, 1)
	f := newFrontend(testConfig(), s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	low := memlimit.New(memlimit.Config{LimitBytes: memlimit.MinLimitBytes, RefuseAboveRatio: 0.0001, CheckInterval: time.Second}, prometheus.NewRegistry())
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // Check sets the runtime's limit
	low.Check()
	f.SetMemoryLimiter(low)
	_, err := f.Search(context.Background(), search.Request{}, "t")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "memory_limiter.limit_bytes") {
		t.Fatalf("%v, want Unavailable naming memory_limiter.limit_bytes", err)
	}
	if got := testutil.ToFloat64(f.refused.WithLabelValues(MemoryLimiterKey)); got != 1 {
		t.Errorf("weft_query_frontend_limit_refusals_total{limit=%q} = %v, want 1", MemoryLimiterKey, got)
	}
	high := memlimit.New(memlimit.Config{LimitBytes: 1 << 40, RefuseAboveRatio: 1, CheckInterval: time.Second}, prometheus.NewRegistry())
	high.Check()
	f.SetMemoryLimiter(high)
	if _, err := f.Search(context.Background(), search.Request{}, "t"); err != nil {
		t.Fatal(err)
	}
}

// A search starting while the tenant's job slots are all held, some of
// them by searches beyond their first slot, waits for a slot instead of
// getting 429.
func TestSearchWaitsForJobSlot(t *testing.T) {
	s := blocksSearcher(t, 2)
	q := &blockingQuerier{started: make(chan struct{}, 100), release: make(chan struct{})}
	cfg := testConfig()
	cfg.MaxOutstandingPerTenant = 4
	f := newFrontend(cfg, s, q)
	req := search.Request{Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}
	errs := make(chan error, 4)
	run := func(jobs int) {
		go func() { _, err := f.Search(context.Background(), req, "t"); errs <- err }()
		for range jobs {
			<-q.started
		}
	}
	run(2) // A: its first slot and one more (the tenant holds under 3/4 of 4)
	run(1) // B: its first slot only
	run(1) // C: the last slot
	f.mu.Lock()
	held := f.outstanding["t"]
	f.mu.Unlock()
	if held != 4 {
		t.Fatalf("%d slots held, want 4", held)
	}
	go func() { _, err := f.Search(context.Background(), req, "t"); errs <- err }() // D waits
	select {
	case err := <-errs:
		t.Fatalf("a search returned while all were held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(q.release)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
