package spanpred

import (
	"testing"

	"github.com/weftdb/weft/internal/spangen"
)

// slowErrors is the predicate of
// `{ span.http.response.status_code >= 600 && duration > 100ms }`: no span matches.
type slowErrors struct{}

func (slowErrors) Fields() []Field {
	return []Field{{Name: "http.response.status_code"}, {Intrinsic: IntrinsicDuration}}
}
func (slowErrors) Match(row []Value) bool {
	return row[0].Kind == Int && row[0].Int >= 600 && row[1].Int > 100e6
}
func (slowErrors) MayMatch([]Domain) bool { return true }

// BenchmarkMatcher tests every span of 200 traces of 15 spans, none
// matching, on the encoded bytes:
//
//	go test ./internal/spanpred -run '^$' -bench BenchmarkMatcher -benchmem
func BenchmarkMatcher(b *testing.B) {
	data := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 200, SpansPerTrace: 15, Services: 10}))
	m := NewMatcher(slowErrors{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Match(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*200*15), "ns/span")
}
