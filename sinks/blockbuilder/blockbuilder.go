// Package blockbuilder is the sink that turns spans into blocks in object
// storage. It buffers each tenant's spans in Arrow, cuts a block at
// max_block_bytes or max_block_duration and uploads it.
//
// Everything it has accepted and not yet uploaded is in a local write-ahead
// log first (fsynced before the push is acknowledged), and the log is
// replayed on start, so an acknowledged push survives a crash. Block IDs are
// derived from the tenant and the log offset of the block's first record,
// and a checkpoint records, per tenant, the last offset already in a block:
// a replay skips what is uploaded and rebuilds the rest under the same IDs,
// replacing a block that was uploaded but not checkpointed instead of
// duplicating it.
//
// When its input comes from another process (microservices mode, over
// Kafka), the Kafka partition is the log instead: there is no WAL, a block
// holds one tenant's spans of one partition, its ID derives from the
// topic, the message ID (a random UUID the distributor gives every record)
// and a hash of the content of its first record, the tenant, the partition and the offset of that
// record, and the
// partition's offset is committed only once every record before it is in
// an uploaded block, with the per-tenant checkpoint stored beside it. After
// a crash or a rebalance the partition is read again from the committed
// offset, records already in blocks are skipped, and so are the records of
// a block that was uploaded but not committed: a record that would start a
// block whose ID is stored already with the same start is the start of
// that block, whose records are skipped up to its last (a block being
// rebuilt after its upload was cut short has no whole meta.json yet and is
// rebuilt under the same ID, replacing it). A
// recreated topic (a dev broker restarted, a topic deleted and created
// again) starts its offsets again, but its records have other message IDs and content,
// so its blocks get other IDs.
//
// A block is never written over a stored block of other spans (see
// block.Write): should an ID come back for other records anyway, the block
// is written under an ID derived from it and its origin, counted in
// weft_block_builder_block_id_collisions_total.
package blockbuilder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/internal/wal"
	"github.com/weftdb/weft/pipelines"
)

// Type is the node kind.
const Type = "block_builder"

// checkpointName is the file, in the WAL directory, holding per tenant the
// last WAL offset that is in an uploaded block.
const checkpointName = "flushed.json"

// blockNamespace makes block IDs UUIDv5s of (source, tenant, partition,
// first offset).
var blockNamespace = uuid.MustParse("6f1c1d1e-7a43-4b0e-9c55-2f3b8f5e0a11")

// BlockID is the ID of the block that starts at a tenant's record at offset
// of partition in the log named source (the WAL's epoch): the same inputs
// always give the same block, and a new log never reuses an old log's IDs.
func BlockID(source, tenant string, partition int32, firstOffset int64) uuid.UUID {
	return uuid.NewSHA1(blockNamespace, []byte(source+"/"+tenant+"/"+strconv.Itoa(int(partition))+"/"+strconv.FormatInt(firstOffset, 10)))
}

// Hooks let the rest of the process learn about uploads.
type Hooks struct {
	// OnBlock is called after a block is uploaded, with its meta.
	OnBlock func(*block.Meta)
	// OnSafe is called after an upload with a time before which every span
	// accepted by this sink is in a block.
	OnSafe func(time.Time)
}

// Builder is the block-builder sink.
type Builder struct {
	cfg    Config
	bkt    objstore.Bucket
	hooks  Hooks
	logger *slog.Logger
	clock  func() time.Time

	mu       sync.Mutex
	cond     *sync.Cond // signalled when pending changes or on stop
	open     map[string]*buffer
	pending  []*buffer // cut, waiting for upload, oldest first
	flushing *buffer   // being uploaded
	flushed  map[string]int64
	bytes    int64 // open + pending + flushing
	stopping bool

	log *wal.WAL
	// committer is set in Kafka mode (SetCommitter): the input's
	// partitions are the log.
	committer pipelines.Committer
	kparts    map[int32]*kafkaPartition
	started   bool
	done      chan struct{}
	wg        sync.WaitGroup  // the uploader
	cutter    *periodic.Loop  // cuts blocks open for max_block_duration; nil until Start
	ctx       context.Context // of uploads; cancelled when Shutdown gives up
	cancel    context.CancelFunc

	m builderMetrics
}

