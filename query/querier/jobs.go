package querier

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/grpcjson"
	"github.com/weftdb/weft/internal/metrics"
	tqmetrics "github.com/weftdb/weft/query/metrics"
	"github.com/weftdb/weft/query/search"
)

// This file is the querier's side of search: JobRunner runs the jobs a
// query-frontend cuts, with bounded concurrency, and serves them over
// gRPC; Client is the frontend's side of that gRPC service.
//
// The job service is internal (frontend to querier, same weft version):
// weft.querier.v1.Querier/SearchJob, a unary call whose messages are
// search.Job and search.JobResult encoded as JSON (gRPC content subtype
// "json"), the tenant in the x-scope-orgid metadata as Tempo sends it.

// JobRunner runs search jobs on a searcher: at most
// querier.max_concurrent_queries at once (the others wait), each within
// querier.search.query_timeout.
type JobRunner struct {
	s       *search.Searcher
	remote  *RemoteLiveStores // live-stores of other processes, or nil
	metrics *tqmetrics.Runner // nil: no metrics jobs (SetMetrics)
	sem     chan struct{}
	timeout time.Duration
	jobs    *prometheus.CounterVec
	seconds prometheus.Histogram
	// metricsJobs and metricsSeconds are jobs' and seconds' for metrics
	// jobs.
	metricsJobs    *prometheus.CounterVec
	metricsSeconds prometheus.Histogram
}

// NewJobRunner returns a runner of s's jobs.
func NewJobRunner(s *search.Searcher, cfg Config, reg prometheus.Registerer) *JobRunner {
	n := cfg.MaxConcurrentQueries
	if n <= 0 {
		n = DefaultConfig().MaxConcurrentQueries
	}
	return &JobRunner{
		s: s, sem: make(chan struct{}, n), timeout: cfg.Search.QueryTimeout,
		jobs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_querier_search_jobs_total",
			Help: "Search jobs run by the querier, by kind (live, block) and result (ok, error, skipped: the block could not be read).",
		}, []string{"kind", "result"})),
		seconds: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_querier_search_job_duration_seconds",
			Help:    "Time to run one search job, waiting for a slot included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		})),
		metricsJobs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_querier_metrics_jobs_total",
			Help: "TraceQL metrics jobs run by the querier, by kind (live, block) and result (ok, error, skipped: the block could not be read).",
		}, []string{"kind", "result"})),
		metricsSeconds: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_querier_metrics_job_duration_seconds",
			Help:    "Time to run one TraceQL metrics job, waiting for a slot included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		})),
	}
}

// WithRemoteLiveStores makes live jobs also run on the live-stores of
// other processes, their results merged with the local one.
func (r *JobRunner) WithRemoteLiveStores(remote *RemoteLiveStores) *JobRunner {
	r.remote = remote
	return r
}

// SearchJob runs one job (frontend.Querier).
func (r *JobRunner) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	return runJob(ctx, r, jobKind{name: "search", live: job.Live, counts: r.jobs, seconds: r.seconds},
		func(ctx context.Context) (*search.JobResult, error) { return r.s.RunJob(ctx, tenant, job) },
		func(err error) *search.JobResult { return search.SkippedJob(tenant, job, err) },
		func(ctx context.Context, local *search.JobResult) (*search.JobResult, error) {
			remote, err := r.remote.SearchJob(ctx, tenant, job)
			if err != nil {
				return nil, err
			}
			return search.MergeJobResults(append(remote, local)...), nil
		})
}

// jobKind says what runJob runs and where it counts it.
type jobKind struct {
	name    string // "search", "metrics": for messages
	live    bool
	counts  *prometheus.CounterVec // by kind (live, block) and result
	seconds prometheus.Histogram
}

