package blockbuilder

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/pipelines"
)

// startReg starts a builder registering its metrics in a new registry.
func (f *fixture) startReg(t *testing.T) (*Builder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b := New(pipelines.Settings{Name: "block-builder", Metrics: reg}, f.cfg, f.bkt, Hooks{})
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	return b, reg
}

// storedWhole counts the pushes whose spans are all stored once, and fails
// on a span stored twice or a push stored in part.
func storedWhole(t *testing.T, counts map[string]int, tenant string, tds ...ptrace.Traces) int {
	t.Helper()
	whole := 0
	for i, td := range tds {
		seen, spans := 0, 0
		for r := 0; r < td.ResourceSpans().Len(); r++ {
			ss := td.ResourceSpans().At(r).ScopeSpans().At(0).Spans()
			for k := 0; k < ss.Len(); k++ {
				tid, sid := ss.At(k).TraceID(), ss.At(k).SpanID()
				n := counts[tenant+"/"+hex.EncodeToString(tid[:])+"/"+hex.EncodeToString(sid[:])]
				if n > 1 {
					t.Fatalf("push %d: a span is stored %d times", i, n)
				}
				seen += n
				spans++
			}
		}
		switch seen {
		case spans:
			whole++
		case 0:
		default:
			t.Fatalf("push %d: %d of its %d spans stored", i, seen, spans)
		}
	}
	return whole
}

// An empty checkpoint (cut by a crash) no longer stops the start: it is
// rebuilt from the blocks of this WAL in the bucket, so no span is lost or
// stored twice.
func TestUnreadableCheckpointIsRebuilt(t *testing.T) {
	f, tds := crashAfterBlocks(t)
	if err := os.WriteFile(filepath.Join(f.cfg.WAL.Path, checkpointName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := f.startReg(t)
	tds = append(tds, push(t, b, "t", 5))
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	expect(t, counts, "t", tds...)
}

// crashAfterBlocks pushes 4 times, a block cut after each (by age), then
// crashes the block-builder: the uploaded blocks' records stay in the WAL.
func crashAfterBlocks(t *testing.T) (*fixture, []ptrace.Traces) {
	t.Helper()
	f := newFixture(t)
	f.cfg.MaxBlockDuration = 100 * time.Millisecond
	b, _ := f.startReg(t)
	var tds []ptrace.Traces
	for seed := uint64(1); seed <= 4; seed++ {
		tds = append(tds, push(t, b, "t", seed))
		time.Sleep(200 * time.Millisecond)
	}
	crash(b)
	return f, tds
}

func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	sort.Strings(segs)
	return segs
}

// Damage in the middle of the WAL loses the damaged record only: weft
// starts, stores every other acknowledged push, and counts the loss.
func TestDamagedWALRecordIsCountedAndTheRestKept(t *testing.T) {
	f := newFixture(t)
	f.cfg.WAL.SegmentBytes = 1 << 20
	b, _ := f.startReg(t)
	var tds []ptrace.Traces
	for seed := uint64(1); seed <= 5; seed++ {
		tds = append(tds, push(t, b, "t", seed))
	}
	crash(b)
	segs := walSegments(t, f.cfg.WAL.Path)
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff // inside the third push's record
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, reg := f.startReg(t)
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	if whole := storedWhole(t, counts, "t", tds...); whole != 4 {
		t.Fatalf("%d of 5 pushes stored after damage to one record, want 4", whole)
	}
	if got := metricValue(t, reg, "weft_block_builder_wal_records_lost_total"); got != 1 {
		t.Fatalf("weft_block_builder_wal_records_lost_total = %v, want 1", got)
	}
}

// A WAL whose newest segments were deleted does not give their offsets
// again: a new block would take the ID of an uploaded one and replace it.
func TestLostWALEndDoesNotReuseBlockIDs(t *testing.T) {
	f := newFixture(t)
	b, _ := f.startReg(t)
	tds := []ptrace.Traces{push(t, b, "t", 1), push(t, b, "t", 2)}
	stop(t, b) // uploaded and checkpointed; the records stay in the last segment
	for _, seg := range walSegments(t, f.cfg.WAL.Path) {
		if err := os.Remove(seg); err != nil {
			t.Fatal(err)
		}
	}
	b, reg := f.startReg(t)
	tds = append(tds, push(t, b, "t", 3))
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	expect(t, counts, "t", tds...)
	if got := metricValue(t, reg, "weft_block_builder_wal_records_lost_total"); got < 1 {
		t.Fatalf("weft_block_builder_wal_records_lost_total = %v, want the lost end counted", got)
	}
}

// Deleting the oldest segment that still holds records not in a block (the
// obvious fix for a damaged one) is no longer silent: the loss is counted.
func TestMissingOldestSegmentIsReported(t *testing.T) {
	f := newFixture(t)
	f.cfg.WAL.SegmentBytes = 1 << 10 // one record a segment
	f.cfg.MaxBlockDuration = 100 * time.Millisecond
	b, _ := f.startReg(t)
	push(t, b, "t", 1)
	time.Sleep(300 * time.Millisecond) // uploaded, checkpoint saved
	f.cfg.MaxBlockDuration = time.Hour
	crash(b)
	b, _ = f.startReg(t) // nothing to replay
	lost := push(t, b, "t", 2)
	kept := push(t, b, "t", 3)
	crash(b)
	// Segments: push 1's (in a block), push 2's, push 3's. Delete the
	// first two, as an operator removing a damaged one and what is before.
	segs := walSegments(t, f.cfg.WAL.Path)
	if len(segs) != 3 {
		t.Fatalf("segments %v, want 3", segs)
	}
	for _, s := range segs[:2] {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	b, reg := f.startReg(t)
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	if storedWhole(t, counts, "t", kept) != 1 || storedWhole(t, counts, "t", lost) != 0 {
		t.Fatal("want push 3 stored and push 2 (in the deleted segment) lost")
	}
	if got := metricValue(t, reg, "weft_block_builder_wal_records_lost_total"); got < 1 {
		t.Fatalf("weft_block_builder_wal_records_lost_total = %v, want the missing segment counted", got)
	}
}

// Blocks compacted since they were uploaded are let go (no meta.json): a
// checkpoint rebuilt after that still knows their records are stored, and
// a replay does not write them again beside the compacted block.
func TestCheckpointRebuiltAfterCompaction(t *testing.T) {
	f, tds := crashAfterBlocks(t)
	ctx := context.Background()
	metas, err := block.ListBlocks(ctx, f.bkt, "t")
	if err != nil || len(metas) < 2 {
		t.Fatalf("%d blocks uploaded (%v), want several", len(metas), err)
	}
	if _, err := block.Compact(ctx, f.bkt, metas, block.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if err := block.MarkCompacted(ctx, f.bkt, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.cfg.WAL.Path, checkpointName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := f.startReg(t)
	tds = append(tds, push(t, b, "t", 5))
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	expect(t, counts, "t", tds...)
}
