package jobs

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/backend/worker"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// A redaction job is safe to run again at any point: after it finished,
// after a crash between the output's upload and letting the input go, and
// on a block let go by something else (reported gone, not failed).
func TestRedactionJobRetries(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	td := spangen.Generate(spangen.Options{Seed: 9, Traces: 20, SpansPerTrace: 4, Services: 2})
	buf := block.NewBuffer(nil)
	defer buf.Release()
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	in, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{Origin: "test"}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	var added []*block.Meta
	run := Runners(bkt, worker.Config{}, nil, block.CompactOptions{}, func(m *block.Meta) { added = append(added, m) }, prometheus.NewRegistry())[scheduler.JobRedaction]
	job := func() *scheduler.Job {
		return &scheduler.Job{ID: "j", Type: scheduler.JobRedaction, Tenant: "t", Blocks: []uuid.UUID{in.BlockID},
			Redact: &scheduler.RedactJob{Request: "r", Set: "s", TraceIDs: []string{hex.EncodeToString(victim[:])}}}
	}

	// A crash after the output was written, before the input was let go:
	// block.Redact ran, the runner did not.
	res, err := block.Redact(ctx, bkt, in, [][16]byte{victim}, block.RedactOptions{Request: "r", Set: "s"})
	if err != nil || !res.Written {
		t.Fatalf("%+v, %v", res, err)
	}
	j := job()
	if err := run(ctx, j); err != nil {
		t.Fatal(err)
	}
	if r := j.Result; r == nil || !r.Rewritten || r.Output != res.Meta.BlockID || r.Spans != res.SpansRemoved || len(r.TraceIDs) != 1 {
		t.Fatalf("retry after a crash: %+v, want the output %s reported with its counts", j.Result, res.Meta.BlockID)
	}
	if len(added) != 1 || added[0].BlockID != res.Meta.BlockID {
		t.Fatalf("the block list was told of %v", added)
	}
	if m, _ := block.ReadCompactedMark(ctx, bkt, "t", in.BlockID); m == nil {
		t.Fatal("the input was not let go")
	}
	// Again, once finished: the same.
	j = job()
	if err := run(ctx, j); err != nil {
		t.Fatal(err)
	}
	if r := j.Result; r == nil || !r.Rewritten || r.Output != res.Meta.BlockID || r.Spans != res.SpansRemoved {
		t.Fatalf("retry after it finished: %+v", j.Result)
	}
	metas, err := block.ListBlocks(ctx, bkt, "t")
	if err != nil || len(metas) != 1 || metas[0].BlockID != res.Meta.BlockID {
		t.Fatalf("blocks listed: %v, %v; want the output alone", metas, err)
	}
	// Once the input's objects are deleted (compacted_block_retention
	// after it was let go), a retry of a job cut short before it
	// reported finds its output and reports it, not the block gone.
	for _, name := range []string{block.CompactedName, block.DataName, block.BloomName} {
		if err := bkt.Delete(ctx, "t/"+in.BlockID.String()+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	j = job()
	if err := run(ctx, j); err != nil {
		t.Fatal(err)
	}
	if r := j.Result; r == nil || r.Gone || !r.Rewritten || r.Output != res.Meta.BlockID || r.Spans != res.SpansRemoved || len(r.TraceIDs) != 1 {
		t.Fatalf("retry after the input was deleted: %+v, want the output %s reported with its spans", j.Result, res.Meta.BlockID)
	}
	// And once the output is let go in turn (another request rewrote
	// it), from the output's mark: not gone, and not written again.
	if err := block.MarkCompacted(ctx, bkt, res.Meta, time.Now()); err != nil {
		t.Fatal(err)
	}
	j = job()
	if err := run(ctx, j); err != nil {
		t.Fatal(err)
	}
	if r := j.Result; r == nil || r.Gone || !r.Rewritten || r.Output != res.Meta.BlockID || r.Spans != res.SpansRemoved {
		t.Fatalf("retry after the output was let go: %+v, want the output %s reported with its spans", j.Result, res.Meta.BlockID)
	}
	if metas, err := block.ListBlocks(ctx, bkt, "t"); err != nil || len(metas) != 0 {
		t.Fatalf("blocks listed after the retry: %v, %v; want none (the output was let go)", metas, err)
	}
	// A job of another request on the block let go: gone, not failed.
	j = job()
	j.Redact.Request = "r2"
	if err := run(ctx, j); err != nil || j.Result == nil || !j.Result.Gone {
		t.Fatalf("a job on a block let go by another: %+v, %v; want it reported gone", j.Result, err)
	}
}