type buffer struct {
	tenant      string
	partition   int32 // Kafka mode; 0 with the WAL
	buf         *block.Buffer
	first, last int64     // WAL offsets, or the partition's in Kafka mode
	opened      time.Time // when its first span arrived
	bytes       int64
	// origin names the log of its records and, in Kafka mode, its first
	// record (block.Source.Origin); empty with the WAL, whose epoch is it.
	origin string
	// kp is, in Kafka mode, the partition's state when the block was
	// opened: once the partition is revoked (and maybe assigned again, or
	// its topic recreated) the block no longer moves its checkpoint.
	kp *kafkaPartition
}

type builderMetrics struct {
	blocks       *prometheus.CounterVec
	spans        *prometheus.CounterVec
	failures     prometheus.Counter
	flushSeconds prometheus.Histogram
	buffered     prometheus.Gauge
	backPressure prometheus.Counter
	discarded    *prometheus.CounterVec
	walSegments  prometheus.Gauge
	collisions   prometheus.Counter
	skipped      prometheus.Counter
}

// New returns a block-builder writing to bkt. Nothing runs until Start.
func New(set pipelines.Settings, cfg Config, bkt objstore.Bucket, hooks Hooks) *Builder {
	b := &Builder{
		cfg:     cfg,
		bkt:     bkt,
		hooks:   hooks,
		logger:  set.Logger,
		clock:   time.Now,
		open:    map[string]*buffer{},
		flushed: map[string]int64{},
		done:    make(chan struct{}),
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	b.cond = sync.NewCond(&b.mu)
	b.m = builderMetrics{
		blocks: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_block_builder_blocks_flushed_total", Help: "Blocks uploaded to object storage, by tenant.",
		}, []string{"tenant"})),
		spans: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_block_builder_spans_flushed_total", Help: "Spans uploaded in blocks, by tenant.",
		}, []string{"tenant"})),
		failures: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_flush_failures_total", Help: "Block uploads that failed and will be retried.",
		})),
		flushSeconds: metrics.Register(set.Metrics, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_block_builder_flush_duration_seconds", Help: "Time to write and upload one block.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		})),
		buffered: metrics.Register(set.Metrics, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_block_builder_buffered_bytes", Help: "Memory of spans accepted and not yet uploaded.",
		})),
		backPressure: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_back_pressure_seconds_total", Help: "Time pushes waited because uploads were behind.",
		})),
		discarded: metrics.DiscardedSpans(set.Metrics),
		walSegments: metrics.Register(set.Metrics, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_block_builder_wal_segments", Help: "Segment files in the block-builder's write-ahead log.",
		})),
		skipped: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_blocks_found_stored_total",
			Help: "Blocks found already stored when their records were read again from Kafka (after a crash or a rebalance, before the commit); their records were skipped.",
		})),
		collisions: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_block_id_collisions_total",
			Help: "Blocks whose ID was already used by a stored block of other spans; they were written under another ID, the stored block kept.",
		})),
	}
	return b
}

// kafkaPartition is what the builder knows of one input partition in
// Kafka mode.
type kafkaPartition struct {
	loaded   bool             // flushed was read from the committed checkpoint
	flushed  map[string]int64 // per tenant, the last offset in an uploaded block
	consumed int64            // the last offset taken, -1 for none
}

// SetCommitter puts the builder in Kafka mode (pipelines.CommittingSink).
func (b *Builder) SetCommitter(c pipelines.Committer) {
	b.committer = c
	b.kparts = map[int32]*kafkaPartition{}
	c.OnRevoke(b.revoke)
}

// bufKey is the key of a tenant's open buffer for a partition.
func bufKey(ten string, partition int32) string {
	return ten + "\x00" + strconv.Itoa(int(partition))
}

