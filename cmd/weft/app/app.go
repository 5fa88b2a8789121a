// Package app assembles a weft process from its configuration: the
// modules of its -target (one per component and per shared piece, each
// naming its dependencies, see modules.go), started in dependency order
// and stopped in reverse.
package app

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/membership"
	"github.com/weftdb/weft/internal/memlimit"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/modules"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/readiness"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/query/api"
	tqmetrics "github.com/weftdb/weft/query/metrics"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/sources/otlp"
)

// TargetAll runs every component in one process.
const TargetAll = "all"

// Targets lists the valid values of -target: the components that run,
// "all" first.
func Targets() []string {
	var out []string
	for _, m := range Graph().Targets() {
		out = append(out, m.Name)
	}
	return out
}

// TargetHelp is one line per valid -target, saying what it runs.
func TargetHelp() string {
	var b strings.Builder
	width := 0
	for _, m := range Graph().Targets() {
		width = max(width, len(m.Name))
	}
	for _, m := range Graph().Targets() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, m.Name, m.Description)
	}
	return b.String()
}

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
	valid := Targets()
	if len(parts) == 0 {
		return fmt.Errorf("empty target: valid targets are %s", strings.Join(valid, ", "))
	}
	for _, p := range parts {
		if slices.Contains(valid, p) {
			continue
		}
		if slices.Contains(pipelines.Components, p) {
			return fmt.Errorf("target %q does not run yet (planned): valid targets are %s", p, strings.Join(valid, ", "))
		}
		return fmt.Errorf("unknown target %q (several targets may be given, separated by commas): valid targets are %s", p, strings.Join(valid, ", "))
	}
	if len(parts) > 1 && slices.Contains(parts, TargetAll) {
		return fmt.Errorf("target %q: %s runs every component and cannot be combined with others", t, TargetAll)
	}
	return nil
}

// BuildInfo describes the binary.
type BuildInfo = api.BuildInfo

// App is one weft process: the modules of its -target (see modules.go),
// built by New, started by Start and stopped by Shutdown.
type App struct {
	cfg       config.Config
	logger    *slog.Logger
	build     BuildInfo
	targets   []string // the -target values
	roles     []string // the components this process runs, advertised in the cluster
	registry  *prometheus.Registry
	stores    *livestore.Set // the live-stores of this process, filled by the pipeline
	readiness *readiness.Set // /ready fails while any check fails
	services  *modules.Services

	// Set by the modules' Init, each after its dependencies.
	bucket        objstore.Bucket                    // object-store
	blocks        *blocklist.List                    // block-list
	limits        *overrides.Overrides               // overrides
	memory        *memlimit.Limiter                  // memory-limiter
	handler       http.Handler                       // query-api
	remoteLive    *querier.RemoteLiveStores          // query-api: the live-stores of other processes
	pool          *querier.Pool                      // query-api: the queriers of other processes
	finder        *querier.Querier                   // query-api
	searcher      *search.Searcher                   // query-api
	metricsRunner *tqmetrics.Runner                  // query-api: TraceQL metrics jobs over the same places
	localJobs     *querier.JobRunner                 // querier: set when a querier runs here
	httpServer    *http.Server                       // http-server
	httpLn        net.Listener                       // http-server, once started
	grpcServer    *grpc.Server                       // grpc-server
	grpcLn        net.Listener                       // grpc-server, once started
	health        *health.Server                     // grpc-server
	cluster       atomic.Pointer[membership.Cluster] // membership, once joined
	pipeline      *pipelines.Pipeline                // pipeline
	routes        *http.ServeMux                     // http-server: the query API, and the status pages of components
	scheduler     *scheduler.Scheduler               // backend-scheduler: set when the scheduler runs here

	state atomic.Int32 // 0 starting, 1 running, 2 stopping
}

// New builds the process described by cfg without starting anything: the
// modules of its -target and of their dependencies, in dependency order.
// Every problem of the pipeline file is reported at once.
func New(cfg config.Config, logger *slog.Logger, build BuildInfo) (*App, error) {
	if err := CheckTarget(cfg.Target); err != nil {
		return nil, err
	}
	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	a := &App{cfg: cfg, logger: logger, build: build, targets: SplitTargets(cfg.Target), registry: prometheus.NewRegistry(),
		stores: &livestore.Set{}, readiness: &readiness.Set{}}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.BuildInfo(a.registry, build.Version, build.Revision, build.Branch, build.GoVersion)
	g := a.graph()
	names, err := g.Resolve(a.targets...)
	if err != nil {
		return nil, err
	}
	for _, m := range g.Modules() {
		if m.Target && m.Init != nil && slices.Contains(names, m.Name) {
			a.roles = append(a.roles, m.Name)
		}
	}
	if a.services, err = g.Init(a.targets...); err != nil {
		return nil, err
	}
	a.services.OnEvent = func(module, event string, err error) {
		if err != nil {
			a.logger.Debug("module "+event, "module", module, "err", err)
			return
		}
		a.logger.Debug("module "+event, "module", module)
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

// Start starts the modules in dependency order. On error, whatever was
// started is stopped again.
func (a *App) Start(ctx context.Context) error {
	if err := a.services.Start(ctx); err != nil {
		return err
	}
	// Logged before /ready answers ready, so that whoever sees it ready
	// also finds the line.
	a.logger.Info("weft is ready", "target", a.cfg.Target, "http", a.httpLn.Addr().String(), "grpc", a.grpcLn.Addr().String())
	a.state.Store(1)
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return nil
}

// joinCluster joins memberlist, advertising this process's components and
// gRPC address.
func (a *App) joinCluster() error {
	grpcAddr := a.grpcLn.Addr().(*net.TCPAddr)
	meta := membership.Meta{Roles: a.roles, GRPCAddr: grpcAddr.String(), HTTPAddr: a.httpLn.Addr().String()}
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

// Shutdown stops the modules in reverse dependency order: intake first,
// then the pipeline drains and its sinks flush, then the query side and
// the servers (see modules.go).
func (a *App) Shutdown(ctx context.Context) error {
	a.state.Store(2)
	if a.health != nil {
		a.health.Shutdown()
	}
	return a.services.Stop(ctx)
}

// HTTPAddr is the bound address of the query API.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// OTLPAddrs are the bound OTLP gRPC and HTTP addresses of the pipeline's
// otlp node named "otlp", empty when it does not run here.
func (a *App) OTLPAddrs() (grpcAddr, httpAddr string) {
	if a.pipeline == nil {
		return "", ""
	}
	if s, ok := a.pipeline.Node("otlp").(*otlp.Source); ok {
		return s.Addrs()
	}
	return "", ""
}

// Registry is the process's Prometheus registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }
