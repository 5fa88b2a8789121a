package metrics

import (
	"testing"
	"time"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/query/traceql"
)

// benchTraces are 200 realistic traces of 10 spans over 5 services.
func benchTraces(b *testing.B) ([]*traceql.Trace, Request) {
	b.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []*traceql.Trace
	for i := 0; i < 200; i++ {
		data := spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 1, SpansPerTrace: 10, Services: 5,
			Start: start.Add(time.Duration(i) * 9 * time.Second)}))
		tr, err := traceql.NewTrace(data)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, tr)
	}
	s := uint64(start.UnixNano())
	return out, Request{Start: s, End: s + uint64(30*time.Minute), Step: uint64(15 * time.Second)}.Align()
}

func benchObserve(b *testing.B, st *traceql.MetricsStage) {
	traces, r := benchTraces(b)
	q := mustCompile(b, r, metricsRoot(b, "{ }", st))
	spans := 0
	for _, t := range traces {
		spans += len(t.Spans)
	}
	acc := q.NewAccumulator(r.Start, r.End)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := acc.ObserveTrace(traces[i%len(traces)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans/len(traces)), "ns/span")
}

// BenchmarkObserveRateByService is `{ } | rate() by (resource.service.name)`.
func BenchmarkObserveRateByService(b *testing.B) {
	benchObserve(b, &traceql.MetricsStage{Func: traceql.MetricsRate, By: []*traceql.Attribute{attr(b, "resource.service.name")}})
}

// BenchmarkObserveQuantile is `{ } | quantile_over_time(duration, .5, .9, .99)`.
func BenchmarkObserveQuantile(b *testing.B) {
	benchObserve(b, &traceql.MetricsStage{Func: traceql.MetricsQuantileOverTime, Attr: attr(b, "duration"), Quantiles: []float64{0.5, 0.9, 0.99}})
}

// BenchmarkObserveEvalOnly is the search part alone (`{ }` evaluated on
// the trace), the floor under the two above.
func BenchmarkObserveEvalOnly(b *testing.B) {
	traces, _ := benchTraces(b)
	root, err := traceql.Parse("{ }")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := root.Eval(traces[i%len(traces)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10), "ns/span")
}