// Start loads the checkpoint, replays the write-ahead log into buffers and
// starts the uploader. In Kafka mode there is no WAL: it starts the
// uploader only.
func (b *Builder) Start(ctx context.Context) error {
	b.started = true
	if b.committer != nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
		b.wg.Add(1)
		go b.uploader()
		b.startCutter()
		return nil
	}
	if err := b.loadCheckpoint(); err != nil {
		return err
	}
	replayed := 0
	log, err := wal.Open(b.cfg.WAL.Path, b.cfg.WAL.SegmentBytes, func(r wal.Record) error {
		if last, ok := b.flushed[r.Tenant]; ok && r.Offset <= last {
			return nil // already in a block
		}
		var batch otlpwire.Batch
		if err := batch.Scan(r.Data); err != nil {
			return fmt.Errorf("cannot replay WAL record %d: %w", r.Offset, err)
		}
		replayed++
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.addLocked(r.Tenant, 0, r.Offset, &batch)
	})
	if err != nil {
		return fmt.Errorf("cannot open the block-builder WAL: %w", err)
	}
	b.log = log
	if cut := log.Truncated(); cut > 0 {
		b.logger.Warn("cut the end of the block-builder WAL: it did not hold whole records (a write cut short by a crash, never acknowledged, or damage)", "bytes", cut)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if replayed > 0 {
		b.logger.Info("replayed the block-builder WAL", "records", replayed, "buffered_bytes", b.bytes)
		// Replayed spans are in no store that answers queries: upload them now.
		b.mu.Lock()
		for key := range b.open {
			b.cutLocked(key)
		}
		b.mu.Unlock()
	}
	b.m.walSegments.Set(float64(log.Segments()))
	b.wg.Add(1)
	go b.uploader()
	b.startCutter()
	return nil
}

// Consume makes one message durable in the WAL and buffers its spans.
func (b *Builder) Consume(msg *message.Message) error {
	ten := msg.Metadata.Get(pipelines.MetaTenant)
	if ten == "" {
		return status.Error(codes.InvalidArgument, "cannot build blocks: message has no tenant (is the block-builder reading from a distributor?)")
	}
	var batch otlpwire.Batch
	if err := batch.Scan(msg.Payload); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if batch.SpanCount() == 0 {
		return nil
	}
	if b.committer != nil {
		return b.consumeKafka(msg, ten, &batch)
	}
	partition, _ := strconv.Atoi(msg.Metadata.Get(pipelines.MetaPartition))

	b.mu.Lock()
	if err := b.waitForRoomLocked(msg.Context()); err != nil {
		b.mu.Unlock()
		b.m.discarded.WithLabelValues(ten, metrics.ReasonBuilderBehind).Add(float64(batch.SpanCount()))
		return err
	}
	// WAL order = buffer order: write under the lock, sync outside it.
	off, err := b.log.Write(ten, int32(partition), msg.Payload)
	if err == nil {
		err = b.addLocked(ten, 0, off, &batch)
	}
	b.mu.Unlock()
	if err != nil {
		return status.Errorf(codes.Unavailable, "cannot keep spans for a block: %v", err)
	}
	if err := b.log.Sync(off); err != nil {
		return status.Errorf(codes.Unavailable, "cannot make spans durable: %v", err)
	}
	return nil
}

// waitForRoomLocked waits while the buffered bytes are at the limit.
func (b *Builder) waitForRoomLocked(ctx context.Context) error {
	if b.stopping {
		return status.Error(codes.Unavailable, "block-builder is stopping")
	}
	if b.bytes < b.cfg.MaxBufferedBytes {
		return nil
	}
	start := time.Now()
	defer func() { b.m.backPressure.Add(time.Since(start).Seconds()) }()
	deadline := start.Add(b.cfg.BackPressureTimeout)
	timer := time.AfterFunc(b.cfg.BackPressureTimeout, func() { b.mu.Lock(); b.cond.Broadcast(); b.mu.Unlock() })
	defer timer.Stop()
	stopWatch := context.AfterFunc(ctx, func() { b.mu.Lock(); b.cond.Broadcast(); b.mu.Unlock() })
	defer stopWatch()
	for b.bytes >= b.cfg.MaxBufferedBytes && !b.stopping {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return status.Errorf(codes.Unavailable,
				"block-builder is behind: %d bytes wait for upload and the limit is %d (block_builder.max_buffered_bytes); retry later",
				b.bytes, b.cfg.MaxBufferedBytes)
		}
		b.cond.Wait()
	}
	if b.stopping {
		return status.Error(codes.Unavailable, "block-builder is stopping")
	}
	return nil
}

