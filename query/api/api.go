// Package api serves weft's public query HTTP API, compatible with Grafana
// Tempo's: trace by ID (v1 and v2, JSON or protobuf) and the operational
// endpoints /ready, /api/echo, /api/status/buildinfo, /metrics and Go's
// profiles under /debug/pprof/ (as Tempo serves them). It turns
// HTTP requests into calls on a TraceFinder and encodes the answers the way
// Tempo does; it does not look for traces itself.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// TraceFinder finds the spans of one trace.
type TraceFinder interface {
	// FindTraceByID returns the trace's spans as OTLP TracesData protobuf bytes
	// (a concatenation of field-1 ResourceSpans entries), or nil, nil when the
	// trace is not known. start/end (unix seconds, 0 = unbounded) narrow where to look.
	//
	// It must be safe for concurrent use and must stop when ctx is done. The
	// handler does not modify or keep the returned bytes after the response is
	// written. An error carrying a gRPC status keeps its meaning over HTTP
	// (InvalidArgument 400, NotFound 404, ResourceExhausted 429, Canceled 499,
	// Unavailable 503, DeadlineExceeded 504); any other error is a 500. A
	// result holding no ResourceSpans is answered like an unknown trace.
	FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error)
}

// BuildInfo describes the running binary for /api/status/buildinfo.
type BuildInfo struct {
	Version, Revision, Branch, BuildUser, BuildDate, GoVersion string
}

// Options configures the handler returned by New.
type Options struct {
	// Finder answers trace-by-ID requests. Required.
	Finder TraceFinder
	// MultitenancyEnabled makes the X-Scope-OrgID header required and the
	// tenant of each request; when false every request is "single-tenant".
	MultitenancyEnabled bool
	// Build is served on /api/status/buildinfo. An empty GoVersion is filled
	// with the version of the running Go runtime.
	Build BuildInfo
	// Ready reports nil when the process is ready to serve, else the reason.
	// A nil Ready means always ready.
	Ready func() error
	// Gatherer is served on /metrics. Nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Metrics registers the API's own request metrics. Nil means they are
	// kept but not registered anywhere.
	Metrics prometheus.Registerer
	// Searcher answers /api/search. Nil makes the route answer 501.
	Searcher Searcher
	// Tagger answers the tag name and tag value routes. Nil makes them
	// answer 501.
	Tagger Tagger
	// MetricsQuerier answers /api/metrics/query_range and
	// /api/metrics/query. Nil makes them answer 501.
	MetricsQuerier MetricsQuerier
	// MaxBytesPerTagValuesQuery caps the bytes of names or values one tag
	// request returns (overrides.defaults.read.max_bytes_per_tag_values_query);
	// 0 means search.DefaultMaxBytesPerTagValuesQuery (1 MB).
	MaxBytesPerTagValuesQuery int
	// TenantMaxBytesPerTagValuesQuery, when set, gives each tenant's own cap
	// (its read.max_bytes_per_tag_values_query override) and wins over
	// MaxBytesPerTagValuesQuery. It must be safe for concurrent use.
	TenantMaxBytesPerTagValuesQuery func(tenant string) int
	// LeftOutBlocks returns the blocks of a tenant that the block list
	// leaves out because their meta.json cannot be used: they may hold
	// what any query of the tenant looks for, so every answer for the
	// tenant is marked partial while there are any. May be nil.
	LeftOutBlocks func(tenant string) []partial.Skip
	// TagQueryTimeout bounds one tag names or tag values request
	// (query_frontend.search.query_timeout, as for a search); past it the
	// request gets 504 naming that key. 0 is no bound.
	TagQueryTimeout time.Duration
	// MaxTagReadBytes caps the trace data a tag request reading whole
	// traces holds (query_frontend.search.max_tag_read_bytes; see
	// search.TagsRequest.MaxReadBytes). 0 is no cap.
	MaxTagReadBytes int64
	// TenantMaxBytesPerTrace gives each tenant's largest trace a trace-by-ID
	// answer holds (its global.max_bytes_per_trace; 0 is no limit): over it
	// v1 answers 422 and v2 the spans that fit with status PARTIAL. Nil is
	// no limit. It must be safe for concurrent use.
	TenantMaxBytesPerTrace func(tenant string) int
	// NoMultiTenantReads refuses queries that name several tenants
	// ("X-Scope-OrgID: a|b|c", query_frontend.multi_tenant_queries_enabled
	// false); by default they run for each tenant and the answers merge.
	NoMultiTenantReads bool
	// DefaultSearchLimit is the limit of a multi-tenant search that gives
	// none, to cut the merged answer (query_frontend.search.default_result_limit);
	// 0 means search.DefaultLimit.
	DefaultSearchLimit int
	// TraceQLLimits bound the q filter of /api/v2/traces/{traceID} as they
	// bound a search's query (the query_frontend.max_query_* keys); zero
	// fields mean traceql's defaults.
	TraceQLLimits traceql.Limits
	// Logger logs the blocks queries answered without (see partial.go).
	// Nil logs nothing.
	Logger *slog.Logger
}

