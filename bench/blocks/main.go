// Command blocks measures weft's block format and read path on local disk:
// it writes blocks of generated spans (internal/spangen) through the same
// code the block-builder uses, then, over all of them, looks traces up by
// ID through the querier, runs TraceQL searches through the
// query-frontend, the querier's job runner and the searcher in process,
// and lists tag values and names.
//
//	go run ./bench/blocks -blocks 100 -spans-per-block 50000 -dir /tmp/weft-blocks
//	go run ./bench/blocks -reuse -dir /tmp/weft-blocks -skip-lookups   # query blocks already written
//	go run ./bench/blocks -blocks 1000 -spans-per-block 3000 -compact   # before and after compaction
//
// With -compact, after measuring, it compacts the blocks as the backend
// would (the planner's jobs, merged one at a time, until none is left),
// measures again and prints both side by side: p50 and p95 and their
// ratio, blocks and bytes per span, and the merge's spans per second.
//
// It prints, as Markdown to paste into a note, the command line, block
// write throughput, bytes per span on disk, the memory the Arrow buffer
// holds per MB of span protobuf, trace-by-ID latency (p50/p99) for present
// and absent traces (with -reuse, the present ones are the first and last
// traces of row groups, from meta.json), a table of searches (p50/p99
// latency, traces returned and the response metrics: inspectedBytes,
// inspectedSpans, inspectedTraces, jobs, totalBlocks, totalBlockBytes) and
// a table of tag values and tag names requests.
// Searches and tag requests run -searches times after one warm-up; block
// readers keep the Parquet footer after first use, so the measured runs
// are warm, as in a long-running querier. -check evaluates every search on
// every whole trace afterwards and checks the results returned.
//
// Blocks of spangen's spans take about 60 bytes per span on disk (see
// "bytes per span"): -blocks 200 -spans-per-block 50000 (10M spans) needs
// about 0.6 GB in -dir. -concurrent-jobs sets the query-frontend's
// concurrent_jobs (weft's default, 1000, starts every block job of a
// search at once).
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/query/querier"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "blocks:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory of the local bucket (default: a new temporary directory)")
	blocks := flag.Int("blocks", 100, "blocks to write")
	spansPerBlock := flag.Int("spans-per-block", 50000, "spans in each block")
	spansPerTrace := flag.Int("spans-per-trace", 10, "spans in each trace")
	lookups := flag.Int("lookups", 2000, "trace-by-ID lookups of present traces (as many of absent ones)")
	reuse := flag.Bool("reuse", false, "skip writing and query the blocks already in -dir")
	searches := flag.Int("searches", 20, "runs of each search and tag values request, after one warm-up run")
	skipLookups := flag.Bool("skip-lookups", false, "skip the trace-by-ID lookups")
	skipSearch := flag.Bool("skip-search", false, "skip the searches and tag requests")
	concurrentJobs := flag.Int("concurrent-jobs", 0, "query_frontend.search.concurrent_jobs (0: weft's default)")
	check := flag.Bool("check", false, "after the searches, evaluate every search on every trace and check the results (reads every block)")
	compact := flag.Bool("compact", false, "after measuring, compact the blocks as the backend would (until the planner has no job left) and measure again")
	flag.StringVar(&profileDir, "cpuprofile", "", "directory to write a CPU profile of the measured runs of each search to (one file per search, before and after compaction)")
	flag.Parse()
	if *searches < 1 || *lookups < 1 || *blocks < 1 || *spansPerBlock < 1 || *spansPerTrace < 1 {
		return fmt.Errorf("-blocks, -spans-per-block, -spans-per-trace, -lookups and -searches must be positive")
	}
	if *reuse && *dir == "" {
		return fmt.Errorf("-reuse needs -dir")
	}
	ctx := context.Background()
	fmt.Printf("## weft bench/blocks\n\n")
	fmt.Printf("    go run ./bench/blocks %s\n\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("%s, %s/%s, %d CPUs (GOMAXPROCS %d), %s\n\n", time.Now().UTC().Format(time.DateTime), runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Println("```")
	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-blocks-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	cfg := storage.DefaultConfig()
	cfg.Local.Path = *dir
	bkt, err := storage.NewBucket(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		return err
	}
	const tenant = "bench"
	var sample [][16]byte
	if !*reuse {
		tracesPerBlock := *spansPerBlock / *spansPerTrace
		var writeTime time.Duration
		var spans, diskBytes, protoBytes int64
		var bufBytes int64
		for i := 0; i < *blocks; i++ {
			td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: tracesPerBlock, SpansPerTrace: *spansPerTrace, Services: 8,
				Start: time.Now().Add(-time.Duration(*blocks-i) * time.Minute)})
			data := spangen.Marshal(td)
			var b otlpwire.Batch
			if err := b.Parse(data); err != nil {
				return err
			}
			for k := 0; k < 20; k++ { // remember some trace IDs to look up
				sp := b.Resources[0].Scopes[0].Spans[rand.IntN(len(b.Resources[0].Scopes[0].Spans))]
				sample = append(sample, [16]byte(sp.TraceID))
			}
			start := time.Now()
			buf := block.NewBuffer(nil)
			// The block-builder receives pushes of a few hundred spans.
			for _, part := range split(&b, 2000) {
				if err := buf.Add(part); err != nil {
					return err
				}
			}
			bufBytes += buf.Bytes()
			meta, err := block.Write(ctx, bkt, tenant, uuid.New(), block.Source{}, buf, block.WriteOptions{})
			buf.Release()
			if err != nil {
				return err
			}
			writeTime += time.Since(start)
			spans += meta.TotalSpans
			diskBytes += meta.Size + meta.BloomBytes
			protoBytes += int64(len(data))
			if (i+1)%10 == 0 {
				fmt.Fprintf(os.Stderr, "wrote %d/%d blocks (%d spans)\n", i+1, *blocks, spans)
			}
		}
		fmt.Printf("blocks written:             %d blocks, %d spans, %.1f MB on disk (OTLP protobuf %.1f MB)\n",
			*blocks, spans, float64(diskBytes)/1e6, float64(protoBytes)/1e6)
		fmt.Printf("block write:                %.0f spans/s (buffer + sort + encode + upload, one core)\n", float64(spans)/writeTime.Seconds())
		fmt.Printf("bytes per span on disk:     %.1f (data + bloom; OTLP protobuf: %.1f)\n", float64(diskBytes)/float64(spans), float64(protoBytes)/float64(spans))
		fmt.Printf("buffer memory per MB spans: %.2f MB (Arrow buffer bytes / OTLP protobuf bytes)\n", float64(bufBytes)/float64(protoBytes))
	}

	m := measurement{bkt: bkt, tenant: tenant, sample: sample, lookups: *lookups, searches: *searches,
		skipLookups: *skipLookups, skipSearch: *skipSearch, concurrentJobs: *concurrentJobs, check: *check}
	before, err := m.run(ctx, "")
	if err != nil || !*compact {
		return err
	}
	fmt.Printf("\n## Compaction\n\n")
	st, err := compactAll(ctx, bkt, tenant)
	if err != nil {
		return err
	}
	fmt.Printf("%d jobs in %d rounds (backend/compaction's default plan, block.Compact one job at a time): %d blocks in, %d spans read,\n",
		st.jobs, st.rounds, st.inputs, st.spansRead)
	fmt.Printf("%d duplicates left out, %.1f s, %.0f spans merged per second on one goroutine.\n\n",
		st.duplicates, st.took.Seconds(), float64(st.spansRead)/st.took.Seconds())
	after, err := m.run(ctx, " after compaction")
	if err != nil {
		return err
	}
	printComparison(before, after)
	return nil
}

// measurement is what the bench measures over the blocks of a bucket.
type measurement struct {
	bkt                     objstore.Bucket
	tenant                  string
	sample                  [][16]byte
	lookups, searches       int
	skipLookups, skipSearch bool
	concurrentJobs          int
	check                   bool
}

// figures are the results of one measurement, to compare before and
// after compaction.
type figures struct {
	blocks       int
	bytesPerSpan float64
	lookups      map[string]latencies // by lookup kind
	searches     map[string]latencies // by query
}

// latencies are sorted durations.
type latencies []time.Duration

func (l latencies) at(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(float64(len(l))*q))]
}

// run measures trace-by-ID lookups and searches over the blocks the block
// list sees now; label names the phase in the headings.
func (m *measurement) run(ctx context.Context, label string) (*figures, error) {
	bkt, tenant, sample := m.bkt, m.tenant, m.sample
	lookups, skipLookups, skipSearch := &m.lookups, &m.skipLookups, &m.skipSearch
	fig := &figures{lookups: map[string]latencies{}, searches: map[string]latencies{}}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := list.Poll(ctx); err != nil {
		return nil, err
	}
	n := list.Count(tenant)
	if n == 0 {
		return nil, fmt.Errorf("no blocks of tenant %q", tenant)
	}
	fig.blocks = n
	var spans, bytes int64
	for _, e := range list.Blocks(tenant, time.Time{}, time.Time{}) {
		spans += e.Meta.TotalSpans
		bytes += e.Meta.Size + e.Meta.BloomBytes
	}
	fig.bytesPerSpan = float64(bytes) / float64(max(spans, 1))
	fmt.Printf("blocks%s: %d, %d spans, %.1f bytes per span (data + bloom)\n", label, n, spans, fig.bytesPerSpan)
	if len(sample) == 0 { // -reuse: the first and last trace IDs of row groups are real ones
		for _, e := range list.Blocks(tenant, time.Time{}, time.Time{}) {
			for _, rg := range e.Meta.RowGroups {
				for _, h := range []string{rg.MinTraceID, rg.MaxTraceID} {
					var id [16]byte
					if len(h) != 32 {
						return nil, fmt.Errorf("block %s: bad trace ID %q", e.Meta.BlockID, h)
					}
					if _, err := hex.Decode(id[:], []byte(h)); err != nil {
						return nil, fmt.Errorf("block %s: bad trace ID %q", e.Meta.BlockID, h)
					}
					sample = append(sample, id)
				}
			}
		}
	}
	q := querier.New(querier.Config{}, nil, list, bkt, prometheus.NewRegistry())
	runtime.GC()
	measure := func(name string, ids [][16]byte, wantFound bool) error {
		lat := make([]time.Duration, 0, len(ids))
		for _, id := range ids {
			start := time.Now()
			data, err := q.FindTraceByID(ctx, tenant, id, 0, 0)
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(start))
			if (len(data) > 0) != wantFound {
				return fmt.Errorf("trace %x: found=%v, want %v", id, len(data) > 0, wantFound)
			}
		}
		slices.Sort(lat)
		l := latencies(lat)
		fig.lookups[name] = l
		fmt.Printf("trace by ID, %-17s p50 %8s  p95 %8s  p99 %8s  (%d lookups over %d blocks)\n", name+":",
			l.at(0.5).Round(time.Microsecond), l.at(0.95).Round(time.Microsecond), l.at(0.99).Round(time.Microsecond), len(lat), n)
		return nil
	}
	pick := func(k int) [][16]byte {
		out := make([][16]byte, k)
		for i := range out {
			out[i] = sample[rand.IntN(len(sample))]
		}
		return out
	}
	absent := make([][16]byte, *lookups)
	for i := range absent {
		absent[i] = [16]byte{0xde, 0xad, byte(i), byte(i >> 8), byte(rand.Uint32())}
	}
	if !*skipLookups {
		if err := measure("first (cold)", pick(min(200, *lookups)), true); err != nil {
			return nil, err
		}
		if err := measure("present", pick(*lookups), true); err != nil {
			return nil, err
		}
		if err := measure("absent", absent, false); err != nil {
			return nil, err
		}
	}
	fmt.Println("```")
	if *skipSearch {
		return fig, nil
	}
	return fig, benchSearch(ctx, list, bkt, tenant, m.searches, m.concurrentJobs, m.check, label, fig)
}

// split cuts a batch into batches of at most n spans, as pushes arrive.
func split(b *otlpwire.Batch, n int) []*otlpwire.Batch {
	var out []*otlpwire.Batch
	var cur otlpwire.Builder
	flush := func() {
		if cur.SpanCount() == 0 {
			return
		}
		var nb otlpwire.Batch
		if err := nb.Scan(cur.AppendTo(nil)); err != nil {
			panic(err)
		}
		out = append(out, &nb)
		cur.Reset()
	}
	for ri := range b.Resources {
		res := &b.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				cur.Add(res, sc, sp.Raw)
				if cur.SpanCount() >= n {
					flush()
				}
			}
		}
	}
	flush()
	return out
}