// consumeKafka buffers one record of an input partition (Kafka mode). A
// record already in a block (at or below the tenant's checkpoint) is
// skipped; nothing is committed here.
func (b *Builder) consumeKafka(msg *message.Message, ten string, batch *otlpwire.Batch) error {
	partition, err1 := strconv.ParseInt(msg.Metadata.Get(pipelines.MetaSourcePartition), 10, 32)
	off, err2 := strconv.ParseInt(msg.Metadata.Get(pipelines.MetaSourceOffset), 10, 64)
	if err1 != nil || err2 != nil {
		return status.Error(codes.Internal, "cannot build blocks: a record from Kafka has no partition or offset")
	}
	p := int32(partition)
	b.mu.Lock()
	defer b.mu.Unlock()
	kp := b.kparts[p]
	if kp == nil {
		kp = &kafkaPartition{consumed: -1}
		b.kparts[p] = kp
	}
	if !kp.loaded {
		kp.flushed = map[string]int64{}
		if cp := msg.Metadata.Get(pipelines.MetaSourceCheckpoint); cp != "" {
			if err := json.Unmarshal([]byte(cp), &kp.flushed); err != nil {
				b.logger.Warn("cannot read the checkpoint committed with a partition; records may be written to blocks again", "partition", p, "err", err)
			}
		}
		kp.loaded = true
	}
	kp.consumed = max(kp.consumed, off)
	if last, ok := kp.flushed[ten]; ok && off <= last {
		return nil // already in a block
	}
	if err := b.waitForRoomLocked(msg.Context()); err != nil {
		b.m.discarded.WithLabelValues(ten, metrics.ReasonBuilderBehind).Add(float64(batch.SpanCount()))
		return err
	}
	if key := bufKey(ten, p); b.open[key] == nil {
		// A block starts here, unless one starting at this very record is
		// stored already (uploaded before a crash or a rebalance, and not
		// committed): then the records it holds are skipped, so that a
		// replay keeps the blocks as they were cut, whatever it would cut.
		origin := recordOrigin(b.committer.Source(), msg)
		b.mu.Unlock()
		src, err := block.StoredSource(msg.Context(), b.bkt, ten, BlockID(origin, ten, p, off))
		b.mu.Lock()
		if err != nil {
			return status.Errorf(codes.Unavailable, "cannot check the blocks already stored: %v", err)
		}
		if b.kparts[p] != kp {
			return status.Error(codes.Unavailable, "cannot build blocks: the partition was revoked")
		}
		if src != nil && src.Origin == origin && src.Partition == p && src.FirstOffset == off {
			kp.flushed[ten] = max(kp.flushed[ten], src.LastOffset)
			b.m.skipped.Inc()
			return nil
		}
		if b.open[key] == nil {
			b.open[key] = &buffer{tenant: ten, partition: p, buf: block.NewBuffer(nil), first: off, opened: b.clock(),
				origin: origin, kp: kp}
		}
	}
	if err := b.addLocked(ten, p, off, batch); err != nil {
		return status.Errorf(codes.Unavailable, "cannot keep spans for a block: %v", err)
	}
	return nil
}

// recordOrigin is the origin of a block whose first record is msg, read
// from the log named source: the message ID and a hash of the content of
// the record, which a recreated topic cannot repeat and a replay of the
// partition does.
func recordOrigin(source string, msg *message.Message) string {
	h := fnv.New64a()
	h.Write(msg.Payload)
	return fmt.Sprintf("%s/%s/%016x", source, msg.UUID, h.Sum64())
}

