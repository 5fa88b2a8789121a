package querier

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
)

// faultFixture is a tenant with a trace split over the live-store and two
// blocks, and a second trace only in the live-store.
type faultFixture struct {
	dir        string
	bkt        *filesystem.Bucket
	list       *blocklist.List
	live       liveFinder
	split      pcommon.TraceID // spans 1, 2 in block a; 3 in block b; 4 live
	liveOnly   pcommon.TraceID // span 7 live
	inA        pcommon.TraceID // span 8 in block a only
	metaA      *block.Meta
	metaB      *block.Meta
	reg        *prometheus.Registry
	stopPoller func()
}

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	f := &faultFixture{dir: t.TempDir(), split: pcommon.TraceID{0xab}, liveOnly: pcommon.TraceID{0x11}, inA: pcommon.TraceID{0x22}}
	var err error
	if f.bkt, err = filesystem.NewBucket(f.dir); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.metaA = writeBlock(t, f.bkt, "t", trace(f.split, start, 1, 2), trace(f.inA, start, 8))
	f.metaB = writeBlock(t, f.bkt, "t", trace(f.split, start, 3))
	f.live = liveFinder{
		f.split:    spangen.Marshal(trace(f.split, start, 4)),
		f.liveOnly: spangen.Marshal(trace(f.liveOnly, start, 7)),
	}
	f.list = blocklist.New(f.bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := f.list.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.list.Stop() })
	f.reg = prometheus.NewRegistry()
	return f
}

func (f *faultFixture) querier(bkt objstore.BucketReader) *Querier {
	return New(Config{Concurrency: 4, TraceByID: TraceByIDConfig{QueryTimeout: 10 * time.Second}}, f.live, f.list, bkt, f.reg)
}

// damage truncates a file of a block to half its size.
func (f *faultFixture) damage(t *testing.T, m *block.Meta, file string) {
	t.Helper()
	path := filepath.Join(f.dir, filepath.FromSlash(m.ObjectName(file)))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
}

func find(t *testing.T, q *Querier, id pcommon.TraceID) (map[byte]bool, *partial.Notes) {
	t.Helper()
	ctx, notes := partial.NewContext(context.Background())
	data, err := q.FindTraceByID(ctx, "t", id, 0, 0)
	if err != nil {
		t.Fatalf("trace %x: %v", id[:1], err)
	}
	return spanIDs(t, data), notes
}

func sameSpans(got map[byte]bool, want ...byte) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

// A truncated bloom file fails no lookup: the block is read without it,
// every trace comes back whole, the answer is complete, and the bad bloom
// is counted once.
func TestTraceByIDDamagedBloom(t *testing.T) {
	f := newFaultFixture(t)
	f.damage(t, f.metaA, block.BloomName)
	q := f.querier(f.bkt)
	for _, c := range []struct {
		id   pcommon.TraceID
		want []byte
	}{{f.split, []byte{1, 2, 3, 4}}, {f.liveOnly, []byte{7}}, {f.inA, []byte{8}}} {
		got, notes := find(t, q, c.id)
		if !sameSpans(got, c.want...) {
			t.Fatalf("trace %x: spans %v, want %v", c.id[:1], got, c.want)
		}
		if msg := notes.Message(); msg != "" {
			t.Fatalf("trace %x: answer marked partial: %s", c.id[:1], msg)
		}
	}
	if n := testutil.ToFloat64(q.bloomUnreadable); n != 1 {
		t.Fatalf("weft_block_bloom_unreadable_total = %v, want 1", n)
	}
}

// A truncated data.parquet is skipped: the spans found elsewhere come
// back, the notes name the block, the other traces are not affected.
func TestTraceByIDDamagedData(t *testing.T) {
	f := newFaultFixture(t)
	f.damage(t, f.metaA, block.DataName)
	q := f.querier(f.bkt)
	got, notes := find(t, q, f.split)
	if !sameSpans(got, 3, 4) {
		t.Fatalf("split trace: spans %v, want 3 and 4", got)
	}
	skips := notes.Skips()
	if len(skips) != 1 || skips[0].Block != f.metaA.BlockID.String() || skips[0].Reason != partial.ReasonDamaged {
		t.Fatalf("skips %+v, want block %s damaged", skips, f.metaA.BlockID)
	}
	if msg := notes.Message(); !strings.Contains(msg, f.metaA.BlockID.String()) || !strings.Contains(msg, "data.parquet") {
		t.Fatalf("message %q does not name the block and its file", msg)
	}
	if got, notes := find(t, q, f.liveOnly); !sameSpans(got, 7) || notes.Message() != "" {
		t.Fatalf("live-only trace: %v, %q", got, notes.Message())
	}
}

