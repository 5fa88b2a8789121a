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
	"sync/atomic"
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
	// walFrom is the oldest WAL offset still needed when the checkpoint
	// was last saved (-1: not known); segments before it may be gone.
	walFrom  int64
	bytes    int64 // open + pending + flushing
	stopping bool
	// reserved is what the records written to the WAL and not yet
	// buffered (Consume, between Write and addInOrder) will take in the
	// buffers: counted against max_buffered_bytes with bytes, so that
	// pushes waiting for their fsync or for the records before them cannot
	// take the buffers past it. perByte estimates it: the buffer bytes a
	// record takes per byte of its payload, grown over payload bytes
	// buffered lately (grew, sized).
	reserved    int64
	perByte     float64
	grew, sized float64
	// checkpointStuck is set while the uploader retries saving the
	// checkpoint after an upload.
	checkpointStuck bool

	log     *wal.WAL
	nextAdd int64              // the offset addInOrder buffers next
	waiting map[int64]*inOrder // durable records waiting for the ones before
	// walFailing is set from a failed WAL write until one succeeds; logWAL
	// is the WAL for the metrics, set once Start opened it.
	walFailing atomic.Bool
	logWAL     atomic.Pointer[wal.WAL]
	// checkpointErr is set while the checkpoint cannot be saved.
	checkpointErr atomic.Pointer[error]
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

	checkpointFailures prometheus.Counter
	recordsLost        prometheus.Counter
	collisions         prometheus.Counter
	skipped            prometheus.Counter
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
		walFrom: -1,
		waiting: map[int64]*inOrder{},
		perByte: initialPerByte,
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
		recordsLost: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_wal_records_lost_total",
			Help: "WAL records found damaged or missing on start (each also logged): acknowledged pushes not in a block may be among them.",
		})),
		checkpointFailures: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_builder_checkpoint_failures_total",
			Help: "Saves of the block-builder's checkpoint (flushed.json) that failed; uploads wait until it is saved.",
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
	metrics.Register(set.Metrics, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "weft_block_builder_wal_write_failures_total",
		Help: "Writes or fsyncs of the block-builder's write-ahead log that failed (a full disk, an I/O error); the pushes they held were refused.",
	}, func() float64 {
		if log := b.logWAL.Load(); log != nil {
			return float64(log.Failures())
		}
		return 0
	}))
	metrics.Register(set.Metrics, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_block_builder_wal_failing",
		Help: "1 while the block-builder's write-ahead log cannot be written (pushes are refused), else 0.",
	}, func() float64 {
		if log := b.logWAL.Load(); log != nil && log.Failing() != nil {
			return 1
		}
		return 0
	}))
	node := set.Name
	if node == "" {
		node = Type
	}
	set.Readiness.Add(node+" WAL", func() error {
		if log := b.logWAL.Load(); log != nil {
			if err := log.Failing(); err != nil {
				return fmt.Errorf("cannot write the WAL in %s (block_builder.wal.path), pushes are refused: %w", cfg.WAL.Path, err)
			}
		}
		return nil
	})
	set.Readiness.Add(node+" checkpoint", func() error {
		if err := b.checkpointErr.Load(); err != nil {
			return fmt.Errorf("cannot save the checkpoint %s, uploads wait for it: %w", filepath.Join(cfg.WAL.Path, checkpointName), *err)
		}
		return nil
	})
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