// revoke drops what the builder holds of partitions another process now
// reads: it reads them again from their committed offset (Kafka mode).
func (b *Builder) revoke(partitions []int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gone := map[int32]bool{}
	for _, p := range partitions {
		gone[p] = true
		delete(b.kparts, p)
	}
	drop := func(buf *buffer) {
		b.bytes -= buf.bytes
		buf.buf.Release()
	}
	for key, buf := range b.open {
		if gone[buf.partition] {
			delete(b.open, key)
			drop(buf)
		}
	}
	kept := b.pending[:0]
	for _, buf := range b.pending {
		if gone[buf.partition] {
			drop(buf)
			continue
		}
		kept = append(kept, buf)
	}
	b.pending = kept
	b.m.buffered.Set(float64(b.bytes))
	b.cond.Broadcast()
}

// addLocked buffers a batch read from WAL record off (or from offset off
// of a Kafka partition), and cuts the block when it is full.
func (b *Builder) addLocked(ten string, partition int32, off int64, batch *otlpwire.Batch) error {
	key := bufKey(ten, partition)
	buf := b.open[key]
	if buf == nil {
		buf = &buffer{tenant: ten, partition: partition, buf: block.NewBuffer(nil), first: off, opened: b.clock()}
		b.open[key] = buf
	}
	if err := buf.buf.Add(batch); err != nil {
		return err
	}
	buf.last = off
	n := buf.buf.Bytes()
	b.bytes += n - buf.bytes
	buf.bytes = n
	b.m.buffered.Set(float64(b.bytes))
	if n >= b.cfg.MaxBlockBytes {
		b.cutLocked(key)
	}
	return nil
}

func (b *Builder) cutLocked(key string) {
	buf := b.open[key]
	if buf == nil {
		return
	}
	delete(b.open, key)
	b.pending = append(b.pending, buf)
	b.cond.Broadcast()
}

// startCutter begins cutting, several times per max_block_duration, the
// blocks that have been open that long.
func (b *Builder) startCutter() {
	b.cutter = periodic.Start(min(b.cfg.MaxBlockDuration/4, time.Second), func() {
		now := b.clock()
		b.mu.Lock()
		defer b.mu.Unlock()
		for key, buf := range b.open {
			if now.Sub(buf.opened) >= b.cfg.MaxBlockDuration {
				b.cutLocked(key)
			}
		}
	})
}

// uploader uploads cut blocks one at a time, oldest first, retrying each
// until it succeeds or the builder stops.
func (b *Builder) uploader() {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		b.flushing = nil
		b.cond.Broadcast()
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		for len(b.pending) == 0 && !b.stopping {
			b.cond.Wait()
		}
		if len(b.pending) == 0 { // stopping and drained
			b.mu.Unlock()
			return
		}
		buf := b.pending[0]
		b.pending = b.pending[1:]
		b.flushing = buf
		b.mu.Unlock()

		for attempt := 0; ; attempt++ {
			err := b.upload(buf)
			if err == nil {
				break
			}
			b.m.failures.Inc()
			b.logger.Warn("cannot upload a block; retrying", "tenant", buf.tenant, "attempt", attempt+1, "err", err)
			select {
			case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
			case <-b.done:
				// Stopping with a failing store: the spans stay in the WAL
				// and are uploaded after the restart.
				b.mu.Lock()
				b.pending = nil
				b.mu.Unlock()
				return
			}
		}
	}
}

