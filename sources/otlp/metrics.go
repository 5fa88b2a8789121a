package otlp

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/weftdb/weft/internal/httpconn"
	weftmetrics "github.com/weftdb/weft/internal/metrics"
)

// Values of the protocol label.
const (
	protocolGRPC = "grpc"
	protocolHTTP = "http"
)

// metrics are the collectors of the OTLP source. Every request to the
// export endpoint is counted once, labelled with its transport and the gRPC
// code of its answer (for HTTP, the code of the google.rpc.Status sent, such
// as InvalidArgument for a 400 or ResourceExhausted for a 413), including
// gRPC requests whose message gRPC refused (over max_recv_msg_size_mib, as
// ResourceExhausted). What Go's HTTP server refuses before the handler (431,
// slow clients) is counted in httpconn's weft_http_connections_refused_total.
type metrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weft_otlp_push_duration_seconds",
		Help:    "Time to handle one OTLP export request, from its arrival to its answer, by protocol (grpc, http) and gRPC code of the answer.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"protocol", "code"}))
	if err != nil {
		return nil, err
	}
	requests, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_otlp_requests_total",
		Help: "OTLP export requests handled, by protocol (grpc, http) and gRPC code of the answer.",
	}, []string{"protocol", "code"}))
	if err != nil {
		return nil, err
	}
	return &metrics{duration: duration, requests: requests, refused: httpconn.Refused(reg)}, nil
}

// observe records one request answered with code, started at start.
func (m *metrics) observe(protocol string, code codes.Code, start time.Time) {
	c := code.String()
	m.duration.WithLabelValues(protocol, c).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(protocol, c).Inc()
}

// register registers c with reg (internal/metrics.TryRegister), naming
// the OTLP source metrics in its error.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	c, err := weftmetrics.TryRegister(reg, c)
	if err != nil {
		return c, fmt.Errorf("cannot register the OTLP source metrics: %w", err)
	}
	return c, nil
}
