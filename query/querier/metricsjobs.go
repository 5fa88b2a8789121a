package querier

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tqmetrics "github.com/weftdb/weft/query/metrics"
)

// This file is the querier's side of TraceQL metrics: JobRunner runs the
// metrics jobs a query-frontend cuts, in the same slots as search jobs
// (querier.max_concurrent_queries) and within the same
// querier.search.query_timeout.

// SetMetrics makes the runner run metrics jobs with m.
func (r *JobRunner) SetMetrics(m *tqmetrics.Runner) *JobRunner {
	r.metrics = m
	return r
}

// MetricsJob runs one metrics job (frontend.MetricsQuerier). A live job
// also runs on the live-stores of other processes, their results side by
// side with the local one.
func (r *JobRunner) MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error) {
	if r.metrics == nil {
		return nil, status.Error(codes.Unimplemented, "this querier runs no TraceQL metrics jobs")
	}
	start := time.Now()
	defer func() { r.metricsSeconds.Observe(time.Since(start).Seconds()) }()
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.sem }()
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	res, err := r.metrics.RunJob(ctx, tenant, job)
	if err != nil && !job.Live && tqmetrics.Skippable(ctx, err) {
		// A block that cannot be read: the job completes without it and
		// the frontend answers partially.
		r.metricsJobs.WithLabelValues("block", "skipped").Inc()
		return tqmetrics.SkippedJob(tenant, job, err), nil
	}
	if err == nil && job.Live && r.remote != nil {
		var remote []*tqmetrics.JobResult
		if remote, err = r.remote.MetricsJob(ctx, tenant, job); err == nil {
			res = tqmetrics.MergeJobResults(append(remote, res)...)
		}
	}
	kind := "block"
	if job.Live {
		kind = "live"
	}
	if err != nil {
		r.metricsJobs.WithLabelValues(kind, "error").Inc()
		if ctx.Err() == context.DeadlineExceeded {
			return nil, status.Errorf(codes.DeadlineExceeded, "metrics job did not finish within %s (querier.search.query_timeout)", r.timeout)
		}
		return nil, err
	}
	r.metricsJobs.WithLabelValues(kind, "ok").Inc()
	return res, nil
}
