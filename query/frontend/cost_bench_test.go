package frontend

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
)

// BenchmarkSearchNotRegex runs `!~` searches through the frontend and an
// in-process querier over 4 blocks of 100,000 spans, jobs of one row
// group: one that stops early, one with most_recent (every trace read),
// and one at the highest limit and spss (refused at the default
// max_result_bytes). It reports the peak of the heap above its level
// before the search (peak-heap-MiB) besides -benchmem's figures:
//
//	go test ./query/frontend -run '^$' -bench BenchmarkSearchNotRegex -benchmem -benchtime 5x
func BenchmarkSearchNotRegex(b *testing.B) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	for i := range 4 {
		buf := block.NewBuffer(nil)
		for j := range 10 {
			var batch otlpwire.Batch
			td := spangen.Generate(spangen.Options{Seed: uint64(i*100 + j), Traces: 1000, SpansPerTrace: 10,
				Start: base.Add(time.Duration(i)*time.Hour + time.Duration(j)*time.Second)})
			if err := batch.Parse(spangen.Marshal(td)); err != nil {
				b.Fatal(err)
			}
			if err := buf.Add(&batch); err != nil {
				b.Fatal(err)
			}
		}
		meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 4 << 20})
		buf.Release()
		if err != nil {
			b.Fatal(err)
		}
		list.Add(meta)
	}
	s := search.New(nil, list, bkt)
	s.TargetBytesPerJob = 1
	f := newFrontend(testConfig(), s, querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()))
	for _, tc := range []struct {
		name        string
		req         search.Request
		wantRefused bool
	}{
		{"limit-20", search.Request{Query: `{ span.http.route !~ "/api/c.*" }`}, false},
		{"most-recent", search.Request{Query: `{ span.http.route !~ "/api/c.*" } with (most_recent=true)`}, false},
		{"highest-limit-spss", search.Request{Query: `{ span.http.route !~ "/api/c.*" }`, Limit: search.MaxLimit, SpansPerSpanSet: search.MaxSpansPerSpanSet}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := tc.req
			req.Start, req.End = base.Add(-time.Hour), base.Add(10*time.Hour)
			var worst uint64
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				before := heapObjects()
				stop := sampleHeap()
				b.StartTimer()
				_, err := f.Search(ctx, req, "t")
				b.StopTimer()
				worst = max(worst, stop()-min(before, stop()))
				b.StartTimer()
				if err != nil && !search.IsResultBytesError(err) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(worst)/(1<<20), "peak-heap-MiB")
		})
	}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeap samples heapObjects every millisecond until the returned
// function is first called; every call returns the most seen.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := heapObjects(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	var once atomic.Bool
	return func() uint64 {
		if once.CompareAndSwap(false, true) {
			close(done)
			<-finished
		}
		return peak.Load()
	}
}
