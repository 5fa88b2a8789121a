package frontend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	tqmetrics "github.com/weftdb/weft/query/metrics"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// This file is the query-frontend's side of TraceQL metrics
// (/api/metrics/query_range and /api/metrics/query): the limits, Tempo's
// defaults and alignment, the jobs (the live-stores for the spans
// starting after now − metrics.query_backend_after, the blocks for the
// others), run on queriers with bounded concurrency, and the merge of
// their partial aggregates.

// MetricsConfig is the `query_frontend.metrics` block.
type MetricsConfig struct {
	// ConcurrentJobs caps the jobs of one metrics query running at once.
	ConcurrentJobs int `yaml:"concurrent_jobs"`
	// TargetBytesPerJob is the size of block jobs (bytes of data.parquet).
	TargetBytesPerJob int64 `yaml:"target_bytes_per_job"`
	// MaxDuration caps end − start; above it a query gets 400. A
	// tenant's read.max_metrics_duration override, when set, wins.
	MaxDuration time.Duration `yaml:"max_duration"`
	// QueryBackendAfter splits a query by span start time: spans starting
	// after now − QueryBackendAfter are counted from the live-stores, the
	// others from the blocks. It must stay under the live-stores' window
	// (live_store.window), which holds every span that recent.
	QueryBackendAfter time.Duration `yaml:"query_backend_after"`
	// MaxExemplars caps the exemplars of an answer (and is the default of
	// the exemplars parameter).
	MaxExemplars int `yaml:"max_exemplars"`
	// MaxIntervals caps (end − start) / step; above it a query gets 400
	// ("step ... is too small").
	MaxIntervals int `yaml:"max_intervals"`
	// MaxResponseSeries caps the series of an answer (and is the default
	// of the maxSeries parameter): a query reaching it stops and answers
	// the series it has with status PARTIAL. 0 is no cap (Tempo's
	// default; weft's is 1000, so that a query grouping by a unique
	// value cannot exhaust the memory of the queriers and the frontend).
	MaxResponseSeries int `yaml:"max_response_series"`
	// QueryTimeout bounds a whole metrics query; past it the query fails
	// with 504 naming this key. 0 disables it. weft only.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// DefaultMetricsConfig is Tempo's defaults, and weft's for its own keys.
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{
		ConcurrentJobs:    1000,
		TargetBytesPerJob: search.DefaultTargetBytesPerJob,
		MaxDuration:       24 * time.Hour,
		QueryBackendAfter: 15 * time.Minute,
		MaxExemplars:      100,
		MaxIntervals:      10000,
		MaxResponseSeries: 1000,
		QueryTimeout:      25 * time.Second,
	}
}

// validate checks the values; keys are reported under metrics.
func (c *MetricsConfig) validate(check func(ok bool, key string, format string, args ...any)) {
	check(c.ConcurrentJobs > 0, "metrics.concurrent_jobs", "must be positive")
	check(c.TargetBytesPerJob > 0, "metrics.target_bytes_per_job", "must be positive")
	check(c.MaxDuration > 0, "metrics.max_duration", "must be positive")
	check(c.QueryBackendAfter > 0, "metrics.query_backend_after", "must be positive")
	check(c.MaxExemplars >= 0, "metrics.max_exemplars", "must not be negative")
	check(c.MaxIntervals > 0, "metrics.max_intervals", "must be positive")
	check(c.MaxResponseSeries >= 0, "metrics.max_response_series", "must not be negative")
	check(c.QueryTimeout >= 0, "metrics.query_timeout", "must not be negative")
}

// MetricsQuerier runs metrics jobs. MetricsJob runs one job for tenant and
// returns what it found; it fails with an InvalidArgument status for a
// bad request. It must be safe for concurrent use.
type MetricsQuerier interface {
	MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error)
}

// MetricsPlanner cuts a metrics query into jobs (metrics.Runner.Plan).
type MetricsPlanner interface {
	Plan(req tqmetrics.Request, tenant string, cutoff uint64) []tqmetrics.Job
}

