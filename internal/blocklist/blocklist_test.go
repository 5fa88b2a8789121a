package blocklist

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

func write(t *testing.T, bkt objstore.Bucket, tenant string, start time.Time) *block.Meta {
	t.Helper()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	meta, err := block.Write(context.Background(), bkt, tenant, uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func TestPollSeesCompleteBlocksOnly(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := write(t, bkt, "t", t0)
	b := write(t, bkt, "t", t0.Add(time.Hour))
	// A block being written: data but no meta.json yet.
	partial := uuid.New()
	if err := bkt.Upload(ctx, "t/"+partial.String()+"/"+block.DataName, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Count("t") != 2 {
		t.Fatalf("%d blocks, want the 2 complete ones", l.Count("t"))
	}
	// Newest first; time filter.
	got := l.Blocks("t", time.Time{}, time.Time{})
	if got[0].Meta.BlockID != b.BlockID || got[1].Meta.BlockID != a.BlockID {
		t.Fatal("blocks not newest first")
	}
	if got := l.Blocks("t", t0.Add(30*time.Minute), time.Time{}); len(got) != 1 || got[0].Meta.BlockID != b.BlockID {
		t.Fatalf("time filter: %d blocks", len(got))
	}
	// The partial block completes; a block is deleted.
	if err := bkt.Delete(ctx, "t/"+partial.String()+"/"+block.DataName); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{block.MetaName, block.DataName, block.BloomName} {
		_ = bkt.Delete(ctx, "t/"+a.BlockID.String()+"/"+name)
	}
	c := write(t, bkt, "t", t0.Add(2*time.Hour))
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	ids := map[uuid.UUID]bool{}
	for _, e := range l.Blocks("t", time.Time{}, time.Time{}) {
		ids[e.Meta.BlockID] = true
	}
	if len(ids) != 2 || !ids[b.BlockID] || !ids[c.BlockID] || ids[a.BlockID] {
		t.Fatalf("after the second poll: %v", ids)
	}
}

// TestFetchReadsBlocksNotPolledYet is the querier's case: a query-frontend
// planned a job from a block list that was polled after ours.
func TestFetchReadsBlocksNotPolledYet(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m := write(t, bkt, "t", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if l.Get("t", m.BlockID) != nil {
		t.Fatal("the list knows a block it has not polled")
	}
	e, err := l.Fetch(ctx, "t", m.BlockID)
	if err != nil || e == nil || e.Meta.BlockID != m.BlockID {
		t.Fatalf("Fetch = %v, %v", e, err)
	}
	if l.Get("t", m.BlockID) != e || l.Count("t") != 1 {
		t.Fatal("the fetched block was not added to the list")
	}
	// A block that is not in the bucket (or not complete) is nil, nil.
	if e, err := l.Fetch(ctx, "t", uuid.New()); e != nil || err != nil {
		t.Fatalf("absent block: %v, %v", e, err)
	}
	if e, err := l.Fetch(ctx, "other", m.BlockID); e != nil || err != nil {
		t.Fatalf("another tenant's block: %v, %v", e, err)
	}
}

// FetchPlanned finds a block let go after a job was planned with it (its
// meta.compacted.json, objects still in the bucket) without listing it
// again; a block gone altogether is nil, nil.
func TestFetchPlannedReadsBlocksLetGo(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	m := write(t, bkt, "t", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err := block.MarkCompacted(ctx, bkt, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	if e, err := l.Fetch(ctx, "t", m.BlockID); e != nil || err != nil {
		t.Fatalf("Fetch of a block let go = %v, %v; want nil, nil", e, err)
	}
	e, err := l.FetchPlanned(ctx, "t", m.BlockID)
	if err != nil || e == nil || e.Meta.BlockID != m.BlockID || e.Meta.TotalSpans != m.TotalSpans {
		t.Fatalf("FetchPlanned = %v, %v", e, err)
	}
	r, err := e.Reader(ctx, bkt)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := r.FindTraceByID(ctx, [16]byte{1}); err != nil || len(data) == 0 {
		t.Fatalf("reading the block let go: %d bytes, %v", len(data), err)
	}
	if l.Get("t", m.BlockID) != nil || l.Count("t") != 0 {
		t.Fatal("FetchPlanned listed a block let go")
	}
	if e, err := l.FetchPlanned(ctx, "t", uuid.New()); e != nil || err != nil {
		t.Fatalf("absent block: %v, %v", e, err)
	}
}

// TestCompactionSwap: while a compaction's output and its inputs are all
// in the bucket, the list holds the output alone; before the output's
// meta.json, the inputs alone; after the inputs are let go, the output.
func TestCompactionSwap(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := write(t, bkt, "t", t0)
	b := write(t, bkt, "t", t0.Add(time.Minute))
	other := write(t, bkt, "t", t0.Add(time.Hour))
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	ids := func() map[uuid.UUID]bool {
		if err := l.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		out := map[uuid.UUID]bool{}
		for _, e := range l.Blocks("t", time.Time{}, time.Time{}) {
			out[e.Meta.BlockID] = true
		}
		return out
	}
	if got := ids(); len(got) != 3 {
		t.Fatalf("before compaction: %v", got)
	}
	res, err := block.Compact(ctx, bkt, []*block.Meta{a, b}, block.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Meta.BlockID
	if got := ids(); len(got) != 2 || !got[out] || !got[other.BlockID] {
		t.Fatalf("output and inputs in the bucket: the list holds %v, want the output %s and the other block", got, out)
	}
	// A block this process adds (or fetches) does not bring an input back.
	l.Add(a)
	if got := ids(); got[a.BlockID] {
		t.Fatal("an input added again is listed beside its output")
	}
	for _, m := range []*block.Meta{a, b} {
		if err := block.MarkCompacted(ctx, bkt, m, t0); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(); len(got) != 2 || !got[out] {
		t.Fatalf("after the inputs were let go: %v", got)
	}
	if n := l.Count("t"); n != 2 {
		t.Fatalf("Count = %d", n)
	}
}
