package blockbuilder

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// recordingCommitter stands for the Kafka consumer group: it keeps the
// last commit of each partition.
type recordingCommitter struct {
	mu      sync.Mutex
	commits map[int32]commit
	revoke  func([]int32)
}

type commit struct {
	offset     int64
	checkpoint string
}

func (c *recordingCommitter) Commit(p int32, off int64, cp string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits[p] = commit{off, cp}
	return nil
}
func (c *recordingCommitter) OnRevoke(fn func([]int32)) { c.revoke = fn }
func (c *recordingCommitter) Source() string            { return "kafka/test-topic" }

// record is one message of a partition as the Kafka subscriber delivers it.
func record(tenant string, partition int32, offset int64, checkpoint string, seed uint64) *message.Message {
	td := spangen.Generate(spangen.Options{Seed: seed, Traces: 10, SpansPerTrace: 3})
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	m.Metadata.Set(pipelines.MetaSourcePartition, strconv.Itoa(int(partition)))
	m.Metadata.Set(pipelines.MetaSourceOffset, strconv.FormatInt(offset, 10))
	m.Metadata.Set(pipelines.MetaSourceCheckpoint, checkpoint)
	return m
}

// In Kafka mode a partition is committed only past records in uploaded
// blocks, with the per-tenant checkpoint; reading the partition again from
// the commit skips what is in blocks and rebuilds the rest under the same
// block IDs, so no span is in two blocks.
func TestKafkaModeCommitsAfterUploadAndReplaysWithoutDuplicates(t *testing.T) {
	f := newFixture(t)
	c := &recordingCommitter{commits: map[int32]commit{}}
	b := New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.cfg, f.bkt, Hooks{})
	b.SetCommitter(c)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Partition 0: tenant a at offsets 0, 2, 3; tenant b at 1, 4, 5.
	tenantAt := func(off int64) string {
		if off == 0 || off == 2 || off == 3 {
			return "a"
		}
		return "b"
	}
	for off := int64(0); off < 6; off++ {
		if err := b.Consume(record(tenantAt(off), 0, off, "", uint64(off))); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.commits) != 0 {
		t.Fatalf("committed before any upload: %+v", c.commits)
	}
	// Upload tenant a's block only: the commit must stay at b's first
	// record (1), with a's checkpoint (3) so that a's records after 1 are
	// not written again.
	b.mu.Lock()
	b.cutLocked(bufKey("a", 0))
	b.mu.Unlock()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.commits) == 1 })
	got := c.commits[0]
	var cp map[string]int64
	if err := json.Unmarshal([]byte(got.checkpoint), &cp); err != nil {
		t.Fatal(err)
	}
	if got.offset != 1 || cp["a"] != 3 || len(cp) != 1 {
		t.Fatalf("commit %+v, want offset 1 and checkpoint a=3", got)
	}

	// Crash: b's buffer is lost. A new builder reads partition 0 again from
	// the committed offset with the committed checkpoint, as Kafka would.
	b2 := New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.cfg, f.bkt, Hooks{})
	c2 := &recordingCommitter{commits: map[int32]commit{}}
	b2.SetCommitter(c2)
	if err := b2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for off := got.offset; off < 6; off++ {
		if err := b2.Consume(record(tenantAt(off), 0, off, got.checkpoint, uint64(off))); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, b2)
	if c2.commits[0].offset != 6 {
		t.Fatalf("after everything is uploaded the commit is %+v, want offset 6", c2.commits[0])
	}
	counts, _ := blocktest.SpanCounts(t, f.bkt)
	if len(counts) != 6*10*3 {
		t.Fatalf("blocks hold %d spans, want %d", len(counts), 6*10*3)
	}
	for span, n := range counts {
		if n != 1 {
			t.Fatalf("span %s in %d blocks", span, n)
		}
	}
	metas, err := block.ListBlocks(context.Background(), f.bkt, "a")
	if err != nil || len(metas) != 1 || metas[0].BlockID != BlockID("kafka/test-topic", "a", 0, 0) {
		t.Fatalf("tenant a blocks: %v %v", metas, err)
	}

	// A revoked partition's buffers are dropped, the others kept.
	before := b.BufferedBytes()
	if err := b.Consume(record("a", 7, 0, "", 99)); err != nil {
		t.Fatal(err)
	}
	if b.BufferedBytes() <= before {
		t.Fatal("the record of partition 7 was not buffered")
	}
	c.revoke([]int32{7})
	if got := b.BufferedBytes(); got != before {
		t.Fatalf("%d bytes buffered after revoking partition 7, want %d", got, before)
	}
	stop(t, b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
