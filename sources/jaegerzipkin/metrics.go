package jaegerzipkin

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	weftmetrics "github.com/weftdb/weft/internal/metrics"
)

// metrics are the collectors of the Jaeger and Zipkin sources. Every
// request that decoded (a Thrift batch, a PostSpans call, a Zipkin POST) is
// counted once, by receiver (jaeger, zipkin), protocol (grpc, thrift_http,
// thrift_compact, thrift_binary; http for Zipkin) and the gRPC code of the
// push: Unauthenticated counts what the distributor refused for want of a
// tenant with multitenancy on (always so for UDP). What the receivers refuse
// before decoding (a bad body: HTTP 400) is not counted here.
type metrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weft_receiver_push_duration_seconds",
		Help:    "Time to push one decoded Jaeger or Zipkin request into the pipeline, by receiver, protocol and gRPC code of the push.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"receiver", "protocol", "code"}))
	if err != nil {
		return nil, err
	}
	requests, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_receiver_requests_total",
		Help: "Decoded Jaeger and Zipkin requests pushed, by receiver (jaeger, zipkin), protocol and gRPC code of the push (Unauthenticated: no tenant with multitenancy on).",
	}, []string{"receiver", "protocol", "code"}))
	if err != nil {
		return nil, err
	}
	rejected, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_receiver_spans_rejected_total",
		Help: "Spans of accepted Jaeger and Zipkin requests that the pipeline refused (OTLP's partial success, which these protocols cannot tell the client), by receiver and protocol.",
	}, []string{"receiver", "protocol"}))
	if err != nil {
		return nil, err
	}
	return &metrics{duration: duration, requests: requests, rejected: rejected}, nil
}

func (m *metrics) observe(recv, protocol string, code codes.Code, start time.Time) {
	c := code.String()
	m.duration.WithLabelValues(recv, protocol, c).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(recv, protocol, c).Inc()
}

// register registers c with reg (internal/metrics.TryRegister), naming
// the receiver metrics in its error.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	c, err := weftmetrics.TryRegister(reg, c)
	if err != nil {
		return c, fmt.Errorf("cannot register the receiver metrics: %w", err)
	}
	return c, nil
}