// hangingBucket never answers a read, as a hung object store.
type hangingBucket struct {
	objstore.Bucket
	calls atomic.Int64
}

func (b *hangingBucket) Get(ctx context.Context, _ string) (io.ReadCloser, error) {
	b.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (b *hangingBucket) GetRange(ctx context.Context, _ string, _, _ int64) (io.ReadCloser, error) {
	b.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// With object storage hung, trace by ID answers within the read timeout
// (not the query timeout) with what the live-store holds, marked partial;
// after the first storage failure the other blocks are not read.
func TestTraceByIDHungStorage(t *testing.T) {
	f := newFaultFixture(t)
	hung := &hangingBucket{Bucket: f.bkt}
	const timeout = 300 * time.Millisecond
	q := f.querier(storage.NewReadBucket(hung, timeout))
	q.cfg.Concurrency = 1
	start := time.Now()
	got, notes := find(t, q, f.split)
	if took := time.Since(start); took > 5*timeout {
		t.Fatalf("answer took %s with a read timeout of %s", took, timeout)
	}
	if !sameSpans(got, 4) {
		t.Fatalf("spans %v, want the live one (4)", got)
	}
	skips := notes.Skips()
	if len(skips) != 2 || skips[0].Reason != partial.ReasonStorage || skips[1].Reason != partial.ReasonStorage {
		t.Fatalf("skips %+v, want both blocks, storage", skips)
	}
	if msg := notes.Message(); !strings.Contains(msg, storage.ReadTimeoutKey) || !strings.Contains(msg, "2 blocks were not read") {
		t.Fatalf("message %q does not say 2 blocks were not read and name %s", msg, storage.ReadTimeoutKey)
	}
	if n := hung.calls.Load(); n != 1 {
		t.Fatalf("%d reads of a hung store, want 1 (then no more blocks are read)", n)
	}
	// A second lookup in the same query (a search reading traces whole)
	// does not wait again.
	ctx := context.Background()
	ctx, notes = partial.NewContext(ctx)
	notes.Add(partial.Skip{Block: "x", Reason: partial.ReasonStorage})
	start = time.Now()
	if _, err := q.FindTraceByID(ctx, "t", f.liveOnly, 0, 0); err != nil || time.Since(start) > timeout/2 {
		t.Fatalf("lookup after a storage failure: %v after %s", err, time.Since(start))
	}
}

// Without partial notes in the context the spans found are still served.
func TestTraceByIDDamagedWithoutNotes(t *testing.T) {
	f := newFaultFixture(t)
	f.damage(t, f.metaB, block.DataName)
	data, err := f.querier(f.bkt).FindTraceByID(context.Background(), "t", f.split, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := spanIDs(t, data); !sameSpans(got, 1, 2, 4) {
		t.Fatalf("spans %v", got)
	}
}

// A search job over a damaged block completes as skipped, naming the
// block, instead of failing (which failed the whole search).
func TestSearchJobOverDamagedBlock(t *testing.T) {
	f := newFaultFixture(t)
	f.damage(t, f.metaA, block.DataName)
	s := search.New(nil, f.list, f.bkt)
	r := NewJobRunner(s, DefaultConfig(), prometheus.NewRegistry())
	req := search.Request{Query: "{}", Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	var skipped, ok int
	for _, job := range s.Plan(req, "t") {
		res, err := r.SearchJob(context.Background(), "t", job)
		if err != nil {
			t.Fatalf("job of block %s: %v", job.BlockID, err)
		}
		switch {
		case res.Skipped != nil:
			skipped++
			if res.Skipped.Block != f.metaA.BlockID.String() || res.Skipped.Reason != partial.ReasonDamaged || !strings.Contains(res.Skipped.Error, "data.parquet") {
				t.Fatalf("skipped %+v", res.Skipped)
			}
		case len(res.Traces) == 1:
			ok++
		}
	}
	if skipped != 1 || ok != 1 {
		t.Fatalf("%d jobs skipped, %d found the trace; want 1 and 1", skipped, ok)
	}
}
