// Package frontend is the query-frontend: it takes a search, applies the
// query limits and Tempo's defaults, cuts it into jobs (the live-stores,
// then ranges of row groups of each block, newest block first), runs the
// jobs on queriers with bounded concurrency per search and per tenant,
// merges their results, stops as soon as it has enough and fills the
// response metrics.
//
// Queriers are reached through the Querier interface: in process under
// -target=all, over gRPC (query/querier.Client) when the frontend runs
// apart.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// Querier runs search jobs. SearchJob runs one job for tenant and returns
// what it found; it fails with an InvalidArgument status for a bad
// request. It must be safe for concurrent use.
type Querier interface {
	SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error)
}

// Planner cuts a search into jobs (search.Searcher.Plan).
type Planner interface {
	Plan(req search.Request, tenant string) []search.Job
}

// MemoryLimiter says whether the process has memory for one more query
// (internal/memlimit.Limiter): AdmitQuery returns nil, or an Unavailable
// status naming the budget. It must be safe for concurrent use.
type MemoryLimiter interface {
	AdmitQuery() error
}

// MemoryLimiterKey labels the searches refused for the process's memory
// in weft_query_frontend_limit_refusals_total.
const MemoryLimiterKey = "memory_limiter.limit_bytes"

// Frontend is the query-frontend.
type Frontend struct {
	cfg     Config
	planner Planner
	querier Querier
	finder  search.Finder
	now     func() time.Time
	memory  MemoryLimiter // nil: every search starts
	metrics *metricsState // nil: no metrics queries (SetMetrics)

	mu          sync.Mutex
	outstanding map[string]int // jobs queued or running, per tenant
	searching   map[string]int // searches holding their first slot, per tenant
	freed       chan struct{}  // closed (and replaced) when slots are given back

	searches *prometheus.CounterVec
	jobs     *prometheus.CounterVec
	latency  prometheus.Histogram
	refused  *prometheus.CounterVec
}

// New returns a frontend running the jobs planner cuts on q and reading
// whole traces (to complete the traces it returns) with finder.
func New(cfg Config, planner Planner, q Querier, finder search.Finder, reg prometheus.Registerer) *Frontend {
	return &Frontend{
		cfg: cfg, planner: planner, querier: q, finder: finder, now: time.Now,
		outstanding: map[string]int{}, searching: map[string]int{}, freed: make(chan struct{}),
		searches: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_frontend_searches_total",
			Help: "Searches by result: ok, bad_request, limited (429), timeout, canceled, error.",
		}, []string{"result"})),
		jobs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_frontend_search_jobs_total",
			Help: "Search jobs by result: completed (block skipped or not), skipped (the search had enough, or object storage failed), failed.",
		}, []string{"result"})),
		latency: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_query_frontend_search_duration_seconds",
			Help:    "Time to answer a search.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		})),
		refused: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_frontend_limit_refusals_total",
			Help: "Searches refused because they went over a query limit (their size, their cost, the memory their results hold: 400) or the process was short of memory (memory_limiter.limit_bytes: 503), by the limit's config key.",
		}, []string{"limit"})),
	}
}

// SetMemoryLimiter makes searches start only while m admits them; a
// search refused gets 503.
func (f *Frontend) SetMemoryLimiter(m MemoryLimiter) { f.memory = m }

