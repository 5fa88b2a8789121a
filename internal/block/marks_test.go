package block

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/weftdb/weft/internal/spangen"
)

// TestMarkCompacted: a marked block is no longer listed, keeps its first
// mark time, and a replay of its log does not write it again; a block of
// other spans under its ID is still refused.
func TestMarkCompacted(t *testing.T) {
	bkt := newBucket(t)
	id := uuid.New()
	src := Source{Origin: "topic", Partition: 3, FirstOffset: 100, LastOffset: 199}
	write := func(src Source) (*Meta, error) {
		buf := NewBuffer(nil)
		defer buf.Release()
		addTraces(t, buf, spangen.Generate(spangen.Options{Seed: 1, Traces: 10, SpansPerTrace: 5}))
		return Write(ctx, bkt, "t1", id, src, buf, WriteOptions{})
	}
	meta, err := write(src)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := MarkCompacted(ctx, bkt, meta, at); err != nil {
		t.Fatal(err)
	}
	if err := MarkCompacted(ctx, bkt, meta, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if metas, err := ListBlocks(ctx, bkt, "t1"); err != nil || len(metas) != 0 {
		t.Fatalf("a marked block is listed: %d blocks, %v", len(metas), err)
	}
	mark, err := ReadCompactedMark(ctx, bkt, "t1", id)
	if err != nil || mark == nil || !mark.CompactedTime.Equal(at) || mark.BlockID != id || mark.TotalSpans != meta.TotalSpans {
		t.Fatalf("mark: %+v, %v", mark, err)
	}
	// A replay of the same log writes nothing and returns the old meta.
	got, err := write(src)
	if err != nil || got.BlockID != id || got.Size != meta.Size {
		t.Fatalf("replay of a let-go block: %+v, %v", got, err)
	}
	if metas, err := ListBlocks(ctx, bkt, "t1"); err != nil || len(metas) != 0 {
		t.Fatalf("a replay brought the marked block back: %d blocks, %v", len(metas), err)
	}
	// Other spans under the ID are refused.
	if _, err := write(Source{Origin: "topic", Partition: 4, FirstOffset: 7}); !errors.Is(err, ErrIDTaken) {
		t.Fatalf("another source under a marked ID: %v", err)
	}
}

// TestMarkCompactedLetsGoOfInputs: a compaction cut short after its first
// input's mark leaves the second input listed, hidden only by the output.
// Letting the output go (compacted again, or past retention) lets that
// input go first, so that no reader counts its spans beside the block the
// output went into.
func TestMarkCompactedLetsGoOfInputs(t *testing.T) {
	bkt := newBucket(t)
	var inputs []*Meta
	for i := range 2 {
		buf := NewBuffer(nil)
		addTraces(t, buf, spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 10, SpansPerTrace: 3}))
		m, err := Write(ctx, bkt, "t1", uuid.New(), Source{Origin: "topic", FirstOffset: int64(i * 10), LastOffset: int64(i*10 + 9)}, buf, WriteOptions{})
		buf.Release()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, m)
	}
	res, err := Compact(ctx, bkt, inputs, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := MarkCompacted(ctx, bkt, inputs[0], at); err != nil { // the job stops here
		t.Fatal(err)
	}
	if err := MarkCompacted(ctx, bkt, res.Meta, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if metas, err := ListBlocks(ctx, bkt, "t1"); err != nil || len(metas) != 0 {
		t.Fatalf("after the output is let go, %d blocks are listed (%v): an input it hid is back", len(metas), err)
	}
	for i, in := range inputs {
		mark, err := ReadCompactedMark(ctx, bkt, "t1", in.BlockID)
		if err != nil || mark == nil {
			t.Fatalf("input %d has no mark: %v", i, err)
		}
	}
}

// TestRemoveSpoolFiles: the spool files a merge killed by SIGKILL left are
// removed, other files are not.
func TestRemoveSpoolFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"compact-1.parquet", "compact-2.parquet", "other.parquet"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := RemoveSpoolFiles(dir)
	if err != nil || n != 2 {
		t.Fatalf("removed %d (%v), want 2", n, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "other.parquet" {
		t.Fatalf("left: %v", left)
	}
}
