package distributor

import (
	"strconv"
	"testing"

	"github.com/weftdb/weft/internal/spangen"
)

// BenchmarkProcess: one push of 2,000 spans, with one partition (the bytes
// pass through) and with 16 (spans regrouped per partition).
func BenchmarkProcess(b *testing.B) {
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 200, SpansPerTrace: 10, Services: 5}))
	for _, parts := range []int{1, 16} {
		b.Run("partitions="+strconv.Itoa(parts), func(b *testing.B) {
			d, _ := newTest(b, Config{MaxAttributeBytes: 2048, Partitions: parts})
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
