package livestore

import (
	"testing"

	"github.com/weftdb/weft/internal/spangen"
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