// limitErr is the InvalidArgument status of a bad request.
func limitErr(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// refuse counts a search refused by the limit with config key key and
// returns its InvalidArgument status, whose message should name key.
func (f *Frontend) refuse(key, format string, args ...any) error {
	f.refused.WithLabelValues(key).Inc()
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// parseLimits are the TraceQL limits of the config.
func (f *Frontend) parseLimits() traceql.Limits {
	return traceql.Limits{MaxBytes: f.cfg.MaxQueryExpressionSizeBytes, MaxDepth: f.cfg.MaxQueryNestingDepth, MaxStages: f.cfg.MaxQueryPipelineStages,
		MaxRegexSize: f.cfg.MaxQueryRegexSize}
}

// Normalize applies the limits and defaults to req: limit and spss
// defaults and maxima, the query size, the time range (absent → the last
// query_backend_after; end clamped to now − query_end_cutoff; longer than
// max_duration → error). Errors are InvalidArgument statuses naming the
// limit and its config key.
func (f *Frontend) Normalize(req search.Request) (search.Request, error) {
	s := &f.cfg.Search
	if n := len(req.Query); n > f.cfg.MaxQueryExpressionSizeBytes {
		return req, f.refuse(traceql.LimitMaxBytes, "query is %d bytes, more than the limit of %d bytes (%s)", n, f.cfg.MaxQueryExpressionSizeBytes, traceql.LimitMaxBytes)
	}
	// The nesting, stage and regular expression limits, here where their
	// config is; the queriers parse again without limits of their own.
	if req.Query != "" {
		if _, err := traceql.ParseWithLimits(req.Query, f.parseLimits()); err != nil {
			var pe *traceql.ParseError
			if errors.As(err, &pe) && pe.Limit != "" {
				return req, f.refuse(pe.Limit, "%s", err)
			}
			return req, limitErr("%s", err)
		}
	}
	switch {
	case req.Limit < 0:
		return req, limitErr("invalid limit %d: must be positive", req.Limit)
	case req.Limit == 0:
		req.Limit = s.DefaultResultLimit
	case req.Limit > s.MaxResultLimit:
		return req, f.refuse("query_frontend.search.max_result_limit", "limit %d is more than the maximum of %d (query_frontend.search.max_result_limit)", req.Limit, s.MaxResultLimit)
	}
	switch {
	case req.SpansPerSpanSet < 0:
		return req, limitErr("invalid spss %d: must be positive", req.SpansPerSpanSet)
	case req.SpansPerSpanSet == 0:
		req.SpansPerSpanSet = s.DefaultSpansPerSpanSet
	case req.SpansPerSpanSet > s.MaxSpansPerSpanSet:
		return req, f.refuse("query_frontend.search.max_spans_per_span_set", "spss %d is more than the maximum of %d (query_frontend.search.max_spans_per_span_set)", req.SpansPerSpanSet, s.MaxSpansPerSpanSet)
	}
	now := f.now()
	if req.Start.IsZero() && req.End.IsZero() {
		req.Start = now.Add(-s.QueryBackendAfter)
		req.End = now
	}
	if req.Start.IsZero() != req.End.IsZero() {
		return req, limitErr("only one of start and end provided")
	}
	if !req.End.After(req.Start) && !req.End.Equal(req.Start) {
		return req, limitErr("invalid time range: end (%s) is before start (%s)", req.End.Format(time.RFC3339), req.Start.Format(time.RFC3339))
	}
	if d := req.End.Sub(req.Start); d > s.MaxDuration {
		return req, f.refuse("query_frontend.search.max_duration", "time range %s is longer than the maximum of %s (query_frontend.search.max_duration)", d, s.MaxDuration)
	}
	// The newest spans may not all have arrived: clamp the end (a range
	// entirely in the cut-off window becomes empty, not an error).
	if cut := now.Add(-f.cfg.QueryEndCutoff); f.cfg.QueryEndCutoff > 0 && req.End.After(cut) {
		req.End = cut
		if req.Start.After(cut) {
			req.Start = cut
		}
	}
	return req, nil
}

// Search answers one search for tenant. A block job whose block cannot be
// read (search.JobResult.Skipped) is recorded in the partial.Notes of ctx
// and the search goes on without it; after object storage failed, the
// block jobs not started yet are skipped too.
func (f *Frontend) Search(ctx context.Context, req search.Request, tenant string) (*search.Response, error) {
	start := f.now()
	resp, err := f.search(ctx, req, tenant)
	f.latency.Observe(time.Since(start).Seconds())
	f.searches.WithLabelValues(resultLabel(err)).Inc()
	return resp, err
}

func resultLabel(err error) string {
	switch status.Code(err) {
	case codes.OK:
		return "ok"
	case codes.InvalidArgument:
		return "bad_request"
	case codes.ResourceExhausted:
		return "limited"
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.Canceled:
		return "canceled"
	}
	return "error"
}

func (f *Frontend) search(ctx context.Context, req search.Request, tenant string) (*search.Response, error) {
	req, err := f.Normalize(req)
	if err != nil {
		return nil, err
	}
	if f.memory != nil {
		if err := f.memory.AdmitQuery(); err != nil {
			f.refused.WithLabelValues(MemoryLimiterKey).Inc()
			return nil, err
		}
	}
	jobs := f.planner.Plan(req, tenant)
	comb, err := search.NewCombiner(req, jobs)
	if err != nil {
		return nil, err
	}
	// One budget for what the search holds: the combiner's traces, and
	// those of its jobs running in process (through ctx); jobs run on
	// queriers apart get a bound of their own.
	budget := search.NewResultBudget(f.cfg.Search.MaxResultBytes)
	comb.SetBudget(budget)
	ctx = search.WithResultBudget(ctx, budget)
	for i := range jobs {
		jobs[i].MaxResultBytes = f.cfg.Search.MaxResultBytes
	}
	if t := f.cfg.Search.QueryTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	if partial.FromContext(ctx) == nil {
		// Blocks that cannot be read are skipped and noted; the notes
		// also stop Finish from reading blocks after a storage failure.
		ctx, _ = partial.NewContext(ctx)
	}
	if len(jobs) > 0 {
		// The search's first job slot; run takes more as it widens.
		if err := f.acquire(ctx, tenant); err != nil {
			return nil, f.wrap(ctx, err)
		}
		defer f.releaseFirst(tenant)
	}
	if err := f.run(ctx, tenant, jobs, comb); err != nil {
		return nil, f.wrapBudget(ctx, err)
	}
	resp, err := comb.Finish(ctx, tenant, f.finder)
	if err != nil {
		return nil, f.wrapBudget(ctx, err)
	}
	return resp, nil
}

// wrapBudget counts a search refused for its result budget, else wraps
// err as wrap does.
func (f *Frontend) wrapBudget(ctx context.Context, err error) error {
	if search.IsResultBytesError(err) {
		return f.refuse(search.MaxResultBytesKey, "%s", status.Convert(err).Message())
	}
	return f.wrap(ctx, err)
}

// wrap names the timeout when the search ran out of time.
func (f *Frontend) wrap(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.Errorf(codes.DeadlineExceeded, "search did not finish within %s (query_frontend.search.query_timeout)", f.cfg.Search.QueryTimeout)
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "search canceled")
	}
	return err
}

