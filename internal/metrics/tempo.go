package metrics

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TempoName pairs a weft metric with the Tempo metric of the same meaning
// and labels, under which /metrics exposes it a second time.
type TempoName struct {
	// Weft is the name weft counts under.
	Weft string
	// Tempo is the name Tempo's dashboards and alerts read.
	Tempo string
}

// TempoNames lists the weft metrics exposed again under Tempo's name. Each
// pair has the same meaning and the same labels (Tempo's label names); a
// weft metric that means something else is not listed here, and Tempo
// names weft cannot fill are listed as missing in docs/operations.md.
// Metrics that weft counts under Tempo's name only (tempodb_blocklist_length,
// tempo_backend_scheduler_*, tempodb_compaction_*, tempodb_retention_*,
// tempodb_blocklist_tenant_index_*) and tempo_request_duration_seconds (see
// RequestDuration) are not listed: they need no copy.
var TempoNames = []TempoName{
	{Weft: "weft_build_info", Tempo: "tempo_build_info"},
	{Weft: "weft_distributor_spans_received_total", Tempo: "tempo_distributor_spans_received_total"},
	{Weft: "weft_distributor_bytes_received_total", Tempo: "tempo_distributor_bytes_received_total"},
	{Weft: "weft_discarded_spans_total", Tempo: "tempo_discarded_spans_total"},
	{Weft: "weft_otlp_push_duration_seconds", Tempo: "tempo_distributor_push_duration_seconds"},
	{Weft: "weft_live_store_traces", Tempo: "tempo_ingester_live_traces"},
	{Weft: "weft_live_store_back_pressure_seconds_total", Tempo: "tempo_live_store_back_pressure_seconds_total"},
	{Weft: "weft_block_builder_blocks_flushed_total", Tempo: "tempo_block_builder_flushed_blocks"},
	{Weft: "weft_overrides_last_reload_successful", Tempo: "tempo_runtime_config_last_reload_successful"},
	{Weft: "weft_blocklist_poll_failures_total", Tempo: "tempodb_blocklist_poll_errors_total"},
	{Weft: "weft_blocklist_poll_duration_seconds", Tempo: "tempodb_blocklist_poll_duration_seconds"},
	{Weft: "weft_metrics_generator_registry_active_series", Tempo: "tempo_metrics_generator_registry_active_series"},
	{Weft: "weft_metrics_generator_registry_max_active_series", Tempo: "tempo_metrics_generator_registry_max_active_series"},
}

// WithTempoNames returns a Gatherer that gathers g and adds, for each family
// of TempoNames that g holds, a copy under the Tempo name (same series, same
// values, the help text naming the weft metric). A name g already exposes is
// not copied over it. The weft families are left as they are.
func WithTempoNames(g prometheus.Gatherer) prometheus.Gatherer {
	return tempoGatherer{g: g}
}

type tempoGatherer struct{ g prometheus.Gatherer }

func (t tempoGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := t.g.Gather()
	if len(fams) == 0 {
		return fams, err
	}
	have := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		have[f.GetName()] = f
	}
	out := fams
	for _, n := range TempoNames {
		f, ok := have[n.Weft]
		if !ok {
			continue
		}
		if _, taken := have[n.Tempo]; taken {
			continue
		}
		// The series are shared, not copied: Gather made them for this
		// scrape alone and the encoders only read them.
		out = append(out, &dto.MetricFamily{
			Name:   proto.String(n.Tempo),
			Help:   proto.String(f.GetHelp() + " (Tempo's name of " + n.Weft + ".)"),
			Type:   f.Type,
			Unit:   f.Unit,
			Metric: f.Metric,
		})
	}
	// The text encoder wants families sorted by name, as Registry gives them.
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, err
}

// BuildInfo registers weft_build_info (exposed as tempo_build_info too), a
// gauge of 1 whose labels describe the binary, as Prometheus' build_info
// metrics do (goos and goarch are the running binary's).
func BuildInfo(reg prometheus.Registerer, version, revision, branch, goVersion string) {
	g := Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_build_info",
		Help: "A metric with a constant '1' value labeled by the version, revision, branch, Go version, OS and architecture weft was built from.",
	}, []string{"version", "revision", "branch", "goversion", "goos", "goarch"}))
	g.WithLabelValues(version, revision, branch, goVersion, runtime.GOOS, runtime.GOARCH).Set(1)
}

// RequestDuration is Tempo's tempo_request_duration_seconds: the time to
// serve a request of the HTTP API (method: the HTTP method; route: the
// route's pattern made a label as Tempo makes it, see RouteLabel;
// status_code: the HTTP status) or of the gRPC server (method "gRPC"; route:
// the full method name; status_code: "success", "cancel" or "error"). ws is
// "false": weft serves no websockets.
func RequestDuration(reg prometheus.Registerer) *prometheus.HistogramVec {
	return Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            "tempo_request_duration_seconds",
		Help:                            "Time to serve an HTTP or gRPC request, by method, route, status code and ws (as Tempo's).",
		Buckets:                         prometheus.DefBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}, []string{"method", "route", "status_code", "ws"}))
}

var routeLabels sync.Map // pattern -> label

// RouteLabel turns an HTTP route pattern into Tempo's route label: without
// the method, lower case, every run of characters other than letters and
// digits one "_", none at the ends ("GET /api/traces/{traceID}" is
// "api_traces_traceid"); an empty one is "root".
func RouteLabel(pattern string) string {
	if v, ok := routeLabels.Load(pattern); ok {
		return v.(string)
	}
	p := pattern
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(p) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	label := b.String()
	if label == "" {
		label = "root"
	}
	routeLabels.Store(pattern, label)
	return label
}

// GRPCStatus is the status_code label of tempo_request_duration_seconds for
// a gRPC call that ended with err.
func GRPCStatus(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled:
		return "cancel"
	default:
		return "error"
	}
}

// GRPCInterceptors return the unary and stream server interceptors that
// observe every call of a gRPC server in tempo_request_duration_seconds.
func GRPCInterceptors(reg prometheus.Registerer) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	h := RequestDuration(reg)
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		h.WithLabelValues("gRPC", info.FullMethod, GRPCStatus(err), "false").Observe(time.Since(start).Seconds())
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		h.WithLabelValues("gRPC", info.FullMethod, GRPCStatus(err), "false").Observe(time.Since(start).Seconds())
		return err
	}
	return unary, stream
}