// runJob runs one job with run in one of the runner's slots (waiting for
// one), within querier.search.query_timeout. A block job whose block
// cannot be read completes as skipped(err); a live job also runs on the
// live-stores of other processes (remote merges their results with the
// local one).
func runJob[Res any](ctx context.Context, r *JobRunner, k jobKind, run func(ctx context.Context) (*Res, error),
	skipped func(err error) *Res, remote func(ctx context.Context, local *Res) (*Res, error)) (*Res, error) {
	start := time.Now()
	defer func() { k.seconds.Observe(time.Since(start).Seconds()) }()
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
	res, err := run(ctx)
	if err != nil && !k.live && search.Skippable(ctx, err) {
		// A block that cannot be read: the job completes without it and
		// the frontend answers partially.
		k.counts.WithLabelValues("block", "skipped").Inc()
		return skipped(err), nil
	}
	if err == nil && k.live && r.remote != nil {
		res, err = remote(ctx, res)
	}
	kind := "block"
	if k.live {
		kind = "live"
	}
	if err != nil {
		k.counts.WithLabelValues(kind, "error").Inc()
		if ctx.Err() == context.DeadlineExceeded {
			return nil, status.Errorf(codes.DeadlineExceeded, "%s job did not finish within %s (querier.search.query_timeout)", k.name, r.timeout)
		}
		return nil, err
	}
	k.counts.WithLabelValues(kind, "ok").Inc()
	return res, nil
}

// maxMessageBytes bounds one message of the job and live-store services
// (a job result of a search with a large limit, a whole trace): far above
// gRPC's default of 4 MiB.
const maxMessageBytes = 256 << 20

const (
	jobServiceName   = "weft.querier.v1.Querier"
	searchJobMethod  = "/" + jobServiceName + "/SearchJob"
	metricsJobMethod = "/" + jobServiceName + "/MetricsJob"
	tenantMetadata   = "x-scope-orgid"
)

// jobQuerier is what the gRPC service serves.
type jobQuerier interface {
	SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error)
	MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error)
}

// RegisterJobService serves q's SearchJob on s.
func RegisterJobService(s *grpc.Server, q jobQuerier) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: jobServiceName,
		HandlerType: (*jobQuerier)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "SearchJob",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var job search.Job
				if err := dec(&job); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode search job: %v", err)
				}
				md, _ := metadata.FromIncomingContext(ctx)
				tenants := md.Get(tenantMetadata)
				if len(tenants) != 1 || tenants[0] == "" {
					return nil, status.Error(codes.Unauthenticated, "no org id")
				}
				return srv.(jobQuerier).SearchJob(ctx, tenants[0], job)
			},
		}, {
			MethodName: "MetricsJob",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var job tqmetrics.Job
				if err := dec(&job); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode metrics job: %v", err)
				}
				tenant, err := tenantFrom(ctx)
				if err != nil {
					return nil, err
				}
				return srv.(jobQuerier).MetricsJob(ctx, tenant, job)
			},
		}},
		Metadata: "weft/querier/jobs.go",
	}, q)
}

// Client runs search jobs on a remote querier over gRPC (frontend.Querier).
type Client struct {
	conn grpc.ClientConnInterface
}

// NewClient returns a client over conn.
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

// SearchJob runs one job on the remote querier.
func (c *Client) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, tenantMetadata, tenant)
	var res search.JobResult
	if err := c.conn.Invoke(ctx, searchJobMethod, &job, &res, grpc.CallContentSubtype(grpcjson.Subtype), grpc.MaxCallRecvMsgSize(maxMessageBytes)); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("cannot run search job on querier: %w", err)
	}
	return &res, nil
}

// MetricsJob runs one metrics job on the remote querier.
func (c *Client) MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, tenantMetadata, tenant)
	var res tqmetrics.JobResult
	if err := c.conn.Invoke(ctx, metricsJobMethod, &job, &res, grpc.CallContentSubtype(grpcjson.Subtype), grpc.MaxCallRecvMsgSize(maxMessageBytes)); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("cannot run metrics job on querier: %w", err)
	}
	return &res, nil
}