// Route labels of the request duration histogram.
const (
	routeTraceV1   = "/api/traces/{traceID}"
	routeTraceV2   = "/api/v2/traces/{traceID}"
	routeReady     = "/ready"
	routeEcho      = "/api/echo"
	routeBuildInfo = "/api/status/buildinfo"
	routeSearch    = "/api/search"
	// routeMetricsRange and routeMetricsInstant are the TraceQL metrics
	// routes.
	routeMetricsRange   = "/api/metrics/query_range"
	routeMetricsInstant = "/api/metrics/query"
	routeMetrics        = "/metrics"
	routePprof          = "/debug/pprof/"
	// routeOther labels requests that match no route.
	routeOther = "other"
)

// handler serves every route of the API and records each request's duration.
type handler struct {
	mux *http.ServeMux
	// routes maps a registered ServeMux pattern to its route label.
	routes   map[string]string
	duration *prometheus.HistogramVec
	// tempoDuration is Tempo's tempo_request_duration_seconds, observed
	// beside duration with Tempo's labels.
	tempoDuration *prometheus.HistogramVec
	// queries is Tempo's tempo_query_frontend_queries_total{tenant, op,
	// result}: the queries of the query routes, see countQuery.
	queries *prometheus.CounterVec

	finder   TraceFinder
	searcher Searcher
	tagger   Tagger
	// metricsQuerier answers the TraceQL metrics routes, or is nil.
	metricsQuerier MetricsQuerier
	maxTagBytes    func(tenant string) int
	tagTimeout     time.Duration
	tagReadBytes   int64
	multitenancy   bool
	// multiTenantReads lets a query name several tenants, "a|b|c".
	multiTenantReads bool
	// defaultLimit cuts a merged multi-tenant search without limit.
	defaultLimit int
	// maxTraceBytes is each tenant's max_bytes_per_trace (0: none), and
	// tooLarge counts the traces answered partially or with 422 for it.
	maxTraceBytes func(tenant string) int
	tooLarge      *prometheus.CounterVec
	// traceQLLimits bound the v2 q filter; filters counts its uses.
	traceQLLimits traceql.Limits
	filters       *prometheus.CounterVec
	// tagsCut counts the tag answers cut at max_bytes_per_tag_values_query.
	tagsCut *prometheus.CounterVec
	// skips counts and logs the blocks queries answered without.
	skips     *skipReporter
	ready     func() error
	buildInfo []byte
}

