package frontend

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
)

var base = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// blocksSearcher writes n blocks of spangen traces, block i starting i
// hours after base, and returns a searcher over them.
func blocksSearcher(t *testing.T, n int) *search.Searcher {
	t.Helper()
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	for i := range n {
		buf := block.NewBuffer(nil)
		var b otlpwire.Batch
		td := spangen.Generate(spangen.Options{Seed: uint64(i), Traces: 200, SpansPerTrace: 6, Start: base.Add(time.Duration(i) * time.Hour)})
		if err := b.Parse(spangen.Marshal(td)); err != nil {
			t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			t.Fatal(err)
		}
		meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 32 << 10})
		buf.Release()
		if err != nil {
			t.Fatal(err)
		}
		list.Add(meta)
	}
	s := search.New(nil, list, bkt)
	s.TargetBytesPerJob = 64 << 10 // several jobs per block
	return s
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.QueryEndCutoff = 0
	return cfg
}

func newFrontend(cfg Config, s *search.Searcher, q Querier) *Frontend {
	f := New(cfg, s, q, s.Finder(), prometheus.NewRegistry())
	f.now = func() time.Time { return base.Add(24 * time.Hour) }
	return f
}

func encode(t *testing.T, resp *search.Response) string {
	t.Helper()
	m := *resp.Metrics
	m.InspectedBytes = 0 // reads differ with what was cached
	r := *resp
	r.Metrics = &m
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The frontend answers the same over gRPC queriers as in process, and as
// the searcher alone.
func TestSearchOverGRPCMatchesInProcess(t *testing.T) {
	s := blocksSearcher(t, 3)
	runner := querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry())

	srv := grpc.NewServer()
	querier.RegisterJobService(srv, runner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cfg := testConfig()
	cfg.Search.ConcurrentJobs = 1 // without most_recent, which traces come first depends on job order
	local := newFrontend(cfg, s, runner)
	remote := newFrontend(cfg, s, querier.NewClient(conn))
	ctx := context.Background()
	start, end := base.Add(-time.Hour), base.Add(10*time.Hour)
	for _, q := range []string{
		`{ resource.service.name = "service-1" && status = error }`,
		`{ span.http.response.status_code >= 500 } >> { kind = client }`,
		`{ name = "GET /healthz" } | count() > 1 with (most_recent=true)`,
		`{ resource.service.name = "absent" }`,
	} {
		req := search.Request{Query: q, Limit: 5, Start: start, End: end}
		a, err := local.Search(ctx, req, "t")
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		b, err := remote.Search(ctx, req, "t")
		if err != nil {
			t.Fatalf("%s over gRPC: %v", q, err)
		}
		if encode(t, a) != encode(t, b) {
			t.Errorf("%s:\nin process %s\nover gRPC  %s", q, encode(t, a), encode(t, b))
		}
		if m := a.Metrics; m.TotalBlocks != 3 || m.TotalJobs < 6 || m.CompletedJobs == 0 || m.CompletedJobs > m.TotalJobs || m.TotalBlockBytes == 0 {
			t.Errorf("%s: metrics %+v", q, m)
		}
		if strings.Contains(q, "most_recent") {
			// The newest matches are in the newest block (spangen traces
			// of block i start i hours after base).
			want, err := s.Search(ctx, req, "t")
			if err != nil {
				t.Fatal(err)
			}
			if encode(t, want) != encode(t, a) || len(a.Traces) != 5 || a.Traces[0].StartTimeUnixNano < uint64(base.Add(2*time.Hour).UnixNano()) {
				t.Errorf("most_recent: got %s, want %s", encode(t, a), encode(t, want))
			}
		}
	}
	// Tenant comes through metadata: another tenant has nothing.
	resp, err := remote.Search(ctx, search.Request{Query: `{}`, Start: start, End: end}, "other")
	if err != nil || len(resp.Traces) != 0 {
		t.Fatalf("other tenant: %v %v", resp, err)
	}
}

// Without most_recent the search stops once it has limit traces.
func TestSearchStopsEarly(t *testing.T) {
	s := blocksSearcher(t, 3)
	for _, concurrency := range []int{1, DefaultConfig().Search.ConcurrentJobs} {
		cfg := testConfig()
		cfg.Search.ConcurrentJobs = concurrency
		f := newFrontend(cfg, s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
		resp, err := f.Search(context.Background(), search.Request{Query: `{ kind = server }`, Limit: 3, Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}, "t")
		if err != nil {
			t.Fatal(err)
		}
		// The first job (1 with concurrency 1, else at most the initial
		// ones) finds enough.
		if m := resp.Metrics; len(resp.Traces) != 3 || m.CompletedJobs < 1 || m.CompletedJobs > uint32(min(concurrency, initialJobs)) || m.TotalJobs < 6 {
			t.Fatalf("concurrency %d: %d traces, metrics %+v: want 3 traces after at most %d jobs", concurrency, len(resp.Traces), m, min(concurrency, initialJobs))
		}
	}
}

// Each limit fails the request with its config key in the message.
func TestLimits(t *testing.T) {
	s := blocksSearcher(t, 1)
	cfg := testConfig()
	cfg.MaxQueryExpressionSizeBytes = 64
	cfg.MaxQueryNestingDepth = 3
	cfg.Search.MaxResultLimit = 50
	cfg.Search.MaxSpansPerSpanSet = 10
	cfg.Search.MaxDuration = 48 * time.Hour
	f := newFrontend(cfg, s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	now := f.now()
	for _, tc := range []struct {
		req  search.Request
		code codes.Code
		key  string
	}{
		{search.Request{Query: `{ name = "` + strings.Repeat("x", 64) + `" }`}, codes.InvalidArgument, "query_frontend.max_query_expression_size_bytes"},
		{search.Request{Limit: 51}, codes.InvalidArgument, "query_frontend.search.max_result_limit"},
		{search.Request{SpansPerSpanSet: 11}, codes.InvalidArgument, "query_frontend.search.max_spans_per_span_set"},
		{search.Request{Start: now.Add(-49 * time.Hour), End: now}, codes.InvalidArgument, "query_frontend.search.max_duration"},
		{search.Request{Start: now.Add(-time.Hour)}, codes.InvalidArgument, "only one of start and end"},
		{search.Request{Query: `{ (((.a = 1))) }`}, codes.InvalidArgument, "query nests deeper than the limit of 3 levels (query_frontend.max_query_nesting_depth)"},
		{search.Request{Query: `{ name = `}, codes.InvalidArgument, "line 1, column 10"},
	} {
		_, err := f.Search(context.Background(), tc.req, "t")
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.key) {
			t.Errorf("%+v: got %v, want %s naming %s", tc.req, err, tc.code, tc.key)
		}
	}
	// Each limit refusal is counted under its key; bad input that is not
	// a limit is not.
	for _, key := range []string{"query_frontend.max_query_expression_size_bytes", "query_frontend.max_query_nesting_depth",
		"query_frontend.search.max_result_limit", "query_frontend.search.max_spans_per_span_set", "query_frontend.search.max_duration"} {
		if got := testutil.ToFloat64(f.refused.WithLabelValues(key)); got != 1 {
			t.Errorf("weft_query_frontend_limit_refusals_total{limit=%q} = %v, want 1", key, got)
		}
	}
	if n := testutil.CollectAndCount(f.refused); n != 5 {
		t.Errorf("%d limit labels counted, want 5", n)
	}
	// A depth raised past the parser's default (64) holds end to end: the
	// queriers parse without limits of their own.
	deep := testConfig()
	deep.MaxQueryNestingDepth = 100
	fd := newFrontend(deep, s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	q := "{ " + strings.Repeat("(", 79) + ".a = 1" + strings.Repeat(")", 79) + " }"
	if _, err := fd.Search(context.Background(), search.Request{Query: q}, "t"); err != nil {
		t.Errorf("query 80 deep with max_query_nesting_depth 100: %v", err)
	}

	// Defaults: limit, spss and the last query_backend_after.
	req, err := f.Normalize(search.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if req.Limit != 20 || req.SpansPerSpanSet != 3 || !req.End.Equal(now) || !req.Start.Equal(now.Add(-15*time.Minute)) {
		t.Fatalf("defaults: %+v", req)
	}
	f.cfg.QueryEndCutoff = 30 * time.Second
	if req, _ = f.Normalize(search.Request{Start: now.Add(-time.Hour), End: now.Add(time.Hour)}); !req.End.Equal(now.Add(-30 * time.Second)) {
		t.Fatalf("end not clamped to now - query_end_cutoff: %s", req.End)
	}
}

// blockingQuerier holds every job until released.
type blockingQuerier struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingQuerier) SearchJob(ctx context.Context, _ string, _ search.Job) (*search.JobResult, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return &search.JobResult{Metrics: search.Metrics{CompletedJobs: 1}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A tenant past max_outstanding_per_tenant gets ResourceExhausted; a
// search past its timeout gets DeadlineExceeded naming the key.
func TestOutstandingAndTimeout(t *testing.T) {
	s := blocksSearcher(t, 2)
	q := &blockingQuerier{started: make(chan struct{}, 100), release: make(chan struct{})}
	cfg := testConfig()
	cfg.MaxOutstandingPerTenant = 1
	f := newFrontend(cfg, s, q)
	req := search.Request{Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = f.Search(context.Background(), req, "t") })
	<-q.started
	_, err := f.Search(context.Background(), req, "t")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "query_frontend.max_outstanding_per_tenant") {
		t.Errorf("second search: %v", err)
	}
	if _, err := f.Search(context.Background(), req, "other"); status.Code(err) == codes.ResourceExhausted {
		t.Errorf("another tenant is limited too: %v", err)
	}
	close(q.release)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}

	cfg.Search.QueryTimeout = 50 * time.Millisecond
	slow := &blockingQuerier{started: make(chan struct{}, 100), release: make(chan struct{})}
	f = newFrontend(cfg, s, slow)
	_, err = f.Search(context.Background(), req, "t")
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "query_frontend.search.query_timeout") {
		t.Fatalf("timeout: %v", err)
	}
}

func TestNextWindow(t *testing.T) {
	for _, tc := range []struct{ window, completed, found, limit, max, want int }{
		{2, 1, 0, 20, 1000, 4},      // nothing found: double
		{512, 9, 0, 20, 1000, 1000}, // up to concurrent_jobs
		{2, 1, 0, 20, 1, 1},         // never above concurrent_jobs
		{2, 4, 2, 20, 1000, 37},     // 2 traces in 4 jobs: 36 more jobs for 18 traces
		{40, 10, 19, 20, 1000, 2},   // nearly there: the minimum
		{2, 2, 1, 20, 1, 1},
	} {
		if got := nextWindow(tc.window, tc.completed, tc.found, tc.limit, tc.max); got != tc.want {
			t.Errorf("nextWindow(%d, %d, %d, %d, %d) = %d, want %d", tc.window, tc.completed, tc.found, tc.limit, tc.max, got, tc.want)
		}
	}
}

// firstJobQuerier records the blocks of the jobs started before the first
// returned, and of every job run.
type firstJobQuerier struct {
	q                 Querier
	mu                sync.Mutex
	running, maxFirst int
	returned          bool
	first, all        []string
}

func (c *firstJobQuerier) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	c.mu.Lock()
	c.running++
	if !c.returned {
		c.maxFirst = max(c.maxFirst, c.running)
		c.first = append(c.first, job.BlockID)
	}
	c.all = append(c.all, job.BlockID)
	c.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // leave the frontend time to start more
	res, err := c.q.SearchJob(ctx, tenant, job)
	c.mu.Lock()
	c.running--
	c.returned = true
	c.mu.Unlock()
	return res, err
}