// MemoryBound is what the builder holds in memory in steady state
// (pipelines.MemoryBounded): an open block per tenant and one being
// uploaded, 2 × max_block_bytes. max_buffered_bytes bounds it further
// when uploads fall behind.
func (b *Builder) MemoryBound() int64 { return 2 * b.cfg.MaxBlockBytes }

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
	if err := b.loadCheckpoint(ctx); err != nil {
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
	if err := b.checkLoss(log); err != nil {
		_ = log.Close()
		return err
	}
	b.nextAdd = log.Next()
	b.logWAL.Store(log)
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
	// WAL order = buffer order: write under the lock, sync outside it,
	// then buffer in offset order (addInOrder). Only durable records are
	// buffered, so a block never holds spans of a refused push.
	t, err := b.log.Write(ten, int32(partition), msg.Payload)
	rec := reservation{size: int64(len(msg.Payload))}
	if err == nil {
		rec.need = int64(float64(rec.size) * b.perByte)
		b.reserved += rec.need
	}
	b.mu.Unlock()
	if err == nil {
		if err = b.log.Sync(t); err != nil {
			b.unreserve(rec.need)
		}
	}
	if err != nil {
		b.walFailed(err)
		b.m.discarded.WithLabelValues(ten, reasonWALFailed).Add(float64(batch.SpanCount()))
		return status.Errorf(codes.Unavailable, "cannot make spans durable in the block-builder WAL (block_builder.wal.path %s): %v; retry later", b.cfg.WAL.Path, err)
	}
	if b.walFailing.Load() {
		b.walRecovered()
	}
	if err := b.addInOrder(t.Offset, ten, &batch, rec); err != nil {
		return status.Errorf(codes.Unavailable, "cannot keep spans for a block: %v", err)
	}
	return nil
}

// initialPerByte is the buffer bytes a record is assumed to take per byte
// of its payload before any was measured: Arrow builders at their
// capacity take two to three times the OTLP encoding.
const initialPerByte = 3

// reservation is the room reserved for a record in flight: need bytes in
// reserved, for a payload of size bytes.
type reservation struct{ need, size int64 }

// unreserve gives back the room reserved for a record that will not be
// buffered.
func (b *Builder) unreserve(n int64) {
	b.mu.Lock()
	b.reserved -= n
	b.cond.Broadcast()
	b.mu.Unlock()
}

// reasonWALFailed is the discarded-spans reason of pushes refused because
// the WAL could not be written.
const reasonWALFailed = "wal_write_failed"

// inOrder is a durable record waiting for the records before it to be
// buffered (addInOrder).
type inOrder struct {
	tenant string
	batch  *otlpwire.Batch // nil for a record that holds no spans (a probe)
	res    reservation     // its room in reserved
	err    error
	done   chan struct{}
}

// addInOrder buffers the durable record at off once every record before
// it is buffered: records become durable in groups and their writers get
// here in any order, while a block must hold a run of offsets. res is the
// room reserved for it, given back as it is buffered.
func (b *Builder) addInOrder(off int64, ten string, batch *otlpwire.Batch, res reservation) error {
	b.mu.Lock()
	if off != b.nextAdd {
		it := &inOrder{tenant: ten, batch: batch, res: res, done: make(chan struct{})}
		b.waiting[off] = it
		b.mu.Unlock()
		<-it.done // the writer of a record before off is on its way
		return it.err
	}
	var err error
	if batch != nil {
		err = b.addReservedLocked(ten, off, batch, res)
	}
	b.nextAdd++
	for {
		it := b.waiting[b.nextAdd]
		if it == nil {
			break
		}
		delete(b.waiting, b.nextAdd)
		if it.batch != nil {
			it.err = b.addReservedLocked(it.tenant, b.nextAdd, it.batch, it.res)
		}
		close(it.done)
		b.nextAdd++
	}
	b.mu.Unlock()
	return err
}

// addReservedLocked buffers a durable record in place of its reservation,
// and learns from it what a payload byte takes in the buffers.
func (b *Builder) addReservedLocked(ten string, off int64, batch *otlpwire.Batch, res reservation) error {
	b.reserved -= res.need
	before := b.bytes
	err := b.addLocked(ten, 0, off, batch)
	if grew := b.bytes - before; err == nil && res.size > 0 && grew >= 0 {
		// A buffer grows by steps (an Arrow buffer doubles its capacity):
		// the ratio of the sums, not an average of ratios.
		b.grew += float64(grew)
		b.sized += float64(res.size)
		if b.sized >= minPerByteSample {
			b.perByte = min(max(b.grew/b.sized, 1), 8)
		}
		if b.sized >= 2*maxPerByteSample {
			b.grew, b.sized = b.grew/2, b.sized/2
		}
	}
	return err
}