// MetricsRequest is a metrics query as the HTTP API reads it. Zero
// fields take Tempo's defaults (Normalize).
type MetricsRequest struct {
	// Query is the TraceQL metrics query.
	Query string
	// Start and End bound the spans counted, by start time. Both zero:
	// the last hour.
	Start, End time.Time
	// Step is the width of an interval; 0 takes Tempo's default. Ignored
	// for an instant query.
	Step time.Duration
	// Instant asks for one value per series over [Start, End].
	Instant bool
	// Exemplars is the most exemplars answered; nil takes
	// metrics.max_exemplars, more than it is cut to it.
	Exemplars *int
	// MaxSeries is the most series answered; 0 takes
	// metrics.max_response_series, more than it is cut to it.
	MaxSeries int
}

// metricsState is what the frontend keeps for metrics queries.
type metricsState struct {
	planner MetricsPlanner
	querier MetricsQuerier
	// maxDuration gives a tenant's read.max_metrics_duration (0: none).
	maxDuration func(tenant string) time.Duration

	queries *prometheus.CounterVec
	jobs    *prometheus.CounterVec
	latency prometheus.Histogram
}

// SetMetrics makes the frontend answer TraceQL metrics queries, cutting
// them with planner and running the jobs on q. maxDuration, when not nil,
// gives each tenant's read.max_metrics_duration override (0 for none).
func (f *Frontend) SetMetrics(planner MetricsPlanner, q MetricsQuerier, maxDuration func(tenant string) time.Duration, reg prometheus.Registerer) {
	f.metrics = &metricsState{
		planner: planner, querier: q, maxDuration: maxDuration,
		queries: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_frontend_metrics_queries_total",
			Help: "TraceQL metrics queries by kind (range, instant) and result: ok, partial (series limit or blocks skipped), bad_request, limited (429), timeout, canceled, error.",
		}, []string{"kind", "result"})),
		jobs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_frontend_metrics_jobs_total",
			Help: "TraceQL metrics jobs by result: completed, skipped (the series limit was reached, or object storage failed), failed.",
		}, []string{"result"})),
		latency: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_query_frontend_metrics_duration_seconds",
			Help:    "Time to answer a TraceQL metrics query.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		})),
	}
}

// Keys of the metrics limits, as the refusals name them.
const (
	metricsMaxDurationKey       = "query_frontend.metrics.max_duration"
	tenantMaxMetricsDurationKey = "overrides.read.max_metrics_duration"
	metricsMaxIntervalsKey      = "query_frontend.metrics.max_intervals"
	metricsMaxSeriesKey         = "query_frontend.metrics.max_response_series"
)

