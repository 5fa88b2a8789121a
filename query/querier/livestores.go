package querier

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/grpcjson"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
	tqmetrics "github.com/weftdb/weft/query/metrics"
	"github.com/weftdb/weft/query/search"
)

// This file lets queriers reach live-stores in other processes
// (microservices mode): a process running a live-store serves
// weft.livestore.v1.LiveStore on its gRPC port (live search jobs and trace
// by ID and tag names and values, JSON-coded like the job service), and
// RemoteLiveStores asks every
// live-store that membership lists.

// Peers lists the gRPC addresses of the live-stores of other processes.
type Peers interface {
	LiveStorePeers() []string
}

const (
	liveStoreService  = "weft.livestore.v1.LiveStore"
	liveFindMethod    = "/" + liveStoreService + "/FindTraceByID"
	liveSearchMethod  = "/" + liveStoreService + "/SearchJob"
	liveTagsMethod    = "/" + liveStoreService + "/TagsJob"
	liveMetricsMethod = "/" + liveStoreService + "/MetricsJob"
)

type findRequest struct {
	TraceID string `json:"traceID"`
	Start   int64  `json:"start,omitempty"`
	End     int64  `json:"end,omitempty"`
}

type findResponse struct {
	Data []byte `json:"data,omitempty"`
}

func tenantFrom(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tenants := md.Get(tenantMetadata)
	if len(tenants) != 1 || tenants[0] == "" {
		return "", status.Error(codes.Unauthenticated, "no org id")
	}
	return tenants[0], nil
}

// RegisterLiveStoreService serves this process's live-store: trace by ID
// from live, live search jobs and tag jobs run by s and live metrics jobs
// run by m (whose live-store is live; s and m must not ask remote
// live-stores themselves).
func RegisterLiveStoreService(srv *grpc.Server, live Finder, s *search.Searcher, m *tqmetrics.Runner) {
	type server interface{}
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: liveStoreService,
		HandlerType: (*server)(nil),
		Methods: []grpc.MethodDesc{
			{
				MethodName: "FindTraceByID",
				Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					var req findRequest
					if err := dec(&req); err != nil {
						return nil, status.Errorf(codes.InvalidArgument, "cannot decode the request: %v", err)
					}
					tenant, err := tenantFrom(ctx)
					if err != nil {
						return nil, err
					}
					var id [16]byte
					if n, err := hex.Decode(id[:], []byte(req.TraceID)); err != nil || n != 16 {
						return nil, status.Errorf(codes.InvalidArgument, "invalid trace ID %q", req.TraceID)
					}
					data, err := live.FindTraceByID(ctx, tenant, id, req.Start, req.End)
					if err != nil {
						return nil, err
					}
					return &findResponse{Data: data}, nil
				},
			},
			{
				MethodName: "SearchJob",
				Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					var job search.Job
					if err := dec(&job); err != nil {
						return nil, status.Errorf(codes.InvalidArgument, "cannot decode the search job: %v", err)
					}
					if !job.Live {
						return nil, status.Error(codes.InvalidArgument, "a live-store runs live jobs only")
					}
					tenant, err := tenantFrom(ctx)
					if err != nil {
						return nil, err
					}
					return s.RunJob(ctx, tenant, job)
				},
			},
			{
				MethodName: "TagsJob",
				Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					var job search.TagsJob
					if err := dec(&job); err != nil {
						return nil, status.Errorf(codes.InvalidArgument, "cannot decode the tags job: %v", err)
					}
					tenant, err := tenantFrom(ctx)
					if err != nil {
						return nil, err
					}
					return s.RunTagsJob(ctx, tenant, job)
				},
			},
			{
				MethodName: "MetricsJob",
				Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					var job tqmetrics.Job
					if err := dec(&job); err != nil {
						return nil, status.Errorf(codes.InvalidArgument, "cannot decode the metrics job: %v", err)
					}
					if !job.Live {
						return nil, status.Error(codes.InvalidArgument, "a live-store runs live jobs only")
					}
					tenant, err := tenantFrom(ctx)
					if err != nil {
						return nil, err
					}
					return m.RunJob(ctx, tenant, job)
				},
			},
		},
		Metadata: "weft/querier/livestores.go",
	}, struct{}{})
}

// RemoteLiveStores reaches the live-stores of other processes. A
// live-store that does not answer (gone, restarting) is skipped and
// counted: its partitions are read again by the live-store that takes them
// over.
type RemoteLiveStores struct {
	peers Peers
	conns connCache

	unreachable prometheus.Counter
}

// connCache keeps one gRPC connection per address.
type connCache struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (c *connCache) get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	c.conns[addr] = cc
	return cc, nil
}

func (c *connCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for addr, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

// NewRemoteLiveStores returns the live-stores peers lists.
func NewRemoteLiveStores(peers Peers, reg prometheus.Registerer) *RemoteLiveStores {
	return &RemoteLiveStores{
		peers: peers,
		unreachable: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_querier_live_store_unreachable_total",
			Help: "Requests to live-stores of other processes that did not answer and were skipped.",
		})),
	}
}