// With most_recent, the jobs of the newest block start first, alone: the
// newest block usually holds the result, and the jobs of older blocks
// would only take the cores; once they have returned, the jobs of blocks
// ending before the traces found are not run. Without it, the initial
// jobs start at once.
func TestMostRecentNewestBlockFirst(t *testing.T) {
	s := blocksSearcher(t, 3)
	ctx := context.Background()
	newest := s.Plan(search.Request{}, "t")[0].BlockID
	newestJobs := 0
	for _, j := range s.Plan(search.Request{}, "t") {
		if j.BlockID == newest {
			newestJobs++
		}
	}
	if newestJobs < 2 {
		t.Fatalf("the newest block has %d jobs, want several", newestJobs)
	}
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`{ kind = server } with (most_recent=true)`, newestJobs},
		{`{ kind = server }`, initialJobs},
	} {
		q := &firstJobQuerier{q: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry())}
		f := newFrontend(testConfig(), s, q)
		req := search.Request{Query: tc.q, Limit: 5, Start: base.Add(-time.Hour), End: base.Add(10 * time.Hour)}
		resp, err := f.Search(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if q.maxFirst != tc.want || len(resp.Traces) != 5 {
			t.Errorf("%s: %d jobs at once before the first returned, want %d; %d traces", tc.q, q.maxFirst, tc.want, len(resp.Traces))
		}
		if !strings.Contains(tc.q, "most_recent") {
			continue
		}
		for _, b := range q.all {
			if b != newest {
				t.Errorf("most_recent: ran a job of block %s, older than the newest %s whose traces are the most recent", b, newest)
			}
		}
		want, err := s.Search(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		// The same traces (the jobs run differ: not the metrics).
		a, _ := json.Marshal(resp.Traces)
		b, _ := json.Marshal(want.Traces)
		if string(a) != string(b) {
			t.Errorf("most_recent: got %s, want %s", a, b)
		}
	}
}