// NormalizeMetrics applies the limits and Tempo's defaults to req for
// tenant and returns the engine's request, aligned to its step as Tempo
// aligns it. Errors are InvalidArgument statuses naming the limit and
// its config key.
func (f *Frontend) NormalizeMetrics(req MetricsRequest, tenant string) (tqmetrics.Request, error) {
	cfg := &f.cfg.Metrics
	var out tqmetrics.Request
	if n := len(req.Query); n > f.cfg.MaxQueryExpressionSizeBytes {
		return out, f.refuse(traceql.LimitMaxBytes, "query is %d bytes, more than the limit of %d bytes (%s)", n, f.cfg.MaxQueryExpressionSizeBytes, traceql.LimitMaxBytes)
	}
	if strings.TrimSpace(req.Query) == "" {
		return out, limitErr("invalid TraceQL query: the q parameter is required, e.g. q={} | rate()")
	}
	root, err := traceql.ParseWithLimits(req.Query, f.parseLimits())
	if err != nil {
		var pe *traceql.ParseError
		if errors.As(err, &pe) && pe.Limit != "" {
			return out, f.refuse(pe.Limit, "%s", err)
		}
		return out, limitErr("invalid TraceQL query: %s", err)
	}
	if !root.IsMetrics() {
		return out, limitErr("invalid TraceQL query: not a metrics query: add a metrics function such as | rate() or | count_over_time()")
	}
	now := f.now()
	start, end := req.Start, req.End
	switch {
	case start.IsZero() && end.IsZero():
		start, end = now.Add(-time.Hour), now
	case start.IsZero() != end.IsZero():
		return out, limitErr("only one of start and end provided")
	}
	if !end.After(start) {
		return out, limitErr("invalid time range: end (%s) must be after start (%s)", end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}
	// The newest spans may not all have arrived.
	if cut := now.Add(-f.cfg.QueryEndCutoff); f.cfg.QueryEndCutoff > 0 && end.After(cut) {
		end = cut
		if !end.After(start) {
			return out, limitErr("invalid time range: the range ends within query_frontend.query_end_cutoff (%s) of now, where spans may still be arriving", f.cfg.QueryEndCutoff)
		}
	}
	d := end.Sub(start)
	maxDur, key := cfg.MaxDuration, metricsMaxDurationKey
	if f.metrics != nil && f.metrics.maxDuration != nil {
		if t := f.metrics.maxDuration(tenant); t > 0 {
			maxDur, key = t, tenantMaxMetricsDurationKey
		}
	}
	if d > maxDur {
		return out, f.refuse(key, "metrics query time range %s is longer than the maximum of %s (%s)", d, maxDur, key)
	}
	out = tqmetrics.Request{Query: req.Query, Start: uint64(start.UnixNano()), End: uint64(end.UnixNano())}
	if req.Instant {
		out.Step = out.End - out.Start
	} else {
		out.Step = uint64(req.Step)
		if req.Step < 0 {
			return out, limitErr("invalid step %s: must be positive", req.Step)
		}
		if out.Step == 0 {
			out.Step = tqmetrics.DefaultStep(out.Start, out.End)
		}
		if n := (out.End - out.Start) / out.Step; n > uint64(cfg.MaxIntervals) {
			return out, f.refuse(metricsMaxIntervalsKey, "step %s is too small: the range %s would have %d intervals, more than the maximum of %d (%s)",
				time.Duration(out.Step), d, n, cfg.MaxIntervals, metricsMaxIntervalsKey)
		}
		out = out.Align()
	}
	out.Exemplars = cfg.MaxExemplars
	if req.Exemplars != nil {
		if *req.Exemplars < 0 {
			return out, limitErr("invalid exemplars %d: must not be negative", *req.Exemplars)
		}
		out.Exemplars = min(*req.Exemplars, cfg.MaxExemplars)
	}
	switch {
	case req.MaxSeries < 0:
		return out, limitErr("invalid maxSeries %d: must not be negative", req.MaxSeries)
	case req.MaxSeries == 0:
		out.MaxSeries = cfg.MaxResponseSeries
	case cfg.MaxResponseSeries > 0:
		out.MaxSeries = min(req.MaxSeries, cfg.MaxResponseSeries)
	default:
		out.MaxSeries = req.MaxSeries
	}
	return out, nil
}

// QueryRange answers a metrics query (range or instant: the caller turns
// the answer into an instant one) over the data of tenants, merged. A
// block job whose block cannot be read is recorded in the partial.Notes
// of ctx and the query goes on without it.
func (f *Frontend) QueryRange(ctx context.Context, req MetricsRequest, tenants []string) (*tqmetrics.Response, error) {
	if f.metrics == nil {
		return nil, status.Error(codes.Unimplemented, "TraceQL metrics are not enabled in this process")
	}
	kind := "range"
	if req.Instant {
		kind = "instant"
	}
	start := f.now()
	resp, err := f.queryRange(ctx, req, tenants)
	f.metrics.latency.Observe(time.Since(start).Seconds())
	result := resultLabel(err)
	if err == nil && (resp.Status != "" || len(partial.FromContext(ctx).Skips()) > 0) {
		result = "partial"
	}
	f.metrics.queries.WithLabelValues(kind, result).Inc()
	return resp, err
}

func (f *Frontend) queryRange(ctx context.Context, mreq MetricsRequest, tenants []string) (*tqmetrics.Response, error) {
	if len(tenants) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no org id")
	}
	var req tqmetrics.Request
	for i, t := range tenants {
		r, err := f.NormalizeMetrics(mreq, t)
		if err != nil {
			return nil, err
		}
		if i == 0 || r.End-r.Start < req.End-req.Start {
			req = r
		}
	}
	q, err := tqmetrics.Compile(req)
	if err != nil {
		return nil, err
	}
	if f.memory != nil {
		if err := f.memory.AdmitQuery(); err != nil {
			f.refused.WithLabelValues(MemoryLimiterKey).Inc()
			return nil, err
		}
	}
	cutoff := uint64(f.now().Add(-f.cfg.Metrics.QueryBackendAfter).UnixNano())
	type tenantJob struct {
		tenant string
		job    tqmetrics.Job
	}
	var jobs []tenantJob
	var all []tqmetrics.Job
	for _, t := range tenants {
		for _, j := range f.metrics.planner.Plan(req, t, cutoff) {
			jobs = append(jobs, tenantJob{t, j})
			all = append(all, j)
		}
	}
	if t := f.cfg.Metrics.QueryTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	if partial.FromContext(ctx) == nil {
		ctx, _ = partial.NewContext(ctx)
	}
	notes := partial.FromContext(ctx)
	comb := q.NewCombiner()
	completed := 0
	if len(jobs) > 0 {
		// The query's first job slot; more are taken as for a search.
		if err := f.acquire(ctx, tenants[0]); err != nil {
			return nil, f.wrapMetrics(ctx, err)
		}
		defer f.releaseFirst(tenants[0])
		run := func(ctx context.Context, i int) (*tqmetrics.JobResult, error) {
			return f.metrics.querier.MetricsJob(ctx, jobs[i].tenant, jobs[i].job)
		}
		completed, err = f.runMetrics(ctx, tenants[0], len(jobs), run, func(res *tqmetrics.JobResult) (stop bool, err error) {
			if sk := res.Skipped; sk != nil {
				notes.Add(*sk)
			}
			for _, p := range res.Parts {
				if p.Skipped != nil {
					notes.Add(*p.Skipped)
				}
				if err := comb.Add(p); err != nil {
					return true, err
				}
			}
			// Object storage failed: the block jobs not started would
			// fail the same way (after the read timeout).
			storageDown := res.Skipped != nil && res.Skipped.Reason == partial.ReasonStorage
			return comb.Truncated() || storageDown, nil
		})
		if err != nil {
			return nil, f.wrapMetrics(ctx, err)
		}
	}
	resp := comb.Response()
	if resp.Metrics == nil {
		resp.Metrics = &search.Metrics{}
	}
	blocks, bytes := tqmetrics.BlockStats(all)
	resp.Metrics.TotalJobs = uint32(min(len(jobs), math.MaxUint32))
	resp.Metrics.CompletedJobs = uint32(min(completed, math.MaxUint32))
	resp.Metrics.TotalBlocks = blocks
	resp.Metrics.TotalBlockBytes = bytes
	return resp, nil
}

