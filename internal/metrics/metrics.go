// Package metrics holds the Prometheus collectors that several components
// share, and the helper that registers a collector once per registry.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it; when an identical collector
// is already registered (several nodes of one kind, tests sharing a
// registry) it returns that one instead. Other registration errors panic, as
// they are programming errors.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := TryRegister(reg, c)
	if err != nil {
		panic(err)
	}
	return c
}

// TryRegister is Register returning the other registration errors instead
// of panicking. A nil reg registers nothing.
func TryRegister[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Reasons used with DiscardedSpans.
const (
	ReasonInvalidTraceID     = "invalid_trace_id"
	ReasonInvalidSpanID      = "invalid_span_id"
	ReasonLiveStoreFull      = "live_store_full"
	ReasonBuilderBehind      = "block_builder_behind"
	ReasonFilteredOut        = "filtered"
	ReasonRateLimited        = "rate_limited"
	ReasonLiveTracesExceeded = "live_traces_exceeded"
	ReasonTraceTooLarge      = "trace_too_large"
)

// DiscardedSpans counts spans that weft received and did not keep, by tenant
// and reason. Every place that refuses spans counts them here.
func DiscardedSpans(reg prometheus.Registerer) *prometheus.CounterVec {
	return Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_discarded_spans_total",
		Help: "Spans received and not kept, by tenant and reason.",
	}, []string{"tenant", "reason"}))
}
