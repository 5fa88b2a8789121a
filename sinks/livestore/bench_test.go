package livestore

import (
	"context"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/traceql"
)

// BenchmarkConsume: one message of 2,000 spans into the store, new traces
// each time.
func BenchmarkConsume(b *testing.B) {
	const n = 64
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 200, SpansPerTrace: 10, Services: 5}))
	}
	cfg := DefaultConfig()
	cfg.MaxBytes = 64 << 30
	var s *Store
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%n == 0 {
			s = New(settings(), cfg) // a fresh store, so every trace is new
		}
		m := msgFromBytes("t", msgs[i%n])
		if err := s.Consume(m); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/span")
}

// BenchmarkScan tests every span of 3,000 traces of 15 spans (45,000
// spans, in 15 pushes within the open segment, so nothing is pruned)
// against a condition none satisfies:
//
//	go test ./sinks/livestore -run '^$' -bench BenchmarkScan -benchmem
func BenchmarkScan(b *testing.B) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 1 << 30
	s := New(settings(), cfg)
	now := time.Now()
	s.clock = func() time.Time { return now } // the segment stays open
	for i := range 15 {
		m := msgFromBytes("t", spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 200, SpansPerTrace: 15, Services: 10})))
		if err := s.Consume(m); err != nil {
			b.Fatal(err)
		}
	}
	root, err := traceql.Parse(`{ span.http.response.status_code = 404 && duration > 100ms }`)
	if err != nil {
		b.Fatal(err)
	}
	sel := spanpred.Selection{Pred: root.Predicate()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Scan(context.Background(), "t", sel, func([16]byte, []byte) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*45000), "ns/span")
}
