package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/httpconn"
	"github.com/weftdb/weft/internal/kafka"
	"github.com/weftdb/weft/internal/memlimit"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/modules"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/query/api"
	"github.com/weftdb/weft/query/frontend"
	tqmetrics "github.com/weftdb/weft/query/metrics"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/streaming/tempopb"
	"github.com/weftdb/weft/query/traceql"
	"github.com/weftdb/weft/sinks/blockbuilder"
	"github.com/weftdb/weft/sinks/generator"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/sources/jaegerzipkin"
	"github.com/weftdb/weft/sources/otlp"
	"github.com/weftdb/weft/stages/distributor"
	"github.com/weftdb/weft/stages/dropspans"
)

// The modules of a weft process. A module's dependencies are built and
// started before it and stopped after it, so the order of a shutdown is
// the graph's: the components (the distributor's OTLP receivers first,
// inside the pipeline), then the pipeline drains and flushes its sinks,
// then the process leaves the cluster, then the query API and the servers
// stop, the stores last. Adding a component is adding its module here.
const (
	modGRPCServer    = "grpc-server"
	modObjectStore   = "object-store"
	modBlockList     = "block-list"
	modOverrides     = "overrides"
	modMemoryLimiter = "memory-limiter"
	modQueryAPI      = "query-api"
	modHTTPServer    = "http-server"
	modMembership    = "membership"
	modPipeline      = "pipeline"
)

// Graph is the module graph of weft, the same for every target; its
// modules are not meant to be initialised (see App).
func Graph() *modules.Graph { return (&App{}).graph() }

// graph returns the module graph whose modules build a's parts. The order
// of registration breaks ties: among modules that do not depend on each
// other, the first registered starts first and stops last.
func (a *App) graph() *modules.Graph {
	g := &modules.Graph{}
	g.Add(modules.Module{Name: modGRPCServer, Init: a.initGRPCServer,
		Description: "gRPC server (server.grpc_listen_port): health, and the services of the components that other processes call"})
	g.Add(modules.Module{Name: modObjectStore, Init: a.initObjectStore,
		Description: "object storage of the blocks (storage.trace)"})
	g.Add(modules.Module{Name: modBlockList, Deps: []string{modObjectStore}, Init: a.initBlockList,
		Description: "the blocks in object storage, polled every storage.trace.blocklist_poll"})
	g.Add(modules.Module{Name: modOverrides, Init: a.initOverrides,
		Description: "per-tenant limits (overrides), reloaded from their file"})
	g.Add(modules.Module{Name: modMemoryLimiter, Init: a.initMemoryLimiter,
		Description: "refuses work while the process is short of memory (memory_limiter)"})
	g.Add(modules.Module{Name: modQueryAPI, Deps: []string{modObjectStore, modBlockList, modOverrides, modMemoryLimiter}, Init: a.initQueryAPI,
		Description: "the Tempo HTTP API over the blocks and the live-stores: trace by ID, search, tags, /ready, /metrics"})
	g.Add(modules.Module{Name: modHTTPServer, Deps: []string{modQueryAPI}, Init: a.initHTTPServer,
		Description: "HTTP server (server.http_listen_port) of the query API"})
	g.Add(modules.Module{Name: modMembership, Deps: []string{modHTTPServer, modGRPCServer}, Init: a.initMembership,
		Description: "memberlist: advertises this process's components and finds the others', when memberlist.join_members or bind_addr is set"})
	g.Add(modules.Module{Name: modPipeline, Deps: []string{modMembership, modHTTPServer, modGRPCServer, modObjectStore, modBlockList, modOverrides, modMemoryLimiter}, Init: a.initPipeline,
		Description: "the write path of pipelines/: the nodes of this process's components, over gochannel in process and Kafka between processes"})

	g.Add(modules.Module{Name: TargetAll, Target: true, Deps: []string{"distributor", "live-store", "block-builder", "metrics-generator", "querier", "query-frontend", modBackendScheduler, modBackendWorker},
		Description: "every component in one process (monolithic mode, no Kafka)"})
	g.Add(modules.Module{Name: "distributor", Target: true, Deps: []string{modPipeline, modMembership}, Init: a.initComponent,
		Description: "OTLP ingest (gRPC, HTTP), validation, per-tenant limits, sharding by trace ID; publishes the spans to the live-stores and block-builders"})
	g.Add(modules.Module{Name: "live-store", Target: true, Deps: []string{modPipeline, modMembership, modGRPCServer}, Init: a.initLiveStore,
		Description: "the recent traces in memory, queryable over gRPC; consumes its Kafka partitions and replays them on start"})
	g.Add(modules.Module{Name: "block-builder", Target: true, Deps: []string{modPipeline, modMembership}, Init: a.initComponent,
		Description: "writes the spans as Parquet blocks to object storage (WAL until uploaded); commits Kafka offsets only after the upload"})
	g.Add(modules.Module{Name: "metrics-generator", Target: true, Deps: []string{modPipeline, modMembership, modOverrides}, Init: a.initComponent,
		Description: "derives span metrics and service graphs from the spans (the tenants' overrides.*.metrics_generator.processors) and sends them by Prometheus remote write"})
	g.Add(modules.Module{Name: "querier", Target: true, Deps: []string{modQueryAPI, modMembership, modGRPCServer}, Init: a.initQuerier,
		Description: "runs search jobs over the blocks and the live-stores, for the query-frontends (gRPC)"})
	g.Add(modules.Module{Name: "query-frontend", Target: true, Deps: []string{modQueryAPI, modMembership, modGRPCServer}, Init: a.initQueryFrontend,
		Description: "the query HTTP API and the streaming gRPC API; splits each search into jobs for the queriers and merges their results"})
	// The scheduler before the worker: in one process, the worker stops
	// (and reports its job) before the scheduler.
	g.Add(modules.Module{Name: modBackendScheduler, Target: true, Deps: []string{modObjectStore, modBlockList, modOverrides, modGRPCServer, modHTTPServer}, Init: a.initBackendScheduler,
		Description: "plans compaction and retention jobs per tenant from the block list and hands them to the backend workers; one runs at a time (its lock in the bucket)"})
	// Every process serves /ready and /metrics (the HTTP server) and gRPC
	// health, a worker too.
	g.Add(modules.Module{Name: modBackendWorker, Target: true, Deps: []string{modObjectStore, modOverrides, modMemoryLimiter, modHTTPServer, modGRPCServer}, Init: a.initBackendWorker,
		Description: "runs backend jobs: merges blocks into bigger ones (compaction), lets blocks past retention go and deletes them"})
	return g
}