// New returns the HTTP handler serving all routes below.
//
//	GET /api/traces/{traceID}       trace by ID, Tempo v1 response
//	GET /api/v2/traces/{traceID}    trace by ID, Tempo v2 response
//	GET /api/search                 TraceQL or legacy tags search, JSON or protobuf (501 without a Searcher)
//	GET /api/search/tags            tag names, v1 (501 without a Tagger)
//	GET /api/v2/search/tags         tag names per scope, v2
//	GET /api/search/tag/{name}/values     tag values, v1 (name may hold any character)
//	GET /api/v2/search/tag/{name}/values  typed tag values, v2
//	GET /api/metrics/query_range    TraceQL metrics over a range, JSON or protobuf (501 without a MetricsQuerier)
//	GET /api/metrics/query          TraceQL metrics, one value per series
//	GET /ready                      200 "ready", or 503 with the reason
//	GET /api/echo                   200 "echo"
//	GET /api/status/buildinfo       build information as JSON
//	GET /metrics                    Prometheus metrics of opts.Gatherer
//
// Other paths answer 404, other methods on these paths 405. The handler
// records weft_query_request_duration_seconds{route, status_code} and Tempo's
// tempo_request_duration_seconds{method, route, status_code, ws} for every
// request and is safe for concurrent use.
func New(opts Options) (http.Handler, error) {
	if opts.Finder == nil {
		return nil, errors.New("cannot create query API: Options.Finder is nil")
	}
	duration, err := registerDuration(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("cannot create query API: %w", err)
	}
	build := opts.Build
	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	buildInfo, err := json.Marshal(buildInfoJSON(build))
	if err != nil {
		return nil, fmt.Errorf("cannot create query API: cannot encode build info: %w", err)
	}
	gatherer := opts.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}

	h := &handler{
		mux:           http.NewServeMux(),
		routes:        make(map[string]string),
		duration:      duration,
		tempoDuration: metrics.RequestDuration(opts.Metrics),
		queries: metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempo_query_frontend_queries_total",
			Help: "Queries received, by tenant (a|b for a multi-tenant one), op (traces, search, metadata, metrics) and result (completed, or canceled: the client went away), as Tempo's.",
		}, []string{"tenant", "op", "result"})),
		finder:           opts.Finder,
		searcher:         opts.Searcher,
		tagger:           opts.Tagger,
		metricsQuerier:   opts.MetricsQuerier,
		maxTagBytes:      opts.TenantMaxBytesPerTagValuesQuery,
		tagTimeout:       opts.TagQueryTimeout,
		tagReadBytes:     opts.MaxTagReadBytes,
		multitenancy:     opts.MultitenancyEnabled,
		multiTenantReads: !opts.NoMultiTenantReads,
		defaultLimit:     cmp.Or(opts.DefaultSearchLimit, search.DefaultLimit),
		ready:            opts.Ready,
		buildInfo:        buildInfo,
	}
	v1 := h.traceByIDHandler(traceV1)
	v2 := h.traceByIDHandler(traceV2)
	h.handle("GET /api/traces/{traceID}", routeTraceV1, v1)
	h.handle("GET /api/v2/traces/{traceID}", routeTraceV2, v2)
	// A wildcard never matches an empty segment: without an ID, with or
	// without the trailing slash, the path is unknown (404), as in Tempo.
	// The routes without the slash keep ServeMux from redirecting them.
	h.mux.Handle("/api/traces/{$}", http.NotFoundHandler())
	h.mux.Handle("/api/v2/traces/{$}", http.NotFoundHandler())
	h.mux.Handle("/api/traces", http.NotFoundHandler())
	h.mux.Handle("/api/v2/traces", http.NotFoundHandler())
	h.handle("GET /api/search", routeSearch, http.HandlerFunc(h.serveSearch))
	h.registerTags()
	h.handle("GET "+routeMetricsRange, routeMetricsRange, h.serveMetrics(false))
	h.handle("GET "+routeMetricsInstant, routeMetricsInstant, h.serveMetrics(true))
	h.handle("GET /ready", routeReady, http.HandlerFunc(h.serveReady))
	h.handle("GET /api/echo", routeEcho, http.HandlerFunc(serveEcho))
	h.handle("GET /api/status/buildinfo", routeBuildInfo, http.HandlerFunc(h.serveBuildInfo))
	h.handle("GET /metrics", routeMetrics, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	h.registerPprof()
	h.maxTraceBytes = opts.TenantMaxBytesPerTrace
	if h.maxTraceBytes == nil {
		h.maxTraceBytes = func(string) int { return 0 }
	}
	h.tooLarge = metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_query_traces_too_large_total",
		Help: "Trace-by-ID answers cut (v2, PARTIAL) or refused (v1, 422) because the trace is over the tenant's global.max_bytes_per_trace, by tenant.",
	}, []string{"tenant"}))
	h.traceQLLimits = opts.TraceQLLimits
	h.filters = metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_query_trace_filters_total",
		Help: "Trace-by-ID v2 requests with a q filter, by result: subset (spans were left out, PARTIAL), whole (every span matched), bad_request (q refused with 400).",
	}, []string{"result"}))
	h.tagsCut = metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_query_tag_answers_truncated_total",
		Help: "Tag name and tag value answers cut at the tenant's read.max_bytes_per_tag_values_query (200 with a Warning header), by route.",
	}, []string{"route"}))
	h.skips = newSkipReporter(opts.Metrics, opts.Logger)
	h.skips.leftOut = opts.LeftOutBlocks
	if h.maxTagBytes == nil {
		fixed := opts.MaxBytesPerTagValuesQuery
		h.maxTagBytes = func(string) int { return fixed }
	}
	return h, nil
}

