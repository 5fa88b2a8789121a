package remotewrite

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// spanMetricsSeries is a request of n series shaped like the span-metrics
// processor's: traces_spanmetrics_calls_total with service, span_name,
// span_kind, status_code and job labels.
func spanMetricsSeries(n int, ts time.Time) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "traces_spanmetrics_calls_total"},
				{Name: "job", Value: fmt.Sprintf("ns/service-%d", i%50)},
				{Name: "service", Value: fmt.Sprintf("service-%d", i%50)},
				{Name: "span_kind", Value: "SPAN_KIND_SERVER"},
				{Name: "span_name", Value: fmt.Sprintf("GET /api/v1/resource/%d", i/50)},
				{Name: "status_code", Value: "STATUS_CODE_UNSET"},
			},
			Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: float64(i * 7)}},
		}
	}
	return out
}

// BenchmarkEnqueue is the cost of Enqueue of one request of 10,000 series:
// marshalling, snappy, writing and fsyncing the file and the directory.
// The endpoint is down (503), so the sender does not compete for the CPU;
// the queue drops its oldest requests past 256 MiB, as in a long outage.
// Sub-benchmark encode is the CPU part alone (marshal and snappy).
func BenchmarkEnqueue(b *testing.B) {
	b.Run("durable", benchEnqueue)
	b.Run("encode", func(b *testing.B) {
		cfg := testConfig(b, "http://127.0.0.1:1/api/v1/write")
		s, _ := open(b, cfg)
		q := queue(b, s, "bench")
		series := spanMetricsSeries(10000, time.Now())
		b.ReportAllocs()
		var size int
		buf := new(encBuf)
		for b.Loop() {
			body, _, _, err := q.encode(buf, series)
			if err != nil {
				b.Fatal(err)
			}
			size = len(body)
		}
		b.ReportMetric(float64(size), "body-bytes/op")
		b.ReportMetric(float64(len(buf.raw)), "raw-bytes/op")
	})
}

func benchEnqueue(b *testing.B) {
	rec := newRecorder(b)
	rec.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(b, rec.srv.URL)
	cfg.MaxQueueBytes = 256 << 20
	s, _ := open(b, cfg)
	q := queue(b, s, "bench")
	series := spanMetricsSeries(10000, time.Now())
	ctx := context.Background()
	if err := q.Enqueue(ctx, series, []byte("cp")); err != nil {
		b.Fatal(err)
	}
	q.mu.Lock()
	size := q.entries[0].size
	q.mu.Unlock()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := q.Enqueue(ctx, series, []byte("cp")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "file-bytes/op")
}