func (a *App) initGRPCServer() (modules.Service, error) {
	a.health = health.NewServer()
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // until Start
	unary, stream := metrics.GRPCInterceptors(a.registry)                   // tempo_request_duration_seconds
	a.grpcServer = grpc.NewServer(grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	healthpb.RegisterHealthServer(a.grpcServer, a.health)
	return modules.Funcs{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", a.cfg.Server.GRPCAddr())
			if err != nil {
				return fmt.Errorf("cannot listen for gRPC on %s (server.grpc_listen_port): %w", a.cfg.Server.GRPCAddr(), err)
			}
			a.grpcLn = ln
			go func() {
				if err := a.grpcServer.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
					a.logger.Error("gRPC server stopped", "err", err)
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			stopped := make(chan struct{})
			go func() { a.grpcServer.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				a.grpcServer.Stop()
			}
			return nil
		},
	}, nil
}

func (a *App) initObjectStore() (modules.Service, error) {
	var err error
	if a.bucket, err = storage.NewBucket(a.cfg.Storage.Trace.Store, a.registry, a.logger); err != nil {
		return nil, err
	}
	return modules.Funcs{OnStop: func(context.Context) error {
		if err := a.bucket.Close(); err != nil {
			return fmt.Errorf("cannot close the object store: %w", err)
		}
		return nil
	}}, nil
}

func (a *App) initBlockList() (modules.Service, error) {
	a.blocks = blocklist.New(a.bucket, a.cfg.Storage.Trace.BlocklistPoll, a.registry, a.logger)
	// Tenant indexes are read unless this process's backend scheduler
	// writes them (initBackendScheduler).
	a.blocks.ReadIndexes(a.cfg.Storage.Trace.BlocklistPollFallback, a.cfg.Storage.Trace.BlocklistPollStaleTenantIndex)
	return modules.Funcs{
		OnStart: a.blocks.Start,
		OnStop:  func(context.Context) error { a.blocks.Stop(); return nil },
	}, nil
}

func (a *App) initOverrides() (modules.Service, error) {
	var err error
	a.limits, err = overrides.New(a.cfg.Overrides, config.IsTempoOverridesKey, a.logger.With("component", "overrides"), a.registry)
	if err != nil {
		return nil, err
	}
	return modules.Funcs{
		OnStart: func(ctx context.Context) error { _ = a.limits.Start(ctx); return nil },    // never fails: it only starts the reload loop
		OnStop:  func(ctx context.Context) error { _ = a.limits.Shutdown(ctx); return nil }, // what it reports is logged already
	}, nil
}

func (a *App) initMemoryLimiter() (modules.Service, error) {
	a.memory = memlimit.New(a.cfg.MemoryLimiter, a.registry)
	return modules.Funcs{
		OnStart: func(ctx context.Context) error { _ = a.memory.Start(ctx); return nil }, // never fails: it only starts the checks
		OnStop:  func(ctx context.Context) error { _ = a.memory.Shutdown(ctx); return nil },
	}, nil
}

// initQueryAPI builds the query path of the process: trace by ID and
// search over the blocks and over the live-stores, this process's and, in a
// cluster, the others' (found through membership), and the HTTP API over
// it. Search jobs run on this process's querier when one runs here, else
// on the queriers of the cluster.
func (a *App) initQueryAPI() (modules.Service, error) {
	cfg := a.cfg
	a.remoteLive = querier.NewRemoteLiveStores(livePeers{a}, a.registry)
	a.pool = querier.NewPool(livePeers{a})
	liveFinder := querier.LiveFinder{Local: a.stores, Remote: a.remoteLive}
	// Queries read blocks through a bucket whose every call is bounded by
	// storage.trace.read_timeout: a hung store skips blocks (the answer
	// marked partial) instead of holding the query until its timeout.
	readBucket := storage.NewReadBucket(a.bucket, cfg.Storage.Trace.ReadTimeout)
	a.finder = querier.New(cfg.Querier, liveFinder, a.blocks, readBucket, a.registry).WithLogger(a.logger.With("component", "querier"))
	a.searcher = search.New(a.stores, a.blocks, readBucket)
	a.searcher.SetFinder(a.finder)
	a.searcher.TargetBytesPerJob = cfg.QueryFrontend.Search.TargetBytesPerJob
	// Tag names and values also come from the other live-stores.
	a.searcher.SetRemoteTags(a.remoteLive)
	fcfg := cfg.QueryFrontend
	fcfg.QueryEndCutoff = EffectiveQueryEndCutoff(cfg)
	if cfg.QueryEndCutoffSet && fcfg.QueryEndCutoff > 0 && slices.Equal(a.targets, []string{TargetAll}) {
		a.logger.Info("query_frontend.query_end_cutoff is set: searches and metrics queries leave out the newest spans although a monolithic process could find them as soon as their push is answered; remove the key to search them at once",
			"query_end_cutoff", fcfg.QueryEndCutoff)
	}
	if after, window := cfg.QueryFrontend.Metrics.QueryBackendAfter, cfg.LiveStore.Window; after > window {
		a.logger.Warn("query_frontend.metrics.query_backend_after is longer than live_store.window: TraceQL metrics count the spans that started between the two from the live-stores, which no longer hold all of them; keep it under live_store.window",
			"query_backend_after", after, "window", window)
	}
	front := frontend.New(fcfg, a.searcher, jobRoute{a}, a.finder, a.registry)
	front.SetMemoryLimiter(a.memory)
	// TraceQL metrics: the same places, the same queriers.
	a.metricsRunner = tqmetrics.NewRunner(a.stores, a.blocks, readBucket)
	a.metricsRunner.TargetBytesPerJob = cfg.QueryFrontend.Metrics.TargetBytesPerJob
	front.SetMetrics(a.metricsRunner, jobRoute{a}, func(tenant string) time.Duration {
		return a.limits.For(tenant).Read.MaxMetricsDuration
	}, a.registry)
	// The v2 trace-by-ID q filter is bound as a search's query is.
	traceQLLimits := traceql.Limits{MaxBytes: cfg.QueryFrontend.MaxQueryExpressionSizeBytes, MaxDepth: cfg.QueryFrontend.MaxQueryNestingDepth,
		MaxStages: cfg.QueryFrontend.MaxQueryPipelineStages, MaxRegexSize: cfg.QueryFrontend.MaxQueryRegexSize}
	var err error
	a.handler, err = api.New(api.Options{
		Finder:                    a.finder,
		Searcher:                  front,
		MetricsQuerier:            front,
		Tagger:                    a.searcher,
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
		Build:               a.build,
		Ready:               a.ready,
		Gatherer:            metrics.WithTempoNames(a.registry), // weft_* also under Tempo's names
		Metrics:             a.registry,
		Logger:              a.logger.With("component", "query"),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot build the HTTP API: %w", err)
	}
	a.streaming, err = api.NewStreamingServer(a.handler, api.StreamOptions{MaxPacketSize: cfg.QueryFrontend.MaxGRPCStreamingPacketSize, Metrics: a.registry})
	if err != nil {
		return nil, fmt.Errorf("cannot build the streaming API: %w", err)
	}
	// The explorer goes in front of the HTTP API only (the streaming API
	// above serves the API itself).
	if a.handler, err = a.withUI(a.handler); err != nil {
		return nil, err
	}
	return modules.Funcs{OnStop: func(context.Context) error {
		return errors.Join(a.remoteLive.Close(), a.pool.Close())
	}}, nil
}

// EffectiveQueryEndCutoff is the query_frontend.query_end_cutoff the
// query-frontend of a process with cfg applies to the end of searches and
// TraceQL metrics queries (the tag routes do not go through it).
//
// Tempo's cutoff (30s by default) exists because live-stores read the
// spans from Kafka and lag the push's acknowledgement: a query reaching up
// to now could miss spans already acknowledged. It is kept as configured
// for every target but "all", even a list naming every component, whose
// live-stores may read from Kafka. With -target=all (monolithic) every edge
// of the pipeline is in process, none through Kafka, and the live-store
// keeps a push's spans before the push is acknowledged
// (livestore.Store.Consume through pipelines.OnSettled), so nothing
// acknowledged is missing at the end of the range: the cutoff is 0 unless
// the file sets query_frontend.query_end_cutoff (cfg.QueryEndCutoffSet),
// which is then honoured as written (a Tempo file that sets it keeps its
// behaviour).
func EffectiveQueryEndCutoff(cfg config.Config) time.Duration {
	if cfg.QueryEndCutoffSet || !slices.Equal(SplitTargets(cfg.Target), []string{TargetAll}) {
		return cfg.QueryFrontend.QueryEndCutoff
	}
	return 0
}

// jobRoute sends the query-frontend's search jobs to this process's
// querier when one runs here, else to the queriers of the cluster.
type jobRoute struct{ a *App }

func (r jobRoute) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	if r.a.localJobs != nil {
		return r.a.localJobs.SearchJob(ctx, tenant, job)
	}
	return r.a.pool.SearchJob(ctx, tenant, job)
}

func (r jobRoute) MetricsJob(ctx context.Context, tenant string, job tqmetrics.Job) (*tqmetrics.JobResult, error) {
	if r.a.localJobs != nil {
		return r.a.localJobs.MetricsJob(ctx, tenant, job)
	}
	return r.a.pool.MetricsJob(ctx, tenant, job)
}

func (a *App) initHTTPServer() (modules.Service, error) {
	a.routes = http.NewServeMux()
	a.routes.Handle("/", a.handler)
	a.routes.HandleFunc("GET /status/config", a.serveStatusConfig)
	var handler http.Handler = a.routes
	if a.cfg.StreamOverHTTPEnabled {
		handler = a.grpcOverHTTP(a.routes)
	}
	a.httpServer = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: a.cfg.Server.HTTPServerReadHeaderTimeout,
		MaxHeaderBytes:    otlp.MaxHeaderBytes,
		ReadTimeout:       a.cfg.Server.HTTPServerReadTimeout,
		WriteTimeout:      a.cfg.Server.HTTPServerWriteTimeout,
		IdleTimeout:       a.cfg.Server.HTTPServerIdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	if a.cfg.StreamOverHTTPEnabled {
		// gRPC clients speak HTTP/2 without TLS (prior knowledge).
		a.httpServer.Protocols = new(http.Protocols)
		a.httpServer.Protocols.SetHTTP1(true)
		a.httpServer.Protocols.SetUnencryptedHTTP2(true)
	}
	return modules.Funcs{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", a.cfg.Server.HTTPAddr())
			if err != nil {
				return fmt.Errorf("cannot listen for HTTP on %s (server.http_listen_port): %w", a.cfg.Server.HTTPAddr(), err)
			}
			a.httpLn = httpconn.Listener(ln, "api", httpconn.Refused(a.registry))
			go func() {
				if err := a.httpServer.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
					a.logger.Error("HTTP server stopped", "err", err)
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			if err := a.httpServer.Shutdown(ctx); err != nil {
				return fmt.Errorf("cannot stop the HTTP server: %w", err)
			}
			return nil
		},
	}, nil
}

// serveStatusConfig answers GET /status/config as Tempo does: the
// effective configuration as YAML, its secrets redacted; ?mode=defaults
// gives the defaults and ?mode=diff what differs from them.
func (a *App) serveStatusConfig(w http.ResponseWriter, r *http.Request) {
	out, err := a.cfg.Show(r.URL.Query().Get("mode"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}

// grpcOverHTTP sends gRPC requests (HTTP/2, content type application/grpc)
// to the process's gRPC server, whose services include the streaming query
// API in a query-frontend, and the others to next
// (stream_over_http_enabled).
func (a *App) grpcOverHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") && a.grpcServer != nil {
			a.grpcServer.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// initMembership joins memberlist when memberlist.join_members or
// memberlist.bind_addr is set (the first node of a cluster may have nothing
// to join yet), advertising the components of this process and its
// addresses; it leaves on stop.
func (a *App) initMembership() (modules.Service, error) {
	if len(a.cfg.Memberlist.JoinMembers) == 0 && len(a.cfg.Memberlist.BindAddr) == 0 {
		return nil, nil
	}
	return modules.Funcs{
		OnStart: func(context.Context) error { return a.joinCluster() },
		OnStop: func(ctx context.Context) error {
			if c := a.cluster.Load(); c != nil {
				// Not fatal: the others notice a member that left without saying.
				if err := c.Leave(ctx); err != nil {
					a.logger.Warn("cannot leave the cluster cleanly", "err", err)
				}
			}
			return nil
		},
	}, nil
}

// initPipeline compiles the pipeline file for the components of this
// process: their nodes run here, the edges to other processes go through
// Kafka. It starts sinks before sources and stops sources first, then
// drains, then stops the sinks.
func (a *App) initPipeline() (modules.Service, error) {
	cfg := a.cfg
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
	reg, err := pipelines.NewRegistry(
		otlp.NewFactory(cfg.OTLPNode(), a.memory),
		jaegerzipkin.NewJaegerFactory(cfg.JaegerNode(), a.memory),
		jaegerzipkin.NewZipkinFactory(cfg.ZipkinNode(), a.memory),
		distributor.NewFactory(cfg.DistributorNode(), a.limits),
		dropspans.NewFactory(),
		livestore.NewFactory(cfg.LiveStore, a.stores),
		generator.NewFactory(cfg.MetricsGenerator, a.limits),
		blockbuilder.NewFactory(cfg.BlockBuilder, a.bucket, blockbuilder.Hooks{
			OnBlock: a.blocks.Add,
			OnSafe:  a.stores.SetSafeBefore,
		}),
	)
	if err != nil {
		return nil, err
	}
	// Edges whose ends run in different processes go through Kafka; the
	// transport connects only for such edges.
	transport := kafka.NewTransport(cfg.Ingest.Kafka, watermill.NewSlogLogger(a.logger.With("component", "kafka"))).WithMetrics(a.registry)
	a.pipeline, err = pipelines.Compile(spec, reg, pipelines.Options{
		Targets:      a.targets,
		Logger:       a.logger,
		Metrics:      a.registry,
		CloseTimeout: cfg.Server.GracefulShutdownTimeout,
		Transport:    transport,
		Readiness:    a.readiness,
	})
	if err != nil {
		return nil, err
	}
	if limit := a.memory.SetDerived(a.pipeline.MemoryBound()); limit > 0 {
		a.logger.Info("Go runtime memory limit set from the components' bounds (memory_limiter.runtime_limit_bytes)", "bytes", limit)
	}
	return modules.Funcs{OnStart: a.pipeline.Start, OnStop: a.pipeline.Shutdown}, nil
}

// initComponent is the module of a component whose work is all in the
// pipeline's nodes of its target.
func (a *App) initComponent() (modules.Service, error) { return nil, nil }

// initLiveStore serves this process's live-store to the queriers of other
// processes over gRPC.
func (a *App) initLiveStore() (modules.Service, error) {
	// Only this process's live-store: a LiveFinder here would ask the
	// others back.
	querier.RegisterLiveStoreService(a.grpcServer, a.stores, search.New(a.stores, nil, nil), tqmetrics.NewRunner(a.stores, nil, nil))
	return nil, nil
}

// initQuerier runs search jobs here, for this process's query-frontend and
// over gRPC for the others. Not ready to query until the blocks are known.
func (a *App) initQuerier() (modules.Service, error) {
	a.localJobs = querier.NewJobRunner(a.searcher, a.cfg.Querier, a.registry).WithRemoteLiveStores(a.remoteLive).SetMetrics(a.metricsRunner)
	querier.RegisterJobService(a.grpcServer, a.localJobs)
	a.readiness.Add("blocklist", a.blocks.Polled)
	return nil, nil
}

// initQueryFrontend makes the process not ready to query until the blocks
// are known; the write path works meanwhile.
//
// It serves the streaming query API (tempopb.StreamingQuerier) on the gRPC
// server, and on the HTTP port with
// stream_over_http_enabled (see initHTTPServer).
func (a *App) initQueryFrontend() (modules.Service, error) {
	a.readiness.Add("blocklist", a.blocks.Polled)
	tempopb.RegisterStreamingQuerierServer(a.grpcServer, a.streaming)
	return nil, nil
}

// GraphMarkdown renders the module graph for docs/architecture.md: a
// Mermaid flowchart (an arrow from a module to each of its dependencies), a
// table of the modules with what each does and what it needs, and the start
// and stop orders of the targets.
func GraphMarkdown() string {
	g := Graph()
	var b strings.Builder
	b.WriteString("```mermaid\nflowchart TD\n")
	for _, m := range g.Modules() {
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", mermaidID(m.Name), m.Name)
	}
	for _, m := range g.Modules() {
		for _, d := range m.Deps {
			fmt.Fprintf(&b, "  %s --> %s\n", mermaidID(m.Name), mermaidID(d))
		}
	}
	for _, m := range g.Targets() {
		fmt.Fprintf(&b, "  style %s stroke-width:3px\n", mermaidID(m.Name))
	}
	b.WriteString("```\n\n")
	b.WriteString("| module | target | depends on | what it does |\n|---|---|---|---|\n")
	for _, m := range g.Modules() {
		target := ""
		if m.Target {
			target = "yes"
		}
		deps := make([]string, 0, len(m.Deps))
		for _, d := range m.Deps {
			deps = append(deps, "`"+d+"`")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, target, strings.Join(deps, ", "), m.Description)
	}
	b.WriteString("\nStart order of each target (stop order is the reverse):\n\n")
	for _, m := range g.Targets() {
		order, err := g.Resolve(m.Name)
		if err != nil {
			panic(err) // TestGraph checks the graph
		}
		fmt.Fprintf(&b, "- `%s`: %s\n", m.Name, strings.Join(order, " → "))
	}
	return b.String()
}

// mermaidID is a node ID Mermaid accepts ("live-store" → live_store).
func mermaidID(name string) string { return strings.ReplaceAll(name, "-", "_") }