// acquire takes the first job slot of a search. When the tenant's slots
// are all held it waits for one to be given back (the searches running
// give back their extra slots as their jobs complete, and take no more
// while the tenant holds over growShare of the limit), until ctx is done;
// it fails at once with ResourceExhausted when the tenant already runs
// max_outstanding_per_tenant searches, each holding its first slot.
func (f *Frontend) acquire(ctx context.Context, tenant string) error {
	for {
		f.mu.Lock()
		cur, searches := f.outstanding[tenant], f.searching[tenant]
		if cur < f.cfg.MaxOutstandingPerTenant {
			f.outstanding[tenant] = cur + 1
			f.searching[tenant] = searches + 1
			f.mu.Unlock()
			return nil
		}
		freed := f.freed
		f.mu.Unlock()
		if searches >= f.cfg.MaxOutstandingPerTenant {
			return status.Errorf(codes.ResourceExhausted, "job queue full: tenant has %d search jobs outstanding in %d searches, the limit is %d (%s)",
				cur, searches, f.cfg.MaxOutstandingPerTenant, outstandingKey)
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// releaseFirst gives back the first job slot of a search.
func (f *Frontend) releaseFirst(tenant string) {
	f.mu.Lock()
	if f.searching[tenant]--; f.searching[tenant] <= 0 {
		delete(f.searching, tenant)
	}
	f.mu.Unlock()
	f.release(tenant, 1)
}

// outstandingKey is the config key of the tenant's job slots.
const outstandingKey = "query_frontend.max_outstanding_per_tenant"

// tryGrow takes one more job slot for a search that holds one already,
// when the tenant's outstanding jobs are under growShare of the limit: the
// rest is kept for the first slot of searches starting, so that a tenant
// running a few wide searches does not turn new ones away.
func (f *Frontend) tryGrow(tenant string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.outstanding[tenant]
	if cur >= f.cfg.MaxOutstandingPerTenant*growShareNum/growShareDen {
		return false
	}
	f.outstanding[tenant] = cur + 1
	return true
}

// jobSlots are the job slots a query holds beyond its first one (see
// acquire), taken as it widens and given back as its jobs return.
type jobSlots struct {
	f      *Frontend
	tenant string
	extra  int
}

// more reports whether a query with inflight jobs running may start one
// more, taking a slot when it needs one (tryGrow).
func (s *jobSlots) more(inflight int) bool {
	if inflight < 1+s.extra {
		return true
	}
	if !s.f.tryGrow(s.tenant) {
		return false
	}
	s.extra++
	return true
}

// done gives back a slot as a job returns, while the query holds extra
// ones.
func (s *jobSlots) done() {
	if s.extra > 0 {
		s.f.release(s.tenant, 1)
		s.extra--
	}
}

// close gives back the slots still held, once every job started returned.
func (s *jobSlots) close() {
	s.f.release(s.tenant, s.extra)
	s.extra = 0
}

// growShareNum/growShareDen of max_outstanding_per_tenant is what the
// searches of a tenant may hold beyond their first slots.
const growShareNum, growShareDen = 3, 4

func (f *Frontend) release(tenant string, n int) {
	if n == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outstanding[tenant] -= n; f.outstanding[tenant] <= 0 {
		delete(f.outstanding, tenant)
	}
	// Wake the searches waiting for a first slot.
	close(f.freed)
	f.freed = make(chan struct{})
}

// initialJobs is how many jobs a search starts with. As jobs complete
// without the search having enough, the jobs allowed in flight (up to
// concurrent_jobs) follow what is still needed: double while nothing was
// found, else about as many jobs as the rate of matches so far says are
// left to reach the limit. A search that the first jobs satisfy (the
// newest block, or the live-stores) reads no more; a search that matches
// rarely or not at all quickly runs at full width.
const initialJobs = 2

// newestJobs is the number of leading jobs that are the live-store job
// or a job of the first (newest) block.
func newestJobs(jobs []search.Job) int {
	first := ""
	n := 0
	for _, j := range jobs {
		if !j.Live {
			if first == "" {
				first = j.BlockID
			} else if j.BlockID != first {
				break
			}
		}
		n++
	}
	return max(n, 1)
}

// nextWindow is the jobs in flight allowed after a job completed.
func nextWindow(window, completed, found, limit, maxJobs int) int {
	if found == 0 {
		return min(2*window, maxJobs)
	}
	need := (limit - found) * completed / found // jobs still needed at the rate so far
	return min(maxJobs, max(initialJobs, need+1))
}

// run runs the jobs in order, adding each result to comb, and stops
// starting jobs (and cancels those running) as soon as comb has enough.
// With a search.Progress in ctx it reports comb's answer so far after a
// job completes, when the progress is due.
// It returns once every job it started has returned.
func (f *Frontend) run(ctx context.Context, tenant string, jobs []search.Job, comb *search.Combiner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notes := partial.FromContext(ctx)
	progress := search.ProgressFromContext(ctx) // nil: no reports
	type result struct {
		i   int
		res *search.JobResult
		err error
	}
	results := make(chan result, len(jobs)) // never blocks a job
	// Job slots held beyond the search's first one (see acquire): given
	// back as jobs complete, the rest once every job started returned.
	slots := &jobSlots{f: f, tenant: tenant}
	defer slots.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make([]bool, len(jobs))
	left := func() []search.Job {
		var out []search.Job
		for i, d := range done {
			if !d {
				out = append(out, jobs[i])
			}
		}
		return out
	}
	window := min(initialJobs, f.cfg.Search.ConcurrentJobs)
	if comb.MostRecent() {
		// The jobs are newest first, and with most_recent the newest
		// block usually holds the traces returned: its jobs (and the
		// live-store job) start first, not sharing the cores with jobs
		// of older blocks that their result may make needless.
		window = min(newestJobs(jobs), f.cfg.Search.ConcurrentJobs)
	}
	sent, inflight, completed := 0, 0, 0
	dispatch := func() {
		for sent < len(jobs) && inflight < window {
			if !slots.more(inflight) {
				break // a job returning frees a slot
			}
			i := sent
			if !comb.Needed(jobs[i]) {
				// most_recent: its block ends before the traces found.
				done[i] = true
				f.jobs.WithLabelValues("skipped").Inc()
				sent++
				continue
			}
			wg.Go(func() {
				res, err := f.querier.SearchJob(ctx, tenant, jobs[i])
				results <- result{i, res, err}
			})
			sent++
			inflight++
		}
	}
	dispatch()
	var firstErr error
	for inflight > 0 {
		select {
		case r := <-results:
			inflight--
			slots.done()
			done[r.i] = true
			if r.err != nil {
				f.jobs.WithLabelValues("failed").Inc()
				firstErr = r.err
				break
			}
			f.jobs.WithLabelValues("completed").Inc()
			completed++
			if err := comb.Add(r.res); err != nil {
				firstErr = err
				break
			}
			if sk := r.res.Skipped; sk != nil {
				notes.Add(*sk)
				if sk.Reason == partial.ReasonStorage {
					// Object storage failed: the block jobs not started
					// would fail the same way (after the read timeout).
					for _, j := range jobs[sent:] {
						if !j.Live {
							notes.Add(partial.Skip{Tenant: tenant, Block: j.BlockID, Reason: partial.ReasonStorage})
						}
					}
					f.jobs.WithLabelValues("skipped").Add(float64(len(jobs) - sent))
					sent = len(jobs)
				}
			}
			if progress.Due(time.Now()) {
				progress.Report(comb.Snapshot())
			}
			if comb.Enough(left()) {
				f.jobs.WithLabelValues("skipped").Add(float64(len(jobs) - sent))
				sent = len(jobs) // start no more
			} else {
				window = nextWindow(window, completed, comb.Found(), comb.Limit(), f.cfg.Search.ConcurrentJobs)
			}
		case <-ctx.Done():
			firstErr = ctx.Err()
		}
		if firstErr != nil {
			break
		}
		dispatch()
	}
	cancel() // jobs still running are not needed
	if firstErr == nil {
		return nil
	}
	if st, ok := status.FromError(firstErr); ok && st.Code() != codes.Unknown {
		return st.Err()
	}
	return fmt.Errorf("cannot search: %w", firstErr)
}