// minPerByteSample and maxPerByteSample bound the payload bytes perByte
// is measured over: initialPerByte is used until minPerByteSample are
// buffered, and older records weigh less past maxPerByteSample.
const (
	minPerByteSample = 1 << 20
	maxPerByteSample = 64 << 20
)

// walFailed notes a failed WAL write: the first of a run is logged.
func (b *Builder) walFailed(err error) {
	if b.walFailing.CompareAndSwap(false, true) {
		b.logger.Error("cannot write the block-builder WAL: pushes are refused with 503 and /ready fails until writes succeed again", "path", b.cfg.WAL.Path, "err", err)
	}
}

func (b *Builder) walRecovered() {
	if b.log.Failing() == nil && b.walFailing.CompareAndSwap(true, false) {
		b.logger.Info("the block-builder WAL takes writes again: pushes are accepted", "path", b.cfg.WAL.Path, "write_failures", b.log.Failures())
	}
}

// probeWAL tries a write while the WAL fails, so that it recovers (and
// /ready says so) without waiting for a push.
func (b *Builder) probeWAL() {
	log := b.log
	if log == nil || log.Failing() == nil {
		return
	}
	off, err := log.Probe()
	if err != nil {
		b.walFailed(err)
		return
	}
	_ = b.addInOrder(off, "", nil, reservation{})
	b.walRecovered()
}

