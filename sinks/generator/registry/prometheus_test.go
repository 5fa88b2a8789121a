package registry

import (
	"testing"
	"time"

	"github.com/weftdb/weft/internal/promtest"
)

// TestRemoteWriteToPrometheus writes Collect's output to a real Prometheus
// and reads it back with PromQL: values, the leading 0 sample that lets
// increase() count a new series' first update, histogram buckets,
// exemplars, and the stale marker that ends a series.
func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := promtest.Start(t)
	cfg := DefaultConfig()
	cfg.StaleDuration = 10 * time.Second
	cfg.ExternalLabels = map[string]string{"cluster": "test"}
	r := New(cfg, "t1", nil)
	c := r.NewCounter("calls_total", []string{"service"})
	h := r.NewHistogram("latency", []string{"service"}, []float64{0.1, 1})

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	c.Inc([]string{"api"}, 3)
	h.Observe([]string{"api"}, 0.05, []byte{0xab, 0xcd}, 1)
	h.Observe([]string{"api"}, 0.5, nil, 1)
	prom.Write(t, r.Collect(t0, CollectOptions{Exemplars: true}))
	t1 := t0.Add(15 * time.Second)
	c.Inc([]string{"api"}, 2)
	prom.Write(t, r.Collect(t1, CollectOptions{Exemplars: true}))

	series := `map[__name__:calls_total cluster:test service:api]`
	if got := prom.QueryMap(t, "calls_total", t1); got[series] != 5 || len(got) != 1 {
		t.Errorf("calls_total at t1: %v", got)
	}
	if got, ok := prom.QueryMap(t, "calls_total", t0.Add(-time.Millisecond))[series]; !ok || got != 0 {
		t.Errorf("calls_total 1 ms before its first collection: %v, want the 0 sample", got)
	}
	// The increase over the two collections counts all 5, the first 3
	// included (without the 0 sample Prometheus would see only 2).
	if got := prom.QueryMap(t, `calls_total - calls_total offset 15001ms`, t1); got[`map[cluster:test service:api]`] != 5 {
		t.Errorf("increase: %v", got)
	}
	if got := prom.QueryMap(t, `latency_bucket{le="0.1"}`, t1); got[`map[__name__:latency_bucket cluster:test le:0.1 service:api]`] != 1 {
		t.Errorf("bucket 0.1: %v", got)
	}
	if got := prom.QueryMap(t, `latency_bucket{le="+Inf"}`, t1); got[`map[__name__:latency_bucket cluster:test le:+Inf service:api]`] != 2 {
		t.Errorf("bucket +Inf: %v", got)
	}
	if got := prom.Exemplars(t, "latency_bucket", t0.Add(-time.Minute), time.Now()); len(got) != 1 || got[0] != "0.1:abcd" {
		t.Errorf("exemplars: %v, want one on le=0.1 with traceID abcd", got)
	}
	// The series was last updated now; collecting 20 s later (past the
	// 10 s stale_duration) sends a stale marker: the series is gone.
	t2 := time.Now().Add(20 * time.Second)
	prom.Write(t, r.Collect(t2, CollectOptions{}))
	if got := prom.QueryMap(t, "calls_total", t2); len(got) != 0 {
		t.Errorf("calls_total after the stale marker: %v, want nothing", got)
	}
	if r.ActiveSeries() != 0 {
		t.Errorf("active series %d after staleness", r.ActiveSeries())
	}
}
