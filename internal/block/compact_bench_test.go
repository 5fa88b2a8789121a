package block

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
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
		if res, err = Compact(ctx, bkt, ins, CompactOptions{}); err != nil {
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

// TestCompactMemoryLong measures the peak memory of merging four blocks,
// at two sizes: about 25 MB and about 100 MB each (traces spread over the
// whole trace-ID range, default row groups), on a filesystem bucket:
//
//	go test ./internal/block -run TestCompactMemoryLong -v -timeout 30m
//
// The big inputs are themselves written by Compact from blocks of 200,000
// spans (a Buffer holds a whole block in memory). During each merge the
// heap is sampled every 2 ms with runtime/metrics: the live heap (what the
// last GC marked) and the heap's objects (live and not yet collected,
// about twice the live heap with GOGC=100). The peak RSS (VmHWM, reset
// before the merge) is logged. The test fails when the merge's peak live
// heap grows with the block size (by more than an eighth of the growth of
// the inputs' bytes, from the small inputs to the big ones), or exceeds
// compactLiveHeapLimit. With
// WEFT_COMPACT_HEAPPROFILE=file, a heap profile is written at the peak of
// the big merge's live heap.
func TestCompactMemoryLong(t *testing.T) {
	testlong.Skip(t)
	fs, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seed := 0
	inputs := func(target int64) []*Meta {
		var big []*Meta
		for len(big) < 4 {
			var pieces []*Meta
			var size int64
			for size < target {
				m := writeSpangenBlock(t, fs, seedRange(seed, 200)...)
				seed += 200
				pieces = append(pieces, m)
				size += m.Size
			}
			res, err := Compact(ctx, fs, pieces, CompactOptions{})
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
		}
		return big
	}
	small := measureCompact(t, fs, inputs(24<<20), "")
	big := measureCompact(t, fs, inputs(100<<20), os.Getenv("WEFT_COMPACT_HEAPPROFILE"))
	if big.peakLive > compactLiveHeapLimit {
		t.Errorf("the merge of four %.1f MB blocks held %.1f MB, more than %.1f MB",
			float64(big.inputBytes)/1e6, float64(big.peakLive)/1e6, float64(compactLiveHeapLimit)/1e6)
	}
	// The footers (of the inputs, and the output's metadata kept until
	// it is written) grow with the row groups: tens of kilobytes each.
	// Anything holding rows or pages of more than a row group would grow
	// with the blocks' bytes.
	if grown, inputs := int64(big.peakLive)-int64(small.peakLive), 4*(big.inputBytes-small.inputBytes); grown > inputs/8 {
		t.Errorf("the merge's live heap grows with the blocks: %.1f MB for blocks of %.1f MB, %.1f MB for blocks of %.1f MB: %.1f MB more for %.1f MB more input",
			float64(small.peakLive)/1e6, float64(small.inputBytes)/1e6, float64(big.peakLive)/1e6, float64(big.inputBytes)/1e6,
			float64(grown)/1e6, float64(inputs)/1e6)
	}
}

// compactLiveHeapLimit bounds the live heap of a merge of four blocks
// with default row groups. The merge held 101 to 105 MB when this was
// written (docs/block-format.md, Compaction): parquet-go's readers and
// writer buffer pages and dictionaries per column, of 45 columns in 5
// files. The limit catches a merge that holds a fifth more.
const compactLiveHeapLimit = 128 << 20

// compactMemory is what measureCompact measured.
type compactMemory struct {
	inputBytes         int64 // size of the smallest input's data.parquet
	peakLive, peakHeap uint64
}

// measureCompact merges ins and logs and returns the merge's peak memory.
func measureCompact(t *testing.T, bkt objstore.Bucket, ins []*Meta, profile string) compactMemory {
	t.Helper()
	mem := compactMemory{inputBytes: ins[0].Size}
	var spans int64
	for _, m := range ins {
		mem.inputBytes = min(mem.inputBytes, m.Size)
		spans += m.TotalSpans
	}
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		for {
			metrics.Read(s)
			mem.peakHeap = max(mem.peakHeap, s[0].Value.Uint64())
			if live := s[1].Value.Uint64(); live > mem.peakLive {
				mem.peakLive = live
				if profile != "" {
					if f, err := os.Create(profile); err == nil {
						pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	res, err := Compact(ctx, bkt, ins, CompactOptions{})
	took := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	t.Logf("four blocks of %.1f MB or more, %d spans: merged in %s (%.0f spans/s), output %.1f MB in %d row groups",
		float64(mem.inputBytes)/1e6, spans, took.Round(time.Millisecond), float64(res.SpansRead)/took.Seconds(), float64(m.Size)/1e6, len(m.RowGroups))
	rss := "not measured"
	if resetPeakRSS {
		rss = peakRSS()
	}
	t.Logf("  peak live heap %.1f MB, peak heap objects %.1f MB, peak RSS %s", float64(mem.peakLive)/1e6, float64(mem.peakHeap)/1e6, rss)
	if res.SpansRead != spans || m.TotalSpans != spans {
		t.Errorf("%d spans read and %d written of %d", res.SpansRead, m.TotalSpans, spans)
	}
	return mem
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
