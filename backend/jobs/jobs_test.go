package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/backend/worker"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// TestCompactionRetryAfterOutputLetGo: a compaction job killed after its
// output's upload and its first input's mark is retried after its output
// was compacted again (and let go). The retry succeeds, and no input of
// the job is listed: their spans are in the block the output went into.
func TestCompactionRetryAfterOutputLetGo(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inputs := writeInputs(t, bkt, 3) // the third stays listed
	job := &scheduler.Job{ID: "j", Type: scheduler.JobCompaction, Tenant: "t1", Blocks: []uuid.UUID{inputs[0].BlockID, inputs[1].BlockID}}
	res, err := block.Compact(ctx, bkt, inputs[:2], block.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// The first run stops after its first input's mark; another job then
	// compacts the output and lets it go.
	if err := block.MarkCompacted(ctx, bkt, inputs[0], now); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkCompacted(ctx, bkt, res.Meta, now); err != nil {
		t.Fatal(err)
	}
	run := Runners(bkt, worker.DefaultConfig(), nil, block.CompactOptions{}, nil, nil)[scheduler.JobCompaction]
	if err := run(ctx, job); err != nil {
		t.Fatalf("retry of a job whose output was let go: %v", err)
	}
	if metas, err := block.ListBlocks(ctx, bkt, "t1"); err != nil || len(metas) != 1 || metas[0].BlockID != inputs[2].BlockID {
		t.Fatalf("%d blocks listed after the retry (%v), want the third block alone", len(metas), err)
	}
	// A job one of whose inputs retention let go, and whose output was
	// never written, cannot run: it fails, its other inputs left listed.
	if err := run(ctx, &scheduler.Job{ID: "k", Type: scheduler.JobCompaction, Tenant: "t1", Blocks: []uuid.UUID{inputs[0].BlockID, inputs[2].BlockID}}); err == nil {
		t.Fatal("a job with an input gone and no output succeeded")
	}
}

// writeInputs writes n blocks of tenant t1, as the block-builder does.
func writeInputs(t *testing.T, bkt *filesystem.Bucket, n int) []*block.Meta {
	t.Helper()
	ctx := context.Background()
	var inputs []*block.Meta
	for i := range n {
		var batch otlpwire.Batch
		if err := batch.Parse(spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 10, SpansPerTrace: 3}))); err != nil {
			t.Fatal(err)
		}
		buf := block.NewBuffer(nil)
		if err := buf.Add(&batch); err != nil {
			t.Fatal(err)
		}
		m, err := block.Write(ctx, bkt, "t1", uuid.New(), block.Source{Origin: "topic", FirstOffset: int64(i * 10), LastOffset: int64(i*10 + 9)}, buf, block.WriteOptions{})
		buf.Release()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, m)
	}
	return inputs
}

// TestCompactionChecksOutputData: a retry that finds its output's meta.json
// but not its data (deleted under it, cut short) fails and lets no input
// go: the inputs hold the only copy of their spans.
func TestCompactionChecksOutputData(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inputs := writeInputs(t, bkt, 2)
	res, err := block.Compact(ctx, bkt, inputs, block.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The first run let one input go, then stopped; the output's data is
	// then lost.
	if err := block.MarkCompacted(ctx, bkt, inputs[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Delete(ctx, res.Meta.ObjectName(block.DataName)); err != nil {
		t.Fatal(err)
	}
	run := Runners(bkt, worker.DefaultConfig(), nil, block.CompactOptions{}, nil, nil)[scheduler.JobCompaction]
	err = run(ctx, &scheduler.Job{ID: "j", Type: scheduler.JobCompaction, Tenant: "t1", Blocks: []uuid.UUID{inputs[0].BlockID, inputs[1].BlockID}})
	if err == nil || !strings.Contains(err.Error(), block.DataName+" is missing") {
		t.Fatalf("retry over an output without data: %v, want an error naming %s", err, block.DataName)
	}
	if _, err := block.ReadMeta(ctx, bkt, "t1", inputs[1].BlockID); err != nil {
		t.Fatalf("the second input was let go although the output has no data: %v", err)
	}
}
