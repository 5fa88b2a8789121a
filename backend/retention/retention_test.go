package retention

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

func writeBlock(t *testing.T, bkt *filesystem.Bucket, tenant string, start time.Time) *block.Meta {
	t.Helper()
	buf := block.NewBuffer(nil)
	defer buf.Release()
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(start.UnixNano()), Traces: 5, SpansPerTrace: 3, Start: start}))); err != nil {
		t.Fatal(err)
	}
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	m, err := block.Write(context.Background(), bkt, tenant, uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func objects(t *testing.T, bkt *filesystem.Bucket, tenant string, id uuid.UUID) int {
	t.Helper()
	n := 0
	if err := bkt.Iter(context.Background(), tenant+"/"+id.String()+"/", func(string) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetention: blocks past the retention are let go at once and deleted
// compacted_block_retention later; newer blocks and other tenants' are
// untouched; an abandoned block directory is deleted once it is that old.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := writeBlock(t, bkt, "a", now.Add(-48*time.Hour))
	recent := writeBlock(t, bkt, "a", now.Add(-time.Hour))
	otherOld := writeBlock(t, bkt, "b", now.Add(-48*time.Hour))
	abandoned := uuid.New()
	if err := bkt.Upload(ctx, "a/"+abandoned.String()+"/"+block.DataName, bytes.NewReader([]byte("partial"))); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	s := Settings{Retention: 24 * time.Hour, CompactedRetention: time.Hour}

	st, err := Run(ctx, bkt, "a", now, s, m)
	if err != nil || st.Marked != 1 || st.Deleted != 0 {
		t.Fatalf("first run: %+v, %v", st, err)
	}
	metas, err := block.ListBlocks(ctx, bkt, "a")
	if err != nil || len(metas) != 1 || metas[0].BlockID != recent.BlockID {
		t.Fatalf("blocks of a after the first run: %v, %v", metas, err)
	}
	if n := objects(t, bkt, "a", old.BlockID); n == 0 {
		t.Fatal("the let-go block's objects are gone at once: queries reading it would fail")
	}
	if others, err := block.ListBlocks(ctx, bkt, "b"); err != nil || len(others) != 1 || others[0].BlockID != otherOld.BlockID {
		t.Fatalf("tenant b's blocks: %v, %v", others, err)
	}

	// Half the compacted retention later: nothing more goes.
	if st, err := Run(ctx, bkt, "a", now.Add(30*time.Minute), s, m); err != nil || st.Marked != 0 || st.Deleted != 0 {
		t.Fatalf("run 30 min later: %+v, %v", st, err)
	}
	// Past it: the let-go block and the abandoned directory are deleted.
	if st, err := Run(ctx, bkt, "a", now.Add(61*time.Minute), s, m); err != nil || st.Deleted != 2 {
		t.Fatalf("run 61 min later: %+v, %v", st, err)
	}
	if n := objects(t, bkt, "a", old.BlockID) + objects(t, bkt, "a", abandoned); n != 0 {
		t.Fatalf("%d objects left of the deleted blocks", n)
	}
	if n := objects(t, bkt, "a", recent.BlockID); n == 0 {
		t.Fatal("the recent block was deleted")
	}
	if got := testutil.ToFloat64(m.marked.WithLabelValues("a")) + testutil.ToFloat64(m.deleted.WithLabelValues("a")); got != 3 {
		t.Fatalf("metrics count %v, want 1 marked + 2 deleted", got)
	}
	// Retention 0 keeps everything.
	if st, err := Run(ctx, bkt, "b", now.Add(1000*time.Hour), Settings{CompactedRetention: time.Hour}, m); err != nil || st.Marked != 0 {
		t.Fatalf("retention 0: %+v, %v", st, err)
	}
}

// TestAbandonedRewrittenMeanwhile: an abandoned output that a retried job
// rewrites after retention listed it is not deleted (its listing is stale).
func TestAbandonedRewrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	data := "a/" + id.String() + "/" + block.DataName
	if err := bkt.Upload(ctx, data, bytes.NewReader([]byte("partial"))); err != nil {
		t.Fatal(err)
	}
	dirs, err := list(ctx, bkt, "a")
	if err != nil || dirs[id] == nil {
		t.Fatalf("list: %v, %v", dirs, err)
	}
	written := time.Now()
	if ok, err := stillAbandoned(ctx, bkt, "a", id, dirs[id], written.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("untouched since the listing: stillAbandoned = %v, %v; want true", ok, err)
	}
	// A retry rewrites data.parquet after the listing.
	if err := bkt.Upload(ctx, data, bytes.NewReader([]byte("rewritten by a retry"))); err != nil {
		t.Fatal(err)
	}
	if ok, err := stillAbandoned(ctx, bkt, "a", id, dirs[id], written.Add(-time.Second)); err != nil || ok {
		t.Fatalf("rewritten after the listing: stillAbandoned = %v, %v; want false", ok, err)
	}
	// The retry wrote its meta.json: not abandoned, whatever the times.
	if err := bkt.Upload(ctx, "a/"+id.String()+"/"+block.MetaName, bytes.NewReader([]byte("{}"))); err != nil {
		t.Fatal(err)
	}
	if ok, err := stillAbandoned(ctx, bkt, "a", id, dirs[id], written.Add(time.Hour)); err != nil || ok {
		t.Fatalf("meta.json written since: stillAbandoned = %v, %v; want false", ok, err)
	}
}