// runMetrics runs n jobs with run, up to metrics.concurrent_jobs at once
// within the tenant's job slots, handing each result to add in completion
// order. add returning stop ends the query early (the series limit was
// reached, or object storage failed: the jobs not started are skipped,
// those running cancelled). It returns the jobs completed once every job started
// has returned.
func (f *Frontend) runMetrics(ctx context.Context, tenant string, n int, run func(ctx context.Context, i int) (*tqmetrics.JobResult, error),
	add func(res *tqmetrics.JobResult) (bool, error)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		res *tqmetrics.JobResult
		err error
	}
	results := make(chan result, n)
	slots := &jobSlots{f: f, tenant: tenant}
	defer slots.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	limit := f.cfg.Metrics.ConcurrentJobs
	sent, inflight, completed := 0, 0, 0
	skipRest := func() {
		f.metrics.jobs.WithLabelValues("skipped").Add(float64(n - sent))
		sent = n
	}
	dispatch := func() {
		for sent < n && inflight < limit {
			if !slots.more(inflight) {
				break
			}
			i := sent
			wg.Go(func() {
				res, err := run(ctx, i)
				results <- result{res, err}
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
			if r.err != nil {
				f.metrics.jobs.WithLabelValues("failed").Inc()
				firstErr = r.err
				break
			}
			f.metrics.jobs.WithLabelValues("completed").Inc()
			completed++
			stop, err := add(r.res)
			switch {
			case err != nil:
				firstErr = err
			case stop:
				skipRest()
			}
		case <-ctx.Done():
			firstErr = ctx.Err()
		}
		if firstErr != nil {
			break
		}
		dispatch()
	}
	cancel()
	if firstErr == nil {
		return completed, nil
	}
	if st, ok := status.FromError(firstErr); ok && st.Code() != codes.Unknown {
		return completed, st.Err()
	}
	return completed, fmt.Errorf("cannot run metrics query: %w", firstErr)
}

// wrapMetrics names the timeout when the query ran out of time.
func (f *Frontend) wrapMetrics(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.Errorf(codes.DeadlineExceeded, "metrics query did not finish within %s (query_frontend.metrics.query_timeout)", f.cfg.Metrics.QueryTimeout)
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "metrics query canceled")
	}
	return err
}
