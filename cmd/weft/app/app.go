// Package app assembles a weft process from its configuration: the
// components of its -target, the write-path pipeline, the HTTP and gRPC
// servers, and their start and graceful stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/ThreeDotsLabs/watermill"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/httpconn"
	"github.com/weftdb/weft/internal/kafka"
	"github.com/weftdb/weft/internal/membership"
	"github.com/weftdb/weft/internal/memlimit"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/readiness"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/query/api"
	"github.com/weftdb/weft/query/frontend"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
	"github.com/weftdb/weft/sinks/blockbuilder"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/sources/otlp"
	"github.com/weftdb/weft/stages/distributor"
	"github.com/weftdb/weft/stages/dropspans"
)

// TargetAll runs every component in one process.
const TargetAll = "all"

// Targets lists the valid values of -target.
func Targets() []string { return append([]string{TargetAll}, pipelines.Components...) }

// SplitTargets returns the components of a -target value: one target or
// several separated by commas ("live-store,block-builder").
func SplitTargets(t string) []string {
	var out []string
	for _, p := range strings.Split(t, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// CheckTarget returns an error listing the valid targets when t is not one
// target or a comma-separated list of them.
func CheckTarget(t string) error {
	parts := SplitTargets(t)
	if len(parts) == 0 {
		return fmt.Errorf("empty target: valid targets are %s", strings.Join(Targets(), ", "))
	}
	for _, p := range parts {
		if !slices.Contains(Targets(), p) {
			return fmt.Errorf("unknown target %q (several targets may be given, separated by commas): valid targets are %s", p, strings.Join(Targets(), ", "))
		}
	}
	if len(parts) > 1 && slices.Contains(parts, TargetAll) {
		return fmt.Errorf("target %q: %s runs every component and cannot be combined with others", t, TargetAll)
	}
	return nil
}

// BuildInfo describes the binary.
type BuildInfo = api.BuildInfo

// App is one weft process.
type App struct {
	cfg      config.Config
	logger   *slog.Logger
	registry *prometheus.Registry
	pipeline *pipelines.Pipeline
	stores   *livestore.Set
	bucket   objstore.Bucket
	blocks   *blocklist.List
	limits   *overrides.Overrides
	memory   *memlimit.Limiter
	// readiness holds the checks of components that can stop being able
	// to work while the process runs; /ready fails while any fails.
	readiness *readiness.Set

	// Microservices mode: membership, and the live-stores of other
	// processes that queriers ask.
	cluster    atomic.Pointer[membership.Cluster]
	remoteLive *querier.RemoteLiveStores
	pool       *querier.Pool // queriers of other processes, for a lone query-frontend
	runsLive   bool          // a live-store runs in this process

	httpServer *http.Server
	httpLn     net.Listener
	grpcServer *grpc.Server
	grpcLn     net.Listener
	health     *health.Server

	state atomic.Int32 // 0 starting, 1 running, 2 stopping
}

// New builds the process described by cfg without starting anything. Every
// problem of the pipeline file is reported at once.
func New(cfg config.Config, logger *slog.Logger, build BuildInfo) (*App, error) {
	if err := CheckTarget(cfg.Target); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, registry: prometheus.NewRegistry(), stores: &livestore.Set{}, readiness: &readiness.Set{}}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	file, data := pipelines.DefaultFile, pipelines.Default
	if cfg.Pipeline.File != "" {
		b, err := os.ReadFile(cfg.Pipeline.File)
		if err != nil {
			return nil, fmt.Errorf("cannot read the pipeline file: %w", err)
		}
		file, data = cfg.Pipeline.File, b
	}
	spec, err := pipelines.Parse(file, data)
	if err != nil {
		return nil, err
	}
	a.bucket, err = storage.NewBucket(cfg.Storage.Trace.Store, a.registry, logger)
	if err != nil {
		return nil, err
	}
	a.blocks = blocklist.New(a.bucket, cfg.Storage.Trace.BlocklistPoll, a.registry, logger)
	if slices.ContainsFunc(SplitTargets(cfg.Target), func(t string) bool { return t == TargetAll || t == "querier" || t == "query-frontend" }) {
		// Not ready to query until the blocks are known; the write path
		// works meanwhile.
		a.readiness.Add("blocklist", a.blocks.Polled)
	}
	a.limits, err = overrides.New(cfg.Overrides, config.IsTempoOverridesKey, logger.With("component", "overrides"), a.registry)
	if err != nil {
		return nil, err
	}
	a.memory = memlimit.New(cfg.MemoryLimiter, a.registry)
	reg, err := pipelines.NewRegistry(
		otlp.NewFactory(cfg.OTLPNode(), a.memory),
		distributor.NewFactory(cfg.DistributorNode(), a.limits),
		dropspans.NewFactory(),
		livestore.NewFactory(cfg.LiveStore, a.stores),
		blockbuilder.NewFactory(cfg.BlockBuilder, a.bucket, blockbuilder.Hooks{
			OnBlock: a.blocks.Add,
			OnSafe:  a.stores.SetSafeBefore,
		}),
	)
	if err != nil {
		return nil, err
	}
	var transport pipelines.Transport
	if cfg.Target != TargetAll {
		// Components in separate processes exchange spans through Kafka.
		transport = kafka.NewTransport(cfg.Ingest.Kafka, watermill.NewSlogLogger(logger.With("component", "kafka"))).WithMetrics(a.registry)
	}
	a.pipeline, err = pipelines.Compile(spec, reg, pipelines.Options{
		Targets:      SplitTargets(cfg.Target),
		Logger:       logger,
		Metrics:      a.registry,
		CloseTimeout: cfg.Server.GracefulShutdownTimeout,
		Transport:    transport,
		Readiness:    a.readiness,
		// A querier or query-frontend alone runs no node of the pipeline.
		AllowEmpty: slices.ContainsFunc(SplitTargets(cfg.Target), func(t string) bool { return t == "querier" || t == "query-frontend" }),
	})
	if err != nil {
		return nil, err
	}

	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	// The querier and the query-frontend run in process: the frontend runs
	// search jobs on the local querier, which also serves them over gRPC
	// to frontends elsewhere.
	// In microservices mode the queriers also ask the live-stores of the
	// other processes, found through memberlist.
	targets := SplitTargets(cfg.Target)
	a.runsLive = cfg.Target == TargetAll || slices.Contains(targets, "live-store")
	var liveFinder querier.Finder = a.stores
	if cfg.Target != TargetAll {
		a.remoteLive = querier.NewRemoteLiveStores(livePeers{a}, a.registry)
		liveFinder = querier.LiveFinder{Local: a.stores, Remote: a.remoteLive}
	}
	// Queries read blocks through a bucket whose every call is bounded by
	// storage.trace.read_timeout: a hung store skips blocks (the answer
	// marked partial) instead of holding the query until its timeout.
	readBucket := storage.NewReadBucket(a.bucket, cfg.Storage.Trace.ReadTimeout)
	finder := querier.New(cfg.Querier, liveFinder, a.blocks, readBucket, a.registry).WithLogger(logger.With("component", "querier"))
	searcher := search.New(a.stores, a.blocks, readBucket)
	searcher.SetFinder(finder)
	searcher.TargetBytesPerJob = cfg.QueryFrontend.Search.TargetBytesPerJob
	if a.remoteLive != nil {
		// Tag names and values also come from the other live-stores.
		searcher.SetRemoteTags(a.remoteLive)
	}
	jobs := querier.NewJobRunner(searcher, cfg.Querier, a.registry)
	if a.remoteLive != nil {
		jobs.WithRemoteLiveStores(a.remoteLive)
	}
	// A query-frontend without a querier in its process sends the jobs to
	// the queriers of the cluster.
	var runner frontend.Querier = jobs
	if slices.Contains(targets, "query-frontend") && !slices.Contains(targets, "querier") {
		a.pool = querier.NewPool(livePeers{a})
		runner = a.pool
	}
	front := frontend.New(cfg.QueryFrontend, searcher, runner, finder, a.registry)
	front.SetMemoryLimiter(a.memory)
	// The v2 trace-by-ID q filter is bound as a search's query is.
	traceQLLimits := traceql.Limits{MaxBytes: cfg.QueryFrontend.MaxQueryExpressionSizeBytes, MaxDepth: cfg.QueryFrontend.MaxQueryNestingDepth,
		MaxStages: cfg.QueryFrontend.MaxQueryPipelineStages, MaxRegexSize: cfg.QueryFrontend.MaxQueryRegexSize}
	handler, err := api.New(api.Options{
		Finder:                    finder,
		Searcher:                  front,
		Tagger:                    searcher,
		MaxBytesPerTagValuesQuery: cfg.Overrides.Defaults.Read.MaxBytesPerTagValuesQuery,
		TenantMaxBytesPerTagValuesQuery: func(tenant string) int {
			return a.limits.For(tenant).Read.MaxBytesPerTagValuesQuery
		},
		TagQueryTimeout: cfg.QueryFrontend.Search.QueryTimeout,
		MaxTagReadBytes: cfg.QueryFrontend.Search.MaxTagReadBytes,
		LeftOutBlocks: func(tenant string) []partial.Skip {
			var out []partial.Skip
			for _, id := range a.blocks.Unreadable(tenant) {
				if reason := a.blocks.UnreadableReason(tenant, id); reason != "" {
					out = append(out, partial.Skip{Tenant: tenant, Block: id.String(), Reason: partial.ReasonDamaged,
						Error: "left out of the block list: " + reason})
				}
			}
			return out
		},
		TenantMaxBytesPerTrace: func(tenant string) int {
			return a.limits.For(tenant).Global.MaxBytesPerTrace
		},
		MultitenancyEnabled: cfg.MultitenancyEnabled,
		NoMultiTenantReads:  !cfg.QueryFrontend.MultiTenantQueriesEnabled,
		DefaultSearchLimit:  cfg.QueryFrontend.Search.DefaultResultLimit,
		TraceQLLimits:       traceQLLimits,
		Build:               build,
		Ready:               a.ready,
		Gatherer:            a.registry,
		Metrics:             a.registry,
		Logger:              logger.With("component", "query"),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot build the HTTP API: %w", err)
	}
	a.httpServer = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.Server.HTTPServerReadHeaderTimeout,
		MaxHeaderBytes:    otlp.MaxHeaderBytes,
		ReadTimeout:       cfg.Server.HTTPServerReadTimeout,
		WriteTimeout:      cfg.Server.HTTPServerWriteTimeout,
		IdleTimeout:       cfg.Server.HTTPServerIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	a.health = health.NewServer()
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // until Start
	a.grpcServer = grpc.NewServer()
	healthpb.RegisterHealthServer(a.grpcServer, a.health)
	querier.RegisterJobService(a.grpcServer, jobs)
	if a.runsLive && cfg.Target != TargetAll {
		// Only this process's live-store: a LiveFinder here would ask the
		// others back.
		local := search.New(a.stores, nil, nil)
		querier.RegisterLiveStoreService(a.grpcServer, a.stores, local)
	}
	return a, nil
}

func (a *App) ready() error {
	switch a.state.Load() {
	case 0:
		return errors.New("starting")
	case 2:
		return errors.New("Application is stopping")
	}
	return a.readiness.Err()
}

// Start opens the servers and starts the pipeline. On error, whatever was
// started is stopped again.
func (a *App) Start(ctx context.Context) error {
	var err error
	if a.httpLn, err = net.Listen("tcp", a.cfg.Server.HTTPAddr()); err != nil {
		return fmt.Errorf("cannot listen for HTTP on %s (server.http_listen_port): %w", a.cfg.Server.HTTPAddr(), err)
	}
	a.httpLn = httpconn.Listener(a.httpLn, "api", httpconn.Refused(a.registry))
	if a.grpcLn, err = net.Listen("tcp", a.cfg.Server.GRPCAddr()); err != nil {
		_ = a.httpLn.Close()
		return fmt.Errorf("cannot listen for gRPC on %s (server.grpc_listen_port): %w", a.cfg.Server.GRPCAddr(), err)
	}
	go func() {
		if err := a.httpServer.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("HTTP server stopped", "err", err)
		}
	}()
	go func() {
		if err := a.grpcServer.Serve(a.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.logger.Error("gRPC server stopped", "err", err)
		}
	}()
	if err := a.blocks.Start(ctx); err != nil {
		a.grpcServer.Stop()
		_ = a.httpServer.Close()
		return err
	}
	_ = a.limits.Start(ctx) // never fails: it only starts the reload loop
	_ = a.memory.Start(ctx) // never fails: it only starts the checks
	if err := a.pipeline.Start(ctx); err != nil {
		_ = a.limits.Shutdown(ctx)
		_ = a.memory.Shutdown(ctx)
		a.blocks.Stop()
		a.grpcServer.Stop()
		_ = a.httpServer.Close()
		return err
	}
	if a.cfg.Target != TargetAll && (len(a.cfg.Memberlist.JoinMembers) > 0 || len(a.cfg.Memberlist.BindAddr) > 0) {
		if err := a.joinCluster(); err != nil {
			_ = a.pipeline.Shutdown(ctx)
			a.blocks.Stop()
			a.grpcServer.Stop()
			_ = a.httpServer.Close()
			return err
		}
	}
	// Logged before /ready answers ready, so that whoever sees it ready
	// also finds the line.
	a.logger.Info("weft is ready", "target", a.cfg.Target, "http", a.httpLn.Addr().String(), "grpc", a.grpcLn.Addr().String())
	a.state.Store(1)
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return nil
}

// joinCluster joins memberlist, advertising this process's components and
// gRPC address. A process of a microservices deployment joins when
// memberlist.join_members or memberlist.bind_addr is set (the first node
// of a cluster may have nothing to join yet).
func (a *App) joinCluster() error {
	grpcAddr := a.grpcLn.Addr().(*net.TCPAddr)
	meta := membership.Meta{Roles: SplitTargets(a.cfg.Target), GRPCAddr: grpcAddr.String(), HTTPAddr: a.httpLn.Addr().String()}
	if grpcAddr.IP.IsUnspecified() {
		// Bound to every interface: advertise the address memberlist uses.
		if host := a.cfg.Memberlist.AdvertiseAddr; host != "" {
			meta.GRPCAddr = net.JoinHostPort(host, strconv.Itoa(grpcAddr.Port))
		} else if h, err := os.Hostname(); err == nil {
			meta.GRPCAddr = net.JoinHostPort(h, strconv.Itoa(grpcAddr.Port))
		}
	}
	c, err := membership.Join(a.cfg.Memberlist, meta, a.logger.With("component", "memberlist"), a.registry)
	if err != nil {
		return fmt.Errorf("cannot join the cluster (memberlist): %w", err)
	}
	a.cluster.Store(c)
	return nil
}

// livePeers lists the gRPC addresses of the live-stores and queriers of
// the other processes of the cluster.
type livePeers struct{ a *App }

func (p livePeers) LiveStorePeers() []string { return p.role("live-store") }
func (p livePeers) QuerierPeers() []string   { return p.role("querier") }

func (p livePeers) role(role string) []string {
	c := p.a.cluster.Load()
	if c == nil {
		return nil
	}
	var out []string
	for _, m := range c.Members(role) {
		if m.Name != c.Name() && m.Meta.GRPCAddr != "" {
			out = append(out, m.Meta.GRPCAddr)
		}
	}
	return out
}

// Shutdown stops intake, drains the pipeline, then closes the servers.
func (a *App) Shutdown(ctx context.Context) error {
	a.state.Store(2)
	a.health.Shutdown()
	var errs []error
	if c := a.cluster.Load(); c != nil {
		// Not fatal: the others notice a member that left without saying.
		if err := c.Leave(ctx); err != nil {
			a.logger.Warn("cannot leave the cluster cleanly", "err", err)
		}
	}
	if a.remoteLive != nil {
		_ = a.remoteLive.Close()
	}
	if a.pool != nil {
		_ = a.pool.Close()
	}
	if err := a.pipeline.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.httpServer.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cannot stop the HTTP server: %w", err))
	}
	a.blocks.Stop()
	_ = a.limits.Shutdown(ctx)
	_ = a.memory.Shutdown(ctx)
	if err := a.bucket.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close the object store: %w", err))
	}
	stopped := make(chan struct{})
	go func() { a.grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.grpcServer.Stop()
	}
	return errors.Join(errs...)
}

// HTTPAddr is the bound address of the query API.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// OTLPAddrs are the bound OTLP gRPC and HTTP addresses of the pipeline's
// otlp node named "otlp", empty when it does not run here.
func (a *App) OTLPAddrs() (grpcAddr, httpAddr string) {
	if s, ok := a.pipeline.Node("otlp").(*otlp.Source); ok {
		return s.Addrs()
	}
	return "", ""
}

// Registry is the process's Prometheus registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }
