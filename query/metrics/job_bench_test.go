package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// BenchmarkBlockJob runs a whole block job (scan, decode, evaluation,
// aggregation) over a block of 50,000 spans of spangen traces, per span:
// from the columns of the query's fields, and on whole traces.
func BenchmarkBlockJob(b *testing.B) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	var batch otlpwire.Batch
	if err := batch.Parse(spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 5000, SpansPerTrace: 10}))); err != nil {
		b.Fatal(err)
	}
	if err := buf.Add(&batch); err != nil {
		b.Fatal(err)
	}
	meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := list.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	r := NewRunner(nil, list, bkt)
	start, end := uint64(meta.StartTime.Add(-time.Minute).UnixNano()), uint64(meta.EndTime.Add(time.Minute).UnixNano())
	for _, q := range []string{
		"{ } | rate() by (resource.service.name)",
		"{ } | quantile_over_time(duration, .99)",
		`{ resource.service.name = "service-1" && status = error } | count_over_time()`,
	} {
		for _, whole := range []bool{false, true} {
			name := q
			if whole {
				name += "/whole-traces"
			}
			r.wholeTraces = whole
			b.Run(name, func(b *testing.B) {
				req := Request{Query: q, Start: start, End: end, Step: uint64(time.Minute)}.Align()
				job := Job{Request: req, BlockID: meta.BlockID.String(), From: req.Start, To: req.End}
				for b.Loop() {
					res, err := r.RunJob(ctx, "t", job)
					if err != nil || len(res.Parts) != 1 {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(meta.TotalSpans), "ns/span")
			})
		}
	}
}