func (b *Builder) upload(buf *buffer) error {
	start := time.Now()
	origin := buf.origin
	if b.committer == nil {
		origin = b.log.Epoch()
	}
	meta, err := b.write(BlockID(origin, buf.tenant, buf.partition, buf.first), buf,
		block.Source{Origin: origin, Partition: buf.partition, FirstOffset: buf.first, LastOffset: buf.last})
	if err != nil {
		return err
	}
	b.m.flushSeconds.Observe(time.Since(start).Seconds())
	b.m.blocks.WithLabelValues(buf.tenant).Inc()
	b.m.spans.WithLabelValues(buf.tenant).Add(float64(meta.TotalSpans))
	if b.committer != nil {
		b.uploadedKafka(buf, meta)
		return nil
	}

	b.mu.Lock()
	b.flushed[buf.tenant] = buf.last
	b.flushing = nil
	b.bytes -= buf.bytes
	b.m.buffered.Set(float64(b.bytes))
	safeOffset, safeTime := b.safeLocked()
	if err := b.saveCheckpointLocked(); err != nil {
		// The block is uploaded: without the checkpoint a replay rewrites it
		// under the same ID, which is safe. Keep the WAL segments for that.
		b.logger.Warn("cannot save the block-builder checkpoint; a restart will rewrite the block", "err", err)
		b.m.failures.Inc()
		safeOffset = -1
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	buf.buf.Release()
	if safeOffset >= 0 {
		if err := b.log.Release(safeOffset); err != nil {
			b.logger.Warn("cannot delete uploaded WAL segments", "err", err)
		}
	}
	b.m.walSegments.Set(float64(b.log.Segments()))
	if b.hooks.OnBlock != nil {
		b.hooks.OnBlock(meta)
	}
	if b.hooks.OnSafe != nil {
		b.hooks.OnSafe(safeTime)
	}
	return nil
}

// maxIDTries bounds the IDs tried for one block when IDs are taken.
const maxIDTries = 4

// write writes buf as block id, or, when a stored block of other spans
// has that ID, under an ID derived from id and src: never over it. The
// derived ID is the same on every try, so a rebuild of the block after a
// crash replaces its own earlier upload.
func (b *Builder) write(id uuid.UUID, buf *buffer, src block.Source) (*block.Meta, error) {
	for try := 1; ; try++ {
		meta, err := block.Write(b.ctx, b.bkt, buf.tenant, id, src, buf.buf, block.WriteOptions{RowGroupBytes: b.cfg.RowGroupBytes})
		if !errors.Is(err, block.ErrIDTaken) {
			return meta, err
		}
		b.m.collisions.Inc()
		if try == maxIDTries {
			return nil, fmt.Errorf("cannot find a free block ID after %d tries: %w", try, err)
		}
		next := uuid.NewSHA1(id, []byte(fmt.Sprintf("%s/%d/%d", src.Origin, src.Partition, src.FirstOffset)))
		b.logger.Error("block ID already used by a stored block of other spans; keeping that block and writing this one under another ID",
			"tenant", buf.tenant, "block", id, "new_block", next, "source", src.String(), "err", err)
		id = next
	}
}

// uploadedKafka records an uploaded block of a Kafka partition and
// commits the partition as far as every earlier record is in a block, with
// the per-tenant checkpoint of the records beyond.
func (b *Builder) uploadedKafka(buf *buffer, meta *block.Meta) {
	b.mu.Lock()
	b.flushing = nil
	b.bytes -= buf.bytes
	b.m.buffered.Set(float64(b.bytes))
	kp := b.kparts[buf.partition]
	if kp != buf.kp {
		// Revoked since the block was opened: whoever reads the partition
		// now reads it from the committed offset and rebuilds the block
		// under the same ID; its offsets may even be of a topic that has
		// been recreated since.
		kp = nil
	}
	var commit int64 = -1
	var checkpoint []byte
	if kp != nil {
		kp.flushed[buf.tenant] = max(kp.flushed[buf.tenant], buf.last)
		commit = kp.consumed + 1
		consider := func(o *buffer) {
			if o != nil && o.partition == buf.partition {
				commit = min(commit, o.first)
			}
		}
		for _, o := range b.open {
			consider(o)
		}
		for _, o := range b.pending {
			consider(o)
		}
		// Keep only the tenants whose checkpoint is past the commit: the
		// others' records before it are not read again.
		keep := map[string]int64{}
		for ten, last := range kp.flushed {
			if last >= commit {
				keep[ten] = last
			}
		}
		kp.flushed = keep
		checkpoint, _ = json.Marshal(keep)
	}
	_, safeTime := b.safeLocked()
	b.cond.Broadcast()
	b.mu.Unlock()
	buf.buf.Release()
	if commit >= 0 {
		if err := b.committer.Commit(buf.partition, commit, string(checkpoint)); err != nil {
			// Revoked meanwhile: its new reader rebuilds the block under
			// the same ID.
			b.logger.Debug("cannot commit a partition after its block", "partition", buf.partition, "err", err)
		}
	}
	if b.hooks.OnBlock != nil {
		b.hooks.OnBlock(meta)
	}
	if b.hooks.OnSafe != nil {
		b.hooks.OnSafe(safeTime)
	}
}

// safeLocked returns the lowest WAL offset still needed and the time before
// which everything accepted is in a block. The time keeps a margin of the
// back-pressure timeout: a push the live-store already holds may still be on
// its way to this sink, which takes it or refuses it within that time.
func (b *Builder) safeLocked() (int64, time.Time) {
	off, t := int64(0), b.clock().Add(-b.cfg.BackPressureTimeout-time.Second)
	if b.log != nil {
		off = b.log.Next()
	}
	consider := func(buf *buffer) {
		if buf != nil {
			off = min(off, buf.first)
			if buf.opened.Before(t) {
				t = buf.opened
			}
		}
	}
	for _, buf := range b.open {
		consider(buf)
	}
	for _, buf := range b.pending {
		consider(buf)
	}
	consider(b.flushing)
	return off, t
}

func (b *Builder) loadCheckpoint() error {
	data, err := os.ReadFile(filepath.Join(b.cfg.WAL.Path, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the block-builder checkpoint: %w", err)
	}
	if err := json.Unmarshal(data, &b.flushed); err != nil {
		return fmt.Errorf("cannot read the block-builder checkpoint %s: %w", checkpointName, err)
	}
	return nil
}

// saveCheckpointLocked writes the checkpoint atomically (temp file, fsync,
// rename).
func (b *Builder) saveCheckpointLocked() error {
	data, err := json.Marshal(b.flushed)
	if err != nil {
		return fmt.Errorf("cannot encode the block-builder checkpoint: %w", err)
	}
	path := filepath.Join(b.cfg.WAL.Path, checkpointName)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("cannot write the block-builder checkpoint: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write the block-builder checkpoint: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("cannot write the block-builder checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the block-builder checkpoint: %w", err)
	}
	return nil
}

// Shutdown cuts every open block and waits, within ctx, for the uploads.
// What is not uploaded by then stays in the WAL for the next start.
func (b *Builder) Shutdown(ctx context.Context) error {
	if !b.started {
		return nil
	}
	b.mu.Lock()
	for key := range b.open {
		b.cutLocked(key)
	}
	b.stopping = true
	b.cond.Broadcast()
	b.mu.Unlock()

	uploaded := make(chan struct{})
	go func() { b.wg.Wait(); close(uploaded) }()
	var err error
	select {
	case <-ctx.Done():
		err = fmt.Errorf("cannot upload every block before the shutdown deadline; the rest is in the WAL: %w", ctx.Err())
		b.cancel()
	case <-waitUploaderIdle(b):
	}
	close(b.done)
	b.cancel()
	_ = b.cutter.Stop(context.Background())
	<-uploaded
	if b.log == nil {
		return err
	}
	return errors.Join(err, b.log.Close())
}

// waitUploaderIdle returns a channel closed once nothing is pending or
// being uploaded.
func waitUploaderIdle(b *Builder) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		b.mu.Lock()
		for len(b.pending) > 0 || b.flushing != nil {
			b.cond.Wait()
		}
		b.mu.Unlock()
		close(ch)
	}()
	return ch
}

// BufferedBytes is the memory held by spans not yet uploaded.
func (b *Builder) BufferedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}
