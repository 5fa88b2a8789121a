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
package blockbuilder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	log    *wal.WAL
	done   chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context // of uploads; cancelled when Shutdown gives up
	cancel context.CancelFunc

	m builderMetrics
}

type buffer struct {
	tenant      string
	buf         *block.Buffer
	first, last int64     // WAL offsets
	opened      time.Time // when its first span arrived
	bytes       int64
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
	}
	return b
}

// Start loads the checkpoint, replays the write-ahead log into buffers and
// starts the uploader.
func (b *Builder) Start(ctx context.Context) error {
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
		return b.addLocked(r.Tenant, r.Offset, &batch)
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
		for ten := range b.open {
			b.cutLocked(ten)
		}
		b.mu.Unlock()
	}
	b.m.walSegments.Set(float64(log.Segments()))
	b.wg.Add(2)
	go b.uploader()
	go b.ticker()
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
		err = b.addLocked(ten, off, &batch)
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

// addLocked buffers a batch read from WAL record off, and cuts the
// tenant's block when it is full.
func (b *Builder) addLocked(ten string, off int64, batch *otlpwire.Batch) error {
	buf := b.open[ten]
	if buf == nil {
		buf = &buffer{tenant: ten, buf: block.NewBuffer(nil), first: off, opened: b.clock()}
		b.open[ten] = buf
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
		b.cutLocked(ten)
	}
	return nil
}

func (b *Builder) cutLocked(ten string) {
	buf := b.open[ten]
	if buf == nil {
		return
	}
	delete(b.open, ten)
	b.pending = append(b.pending, buf)
	b.cond.Broadcast()
}

// ticker cuts the blocks that have been open for max_block_duration.
func (b *Builder) ticker() {
	defer b.wg.Done()
	every := min(b.cfg.MaxBlockDuration/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			now := b.clock()
			b.mu.Lock()
			for ten, buf := range b.open {
				if now.Sub(buf.opened) >= b.cfg.MaxBlockDuration {
					b.cutLocked(ten)
				}
			}
			b.mu.Unlock()
		}
	}
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
	id := BlockID(b.log.Epoch(), buf.tenant, 0, buf.first)
	meta, err := block.Write(b.ctx, b.bkt, buf.tenant, id,
		block.Source{Partition: 0, FirstOffset: buf.first, LastOffset: buf.last},
		buf.buf, block.WriteOptions{RowGroupBytes: b.cfg.RowGroupBytes})
	if err != nil {
		return err
	}
	b.m.flushSeconds.Observe(time.Since(start).Seconds())
	b.m.blocks.WithLabelValues(buf.tenant).Inc()
	b.m.spans.WithLabelValues(buf.tenant).Add(float64(meta.TotalSpans))

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

// safeLocked returns the lowest WAL offset still needed and the time before
// which everything accepted is in a block. The time keeps a margin of the
// back-pressure timeout: a push the live-store already holds may still be on
// its way to this sink, which takes it or refuses it within that time.
func (b *Builder) safeLocked() (int64, time.Time) {
	off, t := b.log.Next(), b.clock().Add(-b.cfg.BackPressureTimeout-time.Second)
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
	if b.log == nil {
		return nil // never started
	}
	b.mu.Lock()
	for ten := range b.open {
		b.cutLocked(ten)
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
	<-uploaded
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