// registerPprof serves the Go runtime's profiles, as Tempo does on its HTTP
// port: /debug/pprof/ lists them, /debug/pprof/profile?seconds=N takes a CPU
// profile (N must stay under server.http_server_write_timeout), and
// /debug/pprof/heap, goroutine, allocs… the others.
func (h *handler) registerPprof() {
	h.handle("GET /debug/pprof/", routePprof, http.HandlerFunc(pprof.Index))
	h.handle("GET /debug/pprof/cmdline", routePprof, http.HandlerFunc(pprof.Cmdline))
	h.handle("GET /debug/pprof/profile", routePprof, http.HandlerFunc(pprof.Profile))
	h.handle("GET /debug/pprof/symbol", routePprof, http.HandlerFunc(pprof.Symbol))
	h.handle("POST /debug/pprof/symbol", routePprof, http.HandlerFunc(pprof.Symbol))
	h.handle("GET /debug/pprof/trace", routePprof, http.HandlerFunc(pprof.Trace))
}

func (h *handler) handle(pattern, route string, hh http.Handler) {
	h.mux.Handle(pattern, hh)
	h.routes[pattern] = route
}

// ServeHTTP routes the request and records its duration.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	_, pattern := h.mux.Handler(r)
	route, ok := h.routes[pattern]
	if !ok {
		route = routeOther
	}
	rec := &statusRecorder{ResponseWriter: w}
	h.mux.ServeHTTP(rec, r)
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	took := time.Since(start).Seconds()
	status := strconv.Itoa(code)
	h.duration.WithLabelValues(route, status).Observe(took)
	h.tempoDuration.WithLabelValues(r.Method, metrics.RouteLabel(route), status, "false").Observe(took)
	h.countQuery(r, route, code)
}

// queryOps are Tempo's op labels of the query routes.
var queryOps = map[string]string{
	routeTraceV1: "traces", routeTraceV2: "traces",
	routeSearch: "search",
	routeTagsV1: "metadata", routeTagsV2: "metadata", routeTagValuesV1: "metadata", routeTagValuesV2: "metadata",
	routeMetricsRange: "metrics", routeMetricsInstant: "metrics",
}

// countQuery counts a request of a query route in
// tempo_query_frontend_queries_total, as Tempo does: every answer is
// "completed" (a 400 or a 429 too) but for a client that went away
// ("canceled"). A request whose tenant header is not valid names no
// tenant and is not counted (it is in tempo_request_duration_seconds).
func (h *handler) countQuery(r *http.Request, route string, code int) {
	op, ok := queryOps[route]
	if !ok {
		return
	}
	tenants, err := h.readTenants(r)
	if err != nil {
		return
	}
	result := "completed"
	if code == statusClientClosedRequest || r.Context().Err() != nil {
		result = "canceled"
	}
	h.queries.WithLabelValues(strings.Join(tenants, "|"), op, result).Inc()
}

func registerDuration(reg prometheus.Registerer) (*prometheus.HistogramVec, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            "weft_query_request_duration_seconds",
		Help:                            "Time spent serving HTTP requests of the query API, by route and status code.",
		Buckets:                         prometheus.DefBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}, []string{"route", "status_code"})
	if reg == nil {
		return duration, nil
	}
	if err := reg.Register(duration); err != nil {
		// A second API on the same registry shares the first one's histogram.
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("cannot register weft_query_request_duration_seconds: %w", err)
	}
	return duration, nil
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (h *handler) serveReady(w http.ResponseWriter, _ *http.Request) {
	if h.ready != nil {
		if err := h.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	http.Error(w, "ready", http.StatusOK)
}

func serveEcho(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "echo", http.StatusOK)
}

// buildInfoJSON is the body of /api/status/buildinfo, shaped like Tempo's
// and Prometheus' (every field present, even when empty).
type buildInfoJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

func (h *handler) serveBuildInfo(w http.ResponseWriter, _ *http.Request) {
	writeBody(w, http.StatusOK, contentTypeJSON, h.buildInfo)
}

// writeBody answers with status code and body.
func writeBody(w http.ResponseWriter, code int, contentType string, body []byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	// A failed write means the client is gone: nothing left to tell it.
	_, _ = w.Write(body)
}

// writeError answers with code and msg as a plain-text body.
func writeError(w http.ResponseWriter, code int, msg string) {
	http.Error(w, msg, code)
}

// hasToken reports whether any of the header values contains token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		if strings.Contains(v, token) {
			return true
		}
	}
	return false
}
