package querier

import (
	"context"

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
	return runJob(ctx, r, jobKind{name: "metrics", live: job.Live, counts: r.metricsJobs, seconds: r.metricsSeconds},
		func(ctx context.Context) (*tqmetrics.JobResult, error) { return r.metrics.RunJob(ctx, tenant, job) },
		func(err error) *tqmetrics.JobResult { return tqmetrics.SkippedJob(tenant, job, err) },
		func(ctx context.Context, local *tqmetrics.JobResult) (*tqmetrics.JobResult, error) {
			remote, err := r.remote.MetricsJob(ctx, tenant, job)
			if err != nil {
				return nil, err
			}
			return tqmetrics.MergeJobResults(append(remote, local)...), nil
		})
}