// waitForRoomLocked waits while the buffered bytes are at the limit.
func (b *Builder) waitForRoomLocked(ctx context.Context) error {
	if b.stopping {
		return status.Error(codes.Unavailable, "block-builder is stopping")
	}
	if b.bytes+b.reserved < b.cfg.MaxBufferedBytes {
		return nil
	}
	start := time.Now()
	defer func() { b.m.backPressure.Add(time.Since(start).Seconds()) }()
	deadline := start.Add(b.cfg.BackPressureTimeout)
	timer := time.AfterFunc(b.cfg.BackPressureTimeout, func() { b.mu.Lock(); b.cond.Broadcast(); b.mu.Unlock() })
	defer timer.Stop()
	stopWatch := context.AfterFunc(ctx, func() { b.mu.Lock(); b.cond.Broadcast(); b.mu.Unlock() })
	defer stopWatch()
	for b.bytes+b.reserved >= b.cfg.MaxBufferedBytes && !b.stopping {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return status.Errorf(codes.Unavailable,
				"block-builder is behind: %d bytes wait for upload and the limit is %d (block_builder.max_buffered_bytes); retry later",
				b.bytes+b.reserved, b.cfg.MaxBufferedBytes)
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
		b.probeWAL()
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
			if errors.Is(err, errStopped) {
				// Stopping with the checkpoint not saved: no further upload,
				// the rest is in the WAL for the next start.
				b.mu.Lock()
				b.pending = nil
				b.mu.Unlock()
				return
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
	b.bytes -= buf.bytes
	b.m.buffered.Set(float64(b.bytes))
	b.flushing = nil
	b.walFrom, _ = b.safeLocked() // segments before it go once it is saved
	b.flushing = buf              // until the checkpoint is saved
	err = b.saveCheckpointLocked()
	b.mu.Unlock()
	buf.buf.Release()
	if err != nil && !b.retryCheckpoint(buf, err) {
		return errStopped // the block is uploaded, a restart rewrites it
	}
	b.mu.Lock()
	b.flushing = nil
	safeOffset := b.walFrom
	_, safeTime := b.safeLocked()
	b.cond.Broadcast()
	b.mu.Unlock()
	if err := b.log.Release(safeOffset); err != nil {
		b.logger.Warn("cannot delete uploaded WAL segments", "err", err)
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

// errStopped ends the uploader: it stopped while the checkpoint could not
// be saved.
var errStopped = errors.New("block-builder stopped with its checkpoint not saved")

// retryCheckpoint saves the checkpoint again, with backoff, until it
// succeeds (true) or the builder stops (false). No other block is uploaded
// meanwhile: with at most one uploaded block per tenant past the saved
// checkpoint, a replay starts that tenant's records at the block's first
// record and rebuilds the block under the same ID, replacing it; a second
// one past the checkpoint would be rebuilt with other bounds, under
// another ID, and its spans stored twice.
func (b *Builder) retryCheckpoint(buf *buffer, err error) bool {
	setErr := func(err error) { b.checkpointErr.Store(&err) } // a copy: readiness reads it
	setErr(err)
	b.mu.Lock()
	b.checkpointStuck = true // Shutdown need not wait for the uploads
	b.cond.Broadcast()
	b.mu.Unlock()
	defer func() {
		b.checkpointErr.Store(nil)
		b.mu.Lock()
		b.checkpointStuck = false
		b.mu.Unlock()
	}()
	b.logger.Error("cannot save the block-builder checkpoint; no block is uploaded until it is saved (a restart meanwhile rewrites the last block under the same ID)",
		"path", filepath.Join(b.cfg.WAL.Path, checkpointName), "tenant", buf.tenant, "err", err)
	for attempt := 1; ; attempt++ {
		b.m.checkpointFailures.Inc()
		select {
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second)):
		case <-b.done:
			return false
		}
		b.mu.Lock()
		err = b.saveCheckpointLocked()
		b.mu.Unlock()
		if err == nil {
			b.logger.Info("saved the block-builder checkpoint again; uploads go on", "attempts", attempt+1)
			return true
		}
		setErr(err)
	}
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
		// Not log.Next(): records at nextAdd and after may be written
		// and not yet in a buffer (addInOrder).
		off = b.nextAdd
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

// checkpoint is the content of flushed.json.
type checkpoint struct {
	// Tenants holds per tenant the last WAL offset in an uploaded block.
	Tenants map[string]int64 `json:"tenants"`
	// WALFrom is the oldest WAL offset still needed: the log may have
	// deleted the segments before it, and no others.
	WALFrom int64 `json:"wal_from"`
}

// parseCheckpoint reads flushed.json, in its current form or the first one
// (a bare map of tenants to offsets, with no wal_from: -1).
func parseCheckpoint(data []byte) (map[string]int64, int64, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, 0, err
	}
	if t, ok := raw["tenants"]; ok && len(t) > 0 && t[0] == '{' {
		var cp checkpoint
		if err := json.Unmarshal(data, &cp); err != nil {
			return nil, 0, err
		}
		if cp.Tenants == nil {
			cp.Tenants = map[string]int64{}
		}
		return cp.Tenants, cp.WALFrom, nil
	}
	flushed := map[string]int64{}
	if err := json.Unmarshal(data, &flushed); err != nil {
		return nil, 0, err
	}
	return flushed, -1, nil
}

// loadCheckpoint reads flushed.json. One that cannot be read (empty or cut
// short by a crash on a file system that does not keep renames ordered) is
// rebuilt from the metas of the blocks of this WAL in the bucket, which
// say which WAL offsets each holds.
func (b *Builder) loadCheckpoint(ctx context.Context) error {
	path := filepath.Join(b.cfg.WAL.Path, checkpointName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the block-builder checkpoint: %w", err)
	}
	flushed, walFrom, perr := parseCheckpoint(data)
	if perr == nil {
		b.flushed, b.walFrom = flushed, walFrom
		return nil
	}
	epoch, err := wal.ReadEpoch(b.cfg.WAL.Path)
	if err != nil {
		return fmt.Errorf("cannot rebuild the unreadable block-builder checkpoint %s (%v): %w", path, perr, err)
	}
	blocks, err := b.rebuildCheckpoint(ctx, epoch)
	if err != nil {
		return fmt.Errorf("cannot rebuild the unreadable block-builder checkpoint %s (%v) from the bucket: %w; retry once the bucket answers", path, perr, err)
	}
	b.logger.Error("the block-builder checkpoint was unreadable; rebuilt it from the blocks of this WAL in the bucket, nothing is lost",
		"path", path, "err", perr, "blocks", blocks, "tenants", len(b.flushed))
	return nil
}

// rebuildCheckpoint sets flushed from the blocks the builder uploaded from
// the WAL of epoch, and returns how many there are.
func (b *Builder) rebuildCheckpoint(ctx context.Context, epoch string) (int, error) {
	if epoch == "" {
		return 0, nil // no WAL yet: no block of it
	}
	tenants, err := block.ListTenants(ctx, b.bkt)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ten := range tenants {
		metas, err := block.ListBlocks(ctx, b.bkt, ten)
		if err != nil {
			return 0, err
		}
		// A block compacted into another since is let go, its meta kept in
		// its mark for compacted_block_retention: its records are in a
		// block all the same.
		gone, err := block.ListLetGo(ctx, b.bkt, ten)
		if err != nil {
			return 0, err
		}
		for _, m := range append(metas, gone...) {
			src := m.Source
			if src.Partition != 0 || BlockID(epoch, ten, 0, src.FirstOffset) != m.BlockID {
				continue // not a block of this WAL
			}
			n++
			if last, ok := b.flushed[ten]; !ok || src.LastOffset > last {
				b.flushed[ten] = src.LastOffset
			}
		}
	}
	return n, nil
}

// checkLoss reports what the WAL lost (damage, missing segments, a lost
// end) and makes sure new records do not take offsets already in blocks.
// Weft goes on with every intact record.
func (b *Builder) checkLoss(log *wal.WAL) error {
	const goOn = "weft goes on with every intact record; if a copy of the lost segment exists, stop weft and put it back before its neighbours are uploaded and deleted"
	for _, d := range log.Damage() {
		n := d.Records
		if n < 0 {
			n = d.Intact
		}
		b.m.recordsLost.Add(float64(n))
		b.logger.Error(d.String()+"; acknowledged spans not yet in a block are among them", "path", b.cfg.WAL.Path, "next", goOn)
	}
	if first := log.First(); b.walFrom >= 0 && first > b.walFrom {
		b.m.recordsLost.Add(float64(first - b.walFrom))
		b.logger.Error(fmt.Sprintf("the oldest WAL segments are missing: records at offsets %d to %d are lost (the checkpoint needs them from %d on; were segments deleted?); acknowledged spans not yet in a block are among them", b.walFrom, first-1, b.walFrom),
			"path", b.cfg.WAL.Path, "next", goOn)
	}
	// Offsets up to the checkpoint name blocks: a log that lost its end
	// must not give them again (the records would be skipped by the next
	// replay, and their blocks would replace others).
	skip := b.walFrom
	for _, last := range b.flushed {
		skip = max(skip, last+1)
	}
	if next := log.Next(); skip > next {
		b.m.recordsLost.Add(float64(skip - next))
		b.logger.Error(fmt.Sprintf("the newest WAL records are missing: the checkpoint has offsets up to %d in blocks but the WAL ends at %d (was its last segment deleted?); records after the last block are lost, their number is not known; new records start at offset %d", skip-1, next, skip),
			"path", b.cfg.WAL.Path, "next", goOn)
		if err := log.SkipTo(skip); err != nil {
			return fmt.Errorf("cannot move the WAL past the offsets already in blocks: %w", err)
		}
	}
	return nil
}

// saveCheckpointLocked writes the checkpoint atomically (temp file, fsync,
// rename).
func (b *Builder) saveCheckpointLocked() error {
	data, err := json.Marshal(checkpoint{Tenants: b.flushed, WALFrom: b.walFrom})
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
	b.mu.Lock()
	if b.checkpointStuck {
		b.logger.Warn("stopping with the block-builder checkpoint not saved: what is not in a block is in the WAL, and the next start rewrites the last uploaded block under the same ID", "blocks_left", len(b.pending))
	}
	b.mu.Unlock()
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
		for (len(b.pending) > 0 || b.flushing != nil) && !b.checkpointStuck {
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
