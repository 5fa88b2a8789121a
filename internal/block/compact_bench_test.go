package block

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/testlong"
)

// writeSpangenBlock writes a block of tenant t holding, for each seed,
// the 100 traces of 10 spans over 5 services spangen generates from it,
// sent as one request.
func writeSpangenBlock(tb testing.TB, bkt objstore.Bucket, seeds ...int) *Meta {
	tb.Helper()
	buf := NewBuffer(nil)
	defer buf.Release()
	for _, seed := range seeds {
		td := spangen.Generate(spangen.Options{Seed: uint64(seed), Traces: 100, SpansPerTrace: 10, Services: 5})
		if err := buf.Add(parse(tb, spangen.Marshal(td))); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := Write(ctx, bkt, "t", uuid.New(), Source{Origin: "bench", FirstOffset: int64(seeds[0]), LastOffset: int64(seeds[0])}, buf, WriteOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func seedRange(first, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = first + i
	}
	return s
}

// BenchmarkCompact merges four blocks of 25,000 spans, three of them with
// 2,000 more that repeat spans of the block before (6% duplicates),
// on a filesystem bucket; spans/s counts the spans read. Per core:
//
//	go test ./internal/block -run '^$' -bench 'BenchmarkCompact$' -benchtime 5x -cpu 1
func BenchmarkCompact(b *testing.B) {
	bkt := newBucket(b)
	var ins []*Meta
	var in int64
	for i := range 4 {
		seeds := seedRange(1000*(i+1), 25)
		if i > 0 {
			seeds = append(seeds, seedRange(1000*i, 2)...) // a redelivery
		}
		m := writeSpangenBlock(b, bkt, seeds...)
		ins = append(ins, m)
		in += m.Size
	}
	var res *CompactResult
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if res, err = Compact(ctx, bkt, ins, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		if !res.Written {
			b.Fatal("nothing written")
		}
		// So that the next run writes again.
		if err := bkt.Delete(ctx, res.Meta.ObjectName(MetaName)); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(res.SpansRead)*float64(b.N)/s, "spans/s")
	b.ReportMetric(float64(in)*float64(b.N)/s/1e6, "MB-read/s")
	b.ReportMetric(float64(res.Meta.Size)/float64(res.Meta.TotalSpans), "bytes/span")
}

// TestCompactMemoryLong merges four blocks of about 100 MB (1.7 million
// spans each, traces spread over the whole trace-ID range, default row
// groups) from a filesystem bucket and checks that the merge's peak heap
// stays under a quarter of one input:
//
//	go test ./internal/block -run TestCompactMemoryLong -v -timeout 30m
//
// The big inputs are themselves written by Compact from blocks of 200,000
// spans (a Buffer holds a whole block in memory). The heap is sampled
// every 2 ms with runtime/metrics; the figure asserted is the peak of the
// heap's objects (live and not yet collected) above what was live before
// the merge. The peak RSS (VmHWM, reset before the merge) is logged.
func TestCompactMemoryLong(t *testing.T) {
	testlong.Skip(t)
	fs, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const target = 100 << 20
	var big []*Meta
	seed := 0
	for len(big) < 4 {
		var pieces []*Meta
		var size int64
		for size < target {
			m := writeSpangenBlock(t, fs, seedRange(seed, 200)...)
			seed += 200
			pieces = append(pieces, m)
			size += m.Size
		}
		res, err := Compact(ctx, fs, pieces, WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pieces {
			for _, name := range []string{MetaName, BloomName, DataName} {
				if err := fs.Delete(ctx, p.ObjectName(name)); err != nil {
					t.Fatal(err)
				}
			}
		}
		big = append(big, res.Meta)
		t.Logf("input %d: %d spans, %d traces, %.1f MB, %d row groups", len(big), res.Meta.TotalSpans, res.Meta.TotalTraces,
			float64(res.Meta.Size)/1e6, len(res.Meta.RowGroups))
	}
	smallest := big[0].Size
	for _, m := range big {
		smallest = min(smallest, m.Size)
	}

	runtime.GC()
	debug.FreeOSMemory()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	base := samples[0].Value.Uint64()
	resetPeakRSS := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	var (
		peakHeap, peakLive uint64
		stop               = make(chan struct{})
		wg                 sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		for {
			metrics.Read(s)
			peakHeap = max(peakHeap, s[0].Value.Uint64())
			peakLive = max(peakLive, s[1].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	res, err := Compact(ctx, fs, big, WriteOptions{})
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	t.Logf("merged 4 inputs (smallest %.1f MB) in %s: %d spans read, output %d spans, %.1f MB, %d row groups, %.0f spans/s",
		float64(smallest)/1e6, took.Round(time.Millisecond), res.SpansRead, m.TotalSpans, float64(m.Size)/1e6, len(m.RowGroups),
		float64(res.SpansRead)/took.Seconds())
	t.Logf("heap before the merge %.1f MB; peak heap objects %.1f MB (%.1f MB above), peak live heap after a GC %.1f MB",
		float64(base)/1e6, float64(peakHeap)/1e6, float64(peakHeap-min(base, peakHeap))/1e6, float64(peakLive)/1e6)
	if resetPeakRSS {
		t.Logf("peak RSS during the merge (VmHWM): %s", peakRSS())
	}
	if limit := uint64(smallest / 4); peakHeap-min(base, peakHeap) > limit {
		t.Errorf("the merge's heap grew by %.1f MB, more than a quarter of one input (%.1f MB)", float64(peakHeap-base)/1e6, float64(limit)/1e6)
	}
	var in int64
	for _, b := range big {
		in += b.TotalSpans
	}
	if res.SpansRead != in || m.TotalSpans != in {
		t.Errorf("%d spans read and %d written of %d", res.SpansRead, m.TotalSpans, in)
	}
}

// peakRSS is the VmHWM line of /proc/self/status.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if f := strings.Fields(string(l)); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
		}
	}
	return "unknown"
}
