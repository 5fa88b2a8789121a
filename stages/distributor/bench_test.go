package distributor

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// BenchmarkProcess: one push of 2,000 spans, with one partition (the bytes
// pass through) and with 16 (spans regrouped per partition), without
// per-tenant limits and with the per-trace limits on (the rate limit off and
// max_bytes_per_trace out of reach, as the loop pushes the same 200 traces
// again and again).
func BenchmarkProcess(b *testing.B) {
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 200, SpansPerTrace: 10, Services: 5}))
	defaults := overrides.DefaultLimits()
	defaults.Ingestion.RateLimitBytes = 0
	defaults.Global.MaxBytesPerTrace = 1 << 40
	for _, tc := range []struct {
		name   string
		parts  int
		limits TenantLimits
	}{
		{"partitions=1", 1, nil},
		{"partitions=16", 16, nil},
		{"partitions=1/trace-limits", 1, fixedLimits{"single-tenant": &defaults}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{MaxAttributeBytes: 2048, Partitions: tc.parts, TraceIdlePeriod: 5 * time.Second}
			d := New(pipelines.Settings{Name: "distributor", Metrics: prometheus.NewRegistry()}, cfg, tc.limits)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Process(msgOf(payload, "")); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/span")
		})
	}
}