// each calls fn for every live-store concurrently and collects what
// answered; unreachable ones are skipped.
func (r *RemoteLiveStores) each(ctx context.Context, tenant string, fn func(ctx context.Context, c *grpc.ClientConn) error) error {
	ctx = metadata.AppendToOutgoingContext(ctx, tenantMetadata, tenant)
	addrs := r.peers.LiveStorePeers()
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			c, err := r.conns.get(addr)
			if err == nil {
				err = fn(ctx, c)
			}
			if status.Code(err) == codes.Unavailable {
				r.unreachable.Inc()
				err = nil
			}
			if err != nil {
				errs[i] = fmt.Errorf("live-store at %s: %w", addr, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// FindTraceByID returns the trace's spans from every live-store, merged.
func (r *RemoteLiveStores) FindTraceByID(ctx context.Context, tenant string, id [16]byte, start, end int64) ([]byte, error) {
	var mu sync.Mutex
	var parts [][]byte
	err := r.each(ctx, tenant, func(ctx context.Context, c *grpc.ClientConn) error {
		var resp findResponse
		if err := c.Invoke(ctx, liveFindMethod, &findRequest{TraceID: hex.EncodeToString(id[:]), Start: start, End: end}, &resp, grpc.CallContentSubtype(grpcjson.Subtype), grpc.MaxCallRecvMsgSize(maxMessageBytes)); err != nil {
			return err
		}
		mu.Lock()
		parts = append(parts, resp.Data)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return otlpwire.Merge(parts...)
}

// askAll sends req to method of every live-store and collects the
// answers of those that answered.
func askAll[Res any](ctx context.Context, r *RemoteLiveStores, tenant, method string, req any) ([]*Res, error) {
	var mu sync.Mutex
	var out []*Res
	err := r.each(ctx, tenant, func(ctx context.Context, c *grpc.ClientConn) error {
		res := new(Res)
		if err := c.Invoke(ctx, method, req, res, grpc.CallContentSubtype(grpcjson.Subtype), grpc.MaxCallRecvMsgSize(maxMessageBytes)); err != nil {
			return err
		}
		mu.Lock()
		out = append(out, res)
		mu.Unlock()
		return nil
	})
	return out, err
}

// SearchJob runs a live job on every live-store.
func (r *RemoteLiveStores) SearchJob(ctx context.Context, tenant string, job search.Job) ([]*search.JobResult, error) {
	return askAll[search.JobResult](ctx, r, tenant, liveSearchMethod, &job)
}

// MetricsJob runs a live metrics job on every live-store.
func (r *RemoteLiveStores) MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) ([]*tqmetrics.JobResult, error) {
	return askAll[tqmetrics.JobResult](ctx, r, tenant, liveMetricsMethod, &job)
}

// TagsJob runs a tag job on every live-store (search.RemoteTags).
func (r *RemoteLiveStores) TagsJob(ctx context.Context, tenant string, job search.TagsJob) ([]*search.TagsJobResult, error) {
	return askAll[search.TagsJobResult](ctx, r, tenant, liveTagsMethod, &job)
}

// Close closes the connections.
func (r *RemoteLiveStores) Close() error { return r.conns.close() }

// LiveFinder finds a trace in the local live-store (may be nil) and in the
// live-stores of other processes (may be nil), merged.
type LiveFinder struct {
	Local  Finder
	Remote *RemoteLiveStores
}

// FindTraceByID implements Finder.
func (l LiveFinder) FindTraceByID(ctx context.Context, tenant string, id [16]byte, start, end int64) ([]byte, error) {
	var parts [][]byte
	if l.Local != nil {
		data, err := l.Local.FindTraceByID(ctx, tenant, id, start, end)
		if err != nil {
			return nil, err
		}
		parts = append(parts, data)
	}
	if l.Remote != nil {
		data, err := l.Remote.FindTraceByID(ctx, tenant, id, start, end)
		if err != nil {
			return nil, err
		}
		parts = append(parts, data)
	}
	return otlpwire.Merge(parts...)
}

// QuerierPeers lists the gRPC addresses of the queriers of the cluster.
type QuerierPeers interface {
	QuerierPeers() []string
}

// Pool runs search jobs on the queriers of other processes, spreading
// them round-robin (a query-frontend running apart: frontend.Querier).
type Pool struct {
	peers QuerierPeers
	conns connCache
	next  atomic.Uint64
}

// NewPool returns a pool over the queriers peers lists.
func NewPool(peers QuerierPeers) *Pool { return &Pool{peers: peers} }

// nextClient is a client of the next querier, round-robin; what names
// the jobs in the error when there is none.
func (p *Pool) nextClient(what string) (*Client, error) {
	addrs := p.peers.QuerierPeers()
	if len(addrs) == 0 {
		return nil, status.Errorf(codes.Unavailable, "no querier in the cluster to run %s jobs (memberlist lists none)", what)
	}
	c, err := p.conns.get(addrs[p.next.Add(1)%uint64(len(addrs))])
	if err != nil {
		return nil, err
	}
	return NewClient(c), nil
}

// SearchJob runs one job on the next querier.
func (p *Pool) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	c, err := p.nextClient("search")
	if err != nil {
		return nil, err
	}
	return c.SearchJob(ctx, tenant, job)
}

// MetricsJob runs one metrics job on the next querier.
func (p *Pool) MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error) {
	c, err := p.nextClient("metrics")
	if err != nil {
		return nil, err
	}
	return c.MetricsJob(ctx, tenant, job)
}

// Close closes the connections.
func (p *Pool) Close() error { return p.conns.close() }
