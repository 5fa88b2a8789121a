package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestRouteLabel(t *testing.T) {
	for pattern, want := range map[string]string{
		"/api/search":                      "api_search",
		"GET /api/traces/{traceID}":        "api_traces_traceid",
		"/api/v2/search/tag/{name}/values": "api_v2_search_tag_name_values",
		"/querier/api/search":              "querier_api_search",
		"/api/metrics/query_range":         "api_metrics_query_range",
		"/":                                "root",
		"other":                            "other",
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export": "opentelemetry_proto_collector_trace_v1_traceservice_export",
	} {
		if got := RouteLabel(pattern); got != want {
			t.Errorf("RouteLabel(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestGRPCStatus(t *testing.T) {
	for err, want := range map[error]string{
		nil:                               "success",
		context.Canceled:                  "cancel",
		status.Error(codes.Canceled, "x"): "cancel",
		status.Error(codes.Internal, "x"): "error",
		errors.New("cannot do it"):        "error",
	} {
		if got := GRPCStatus(err); got != want {
			t.Errorf("GRPCStatus(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestWithTempoNames checks that a listed weft family is copied under its
// Tempo name with its series and values, that an unlisted one is not, and
// that a Tempo name the registry exposes itself is not overwritten.
func TestWithTempoNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	DiscardedSpans(reg).WithLabelValues("t1", ReasonRateLimited).Add(3)
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_unlisted_total", Help: "x"}))
	// Exposed by the registry itself under the Tempo name of a listed one:
	// the registry's value wins.
	own := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tempo_ingester_live_traces", Help: "own"})
	own.Set(7)
	reg.MustRegister(own)
	live := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "weft_live_store_traces", Help: "x"}, []string{"tenant"})
	live.WithLabelValues("t1").Set(2)
	reg.MustRegister(live)
	BuildInfo(reg, "1.2.3", "abc", "main", "go1.x")

	g := WithTempoNames(reg)
	want := `
# HELP tempo_discarded_spans_total Spans received and not kept, by tenant and reason. (Tempo's name of weft_discarded_spans_total.)
# TYPE tempo_discarded_spans_total counter
tempo_discarded_spans_total{reason="rate_limited",tenant="t1"} 3
# HELP tempo_ingester_live_traces own
# TYPE tempo_ingester_live_traces gauge
tempo_ingester_live_traces 7
`
	if err := testutil.GatherAndCompare(g, strings.NewReader(want), "tempo_discarded_spans_total", "tempo_ingester_live_traces"); err != nil {
		t.Fatal(err)
	}
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, f := range fams {
		names[f.GetName()] = true
		if i > 0 && fams[i-1].GetName() >= f.GetName() {
			t.Errorf("families not sorted: %s before %s", fams[i-1].GetName(), f.GetName())
		}
	}
	for _, n := range []string{"weft_discarded_spans_total", "weft_unlisted_total", "tempo_build_info", "weft_build_info"} {
		if !names[n] {
			t.Errorf("%s not gathered", n)
		}
	}
	if names["tempo_unlisted_total"] {
		t.Error("an unlisted family was copied")
	}
	if n, err := testutil.GatherAndCount(g, "tempo_build_info"); err != nil || n != 1 {
		t.Errorf("tempo_build_info: %d series, %v; want 1", n, err)
	}
}

// TestGRPCInterceptors serves gRPC health over loopback with the
// interceptors and checks the call's series in tempo_request_duration_seconds.
func TestGRPCInterceptors(t *testing.T) {
	reg := prometheus.NewRegistry()
	unary, stream := GRPCInterceptors(reg)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil {
		t.Fatal("health of an unknown service answered")
	}
	h := RequestDuration(reg)
	for status, want := range map[string]uint64{"success": 1, "error": 1} {
		m := &dto.Metric{}
		if err := h.WithLabelValues("gRPC", "/grpc.health.v1.Health/Check", status, "false").(prometheus.Histogram).Write(m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetHistogram().GetSampleCount(); got != want {
			t.Errorf("status_code %q: %d observations, want %d", status, got, want)
		}
	}
}

// BenchmarkGather compares a scrape's gathering with and without the Tempo
// names, over a registry where every listed family has 100 tenants' series.
func BenchmarkGather(b *testing.B) {
	reg := prometheus.NewRegistry()
	for _, n := range TempoNames {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: n.Weft, Help: "x"}, []string{"tenant"})
		reg.MustRegister(v)
		for i := range 100 {
			v.WithLabelValues(fmt.Sprintf("tenant-%d", i)).Inc()
		}
	}
	for _, c := range []struct {
		name string
		g    prometheus.Gatherer
	}{{"registry", reg}, {"with-tempo-names", WithTempoNames(reg)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.g.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
