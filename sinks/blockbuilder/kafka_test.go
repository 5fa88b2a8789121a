package blockbuilder

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
	"github.com/weftdb/weft/internal/otlpwire"
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
// Its message ID derives from its place and spans, so that reading it again
// gives the same message, as Kafka does.
func record(tenant string, partition int32, offset int64, checkpoint string, seed uint64) *message.Message {
	return recordWithID(fmt.Sprintf("rec-%d-%d-%d", partition, offset, seed), tenant, partition, offset, checkpoint, seed)
}

// recordWithID is record with the message ID id.
func recordWithID(id, tenant string, partition int32, offset int64, checkpoint string, seed uint64) *message.Message {
	td := spangen.Generate(spangen.Options{Seed: seed, Traces: 10, SpansPerTrace: 3})
	m := message.NewMessage(id, spangen.Marshal(td))
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
	if err != nil || len(metas) != 1 || metas[0].BlockID != BlockID(metas[0].Source.Origin, "a", 0, 0) || !strings.HasPrefix(metas[0].Source.Origin, "kafka/test-topic/rec-0-0-0/") {
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

// kafkaBuilder starts a block-builder in Kafka mode reading "test-topic".
func kafkaBuilder(t *testing.T, f *fixture) *Builder {
	t.Helper()
	b := New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.cfg, f.bkt, Hooks{})
	b.SetCommitter(&recordingCommitter{commits: map[int32]commit{}})
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// spansOnce checks that the blocks hold want spans, each once.
func spansOnce(t *testing.T, f *fixture, want int) {
	t.Helper()
	counts, _ := blocktest.SpanCounts(t, f.bkt)
	for span, n := range counts {
		if n != 1 {
			t.Fatalf("span %s in %d blocks", span, n)
		}
	}
	if len(counts) != want {
		t.Fatalf("blocks hold %d spans, want %d", len(counts), want)
	}
}

// A recreated topic (a dev broker restarted, a topic deleted and created
// again) starts its offsets again: its blocks must not take the IDs of the
// blocks of the old topic, which would replace them.
func TestKafkaModeKeepsBlocksWhenTopicRecreated(t *testing.T) {
	f := newFixture(t)
	b := kafkaBuilder(t, f)
	for off := int64(0); off < 4; off++ {
		if err := b.Consume(record("a", 0, off, "", uint64(off))); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, b)
	before, err := block.ListBlocks(context.Background(), f.bkt, "a")
	if err != nil || len(before) != 1 {
		t.Fatalf("blocks of the first topic: %v, %v", before, err)
	}

	// The topic again, from offset 0, with other records.
	b = kafkaBuilder(t, f)
	for off := int64(0); off < 4; off++ {
		if err := b.Consume(record("a", 0, off, "", 100+uint64(off))); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, b)
	spansOnce(t, f, 2*4*10*3)
	after, err := block.ListBlocks(context.Background(), f.bkt, "a")
	if err != nil || len(after) != 2 {
		t.Fatalf("blocks after the topic was recreated: %v, %v", after, err)
	}
	if got, err := block.ReadMeta(context.Background(), f.bkt, "a", before[0].BlockID); err != nil || !got.CreatedAt.Equal(before[0].CreatedAt) {
		t.Fatalf("the block of the first topic changed: %+v, %v", got, err)
	}
	if testutil.ToFloat64(b.m.collisions) != 0 {
		t.Fatal("a collision was counted: the recreated topic's blocks should have IDs of their own")
	}
}

// Should a block ID come back for other spans anyway, the stored block is
// kept and the new one written under another ID, counted; rebuilding that
// block after a crash replaces its own upload and duplicates nothing.
func TestKafkaModeNeverReplacesABlockOfOtherSpans(t *testing.T) {
	f := newFixture(t)
	rec := func() *message.Message { return record("a", 0, 0, "", 2) }
	// A block of other spans already holds the ID the record's block gets.
	id := BlockID(recordOrigin("kafka/test-topic", rec()), "a", 0, 0)
	other := block.NewBuffer(nil)
	var batch otlpwire.Batch
	if err := batch.Scan(spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 10, SpansPerTrace: 3}))); err != nil {
		t.Fatal(err)
	}
	if err := other.Add(&batch); err != nil {
		t.Fatal(err)
	}
	stored, err := block.Write(context.Background(), f.bkt, "a", id, block.Source{Origin: "kafka/old-topic/x/0"}, other, block.WriteOptions{})
	other.Release()
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // the colliding block, then its rebuild after a crash
		b := kafkaBuilder(t, f)
		if err := b.Consume(rec()); err != nil {
			t.Fatal(err)
		}
		stop(t, b)
		if n := testutil.ToFloat64(b.m.collisions); n != 1 {
			t.Fatalf("pass %d: %v collisions counted, want 1", i, n)
		}
		spansOnce(t, f, 2*10*3)
		if got, err := block.ReadMeta(context.Background(), f.bkt, "a", id); err != nil || !got.CreatedAt.Equal(stored.CreatedAt) {
			t.Fatalf("pass %d: the stored block changed: %+v, %v", i, got, err)
		}
	}
}

// Records read again after a crash, before their commit, may be cut into
// blocks differently (blocks are cut by time too): the blocks already
// stored are recognised by their first record and their records skipped,
// so that no span ends up in two blocks.
func TestKafkaModeReplayKeepsStoredBlocksCutElsewhere(t *testing.T) {
	f := newFixture(t)
	b := kafkaBuilder(t, f)
	for off := int64(0); off < 6; off++ {
		if err := b.Consume(record("a", 0, off, "", uint64(off))); err != nil {
			t.Fatal(err)
		}
		if off == 2 { // a time cut: blocks [0..2] and [3..5]
			b.mu.Lock()
			b.cutLocked(bufKey("a", 0))
			b.mu.Unlock()
		}
	}
	stop(t, b)
	spansOnce(t, f, 6*10*3)

	// A crash before any commit: everything is read again, and this time
	// nothing would cut [0..5] apart.
	b = kafkaBuilder(t, f)
	for off := int64(0); off < 6; off++ {
		if err := b.Consume(record("a", 0, off, "", uint64(off))); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, b)
	spansOnce(t, f, 6*10*3)
	if n := testutil.ToFloat64(b.m.skipped); n != 2 {
		t.Fatalf("weft_block_builder_blocks_found_stored_total = %v, want 2", n)
	}
}
