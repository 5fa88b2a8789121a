package otlp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftdb/weft/internal/spangen"
)

// BenchmarkHTTPHandler: one OTLP/HTTP protobuf request of 2,000 spans
// through the source's handler (decode, checks, push into an output that
// answers at once), without the network.
func BenchmarkHTTPHandler(b *testing.B) {
	s, _ := startSource(b, &fakeOutput{}, nil)
	body := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 200, SpansPerTrace: 10, Services: 5}))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		s.handleTraces(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/span")
}
