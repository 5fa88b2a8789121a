// Package generator is the metrics-generator sink: it derives Prometheus
// series from the span stream (span metrics, service graphs, host info, as
// Grafana Tempo's generator does, with its metric and label names) and sends
// them by remote write every registry.collection_interval.
//
// In monolithic mode it reads the distributor's output in process; in
// microservices mode it reads the distributor's Kafka topic with its own
// consumer group. Each collection is written to the tenant's durable queue
// (remotewrite) before the Kafka offsets it covers are committed, and the
// queue keeps with it the offsets it covers: after a crash the generator
// skips the records that a queued collection counted already, so a replay
// never counts a span twice. Counters restart at 0 after a restart, which
// Prometheus reads as a counter reset (each new series starts with a 0
// sample).
package generator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/remotewrite"
	"github.com/weftdb/weft/sinks/generator/spanview"
)

// Type is the kind of the node in pipeline files.
const Type = "metrics_generator"

// Limits gives a tenant's overrides. The limits For returns are never
// modified: a change comes as another pointer, as overrides.Overrides does
// it (the generator rebuilds a tenant's settings only when the pointer
// changes).
type Limits interface {
	For(tenant string) *overrides.Limits
}

// Generator is the metrics_generator sink node.
type Generator struct {
	cfg    Config
	limits Limits
	logger *slog.Logger
	reg    prometheus.Registerer
	m      *metrics
	clock  func() time.Time

	// collect excludes Consume while a collection reads the registries
	// and the offsets they cover, so the two agree.
	collect sync.RWMutex

	mu      sync.Mutex
	tenants map[string]*tenant
	retired []*tenant // replaced or turned off, closed by the next collection
	// consumed is, per input partition (Kafka mode), the offset after the
	// last record read; skip is, per tenant, the offsets its last queued
	// collection covers (read back at start): records below are counted.
	consumed map[int32]int64
	skip     map[string]map[int32]int64

	exemplars bool // an endpoint has send_exemplars

	committer pipelines.Committer
	storage   *remotewrite.Storage
	batches   sync.Pool

	loop *periodic.Loop // the collections, every registry.collection_interval
}

// New returns a generator; Start opens its storage.
func New(set pipelines.Settings, cfg Config, limits Limits) *Generator {
	exemplars := false
	for _, e := range cfg.Storage.RemoteWrite {
		exemplars = exemplars || e.SendExemplars
	}
	return &Generator{
		exemplars: exemplars,
		cfg:       cfg, limits: limits, logger: set.Logger, reg: set.Metrics, m: newMetrics(set.Metrics),
		clock:   time.Now,
		tenants: map[string]*tenant{}, consumed: map[int32]int64{}, skip: map[string]map[int32]int64{},
		batches: sync.Pool{New: func() any { return new(spanview.Batch) }},
	}
}

// SetCommitter puts the generator in Kafka mode (pipelines.CommittingSink):
// offsets are committed once a collection covering them is queued.
func (g *Generator) SetCommitter(c pipelines.Committer) {
	g.committer = c
	c.OnRevoke(g.revoke)
}

// Start opens the remote-write storage, reads back what the queued
// collections covered, and starts the collection loop.
func (g *Generator) Start(ctx context.Context) error {
	st, err := remotewrite.Open(g.cfg.Storage, g.reg, g.logger)
	if err != nil {
		return fmt.Errorf("cannot open the metrics-generator storage: %w", err)
	}
	g.storage = st
	for _, ten := range st.Tenants() {
		q, err := st.Queue(ten)
		if err != nil {
			_ = st.Close(ctx) // releases its lock; the error above says what failed
			g.storage = nil
			return fmt.Errorf("cannot open the remote-write queue of tenant %s: %w", ten, err)
		}
		if cp := q.LastCheckpoint(); len(cp) > 0 {
			var offs map[int32]int64
			if err := json.Unmarshal(cp, &offs); err != nil {
				g.logger.Warn("cannot read the offsets of the last queued collection; records may be counted again", "tenant", ten, "err", err)
				continue
			}
			g.skip[ten] = offs
		}
	}
	if len(g.cfg.Storage.RemoteWrite) == 0 {
		g.logger.Info("metrics-generator has no metrics_generator.storage.remote_write endpoint: the tenants' series are derived and not sent")
	}
	g.loop = periodic.Start(g.cfg.Registry.CollectionInterval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Registry.CollectionInterval)
		defer cancel()
		_ = g.collectOnce(ctx) // counted and logged inside
	})
	return nil
}

// Consume counts the spans of one message. Spans the tenant's processors
// cannot read are dropped and counted; they never fail the message (a
// redelivery would not read them better).
func (g *Generator) Consume(msg *message.Message) error {
	ten := msg.Metadata.Get(pipelines.MetaTenant)
	lim := g.limits.For(ten)
	part, off, kafka := int32(0), int64(0), false
	if g.committer != nil {
		p, err1 := strconv.ParseInt(msg.Metadata.Get(pipelines.MetaSourcePartition), 10, 32)
		o, err2 := strconv.ParseInt(msg.Metadata.Get(pipelines.MetaSourceOffset), 10, 64)
		if err1 != nil || err2 != nil {
			return errors.New("cannot generate metrics: a record from Kafka has no partition or offset")
		}
		part, off, kafka = int32(p), o, true
	}
	g.collect.RLock()
	defer g.collect.RUnlock()
	if kafka {
		defer g.markConsumed(part, off)
		if g.counted(ten, part, off) {
			g.m.skipped.Inc()
			return nil
		}
	}
	if len(lim.MetricsGenerator.Processors) == 0 {
		g.dropTenant(ten)
		return nil
	}
	t, err := g.tenant(ten, lim)
	if err != nil {
		g.m.discarded.WithLabelValues(ten, reasonConfig).Inc()
		return nil
	}
	b := g.batches.Get().(*spanview.Batch)
	defer g.batches.Put(b)
	if err := b.Parse(msg.Payload); err != nil {
		g.m.discarded.WithLabelValues(ten, reasonInvalid).Inc()
		return nil
	}
	if n := g.dropOutsideSlack(b); n > 0 {
		g.m.spansDiscarded.WithLabelValues(ten, reasonSlack).Add(float64(n))
	}
	if len(b.Spans) == 0 {
		return nil
	}
	t.push(b)
	g.m.spans.WithLabelValues(ten).Add(float64(len(b.Spans)))
	return nil
}

// counted says whether a queued collection of ten already counted the
// record at off of partition.
func (g *Generator) counted(ten string, partition int32, off int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.skip[ten][partition]
	return ok && off < s
}

func (g *Generator) markConsumed(partition int32, off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.consumed[partition] = max(g.consumed[partition], off+1)
}

// dropOutsideSlack removes from b the spans that ended more than the slack
// before or after now, and returns how many.
func (g *Generator) dropOutsideSlack(b *spanview.Batch) int {
	slack := g.cfg.MetricsIngestionTimeRangeSlack
	if slack <= 0 {
		return 0
	}
	now := g.clock()
	lo, hi := uint64(now.Add(-slack).UnixNano()), uint64(now.Add(slack).UnixNano())
	n := len(b.Spans)
	b.Spans = slices.DeleteFunc(b.Spans, func(s spanview.Span) bool { return s.End < lo || s.End > hi })
	return n - len(b.Spans)
}

// tenant returns ten's processors, built again when its settings changed.
func (g *Generator) tenant(ten string, lim *overrides.Limits) (*tenant, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tenants[ten]
	if t != nil && t.lim == lim {
		return t, nil // the same limits as the last message's
	}
	key, cfg := tenantSettings(g.cfg, lim)
	if t != nil && t.key == key {
		t.lim = lim
		t.reg.SetMaxActiveSeries(lim.MetricsGenerator.MaxActiveSeries)
		t.disabled, t.headers = lim.MetricsGenerator.DisableCollection, lim.MetricsGenerator.RemoteWriteHeaders
		return t, nil
	}
	if t != nil {
		// Closed by the next collection, which waits for the pushes that
		// may still use it.
		g.retired = append(g.retired, t)
	}
	t, err := newTenant(ten, key, cfg, g.cfg.Registry, g.reg)
	if err != nil {
		delete(g.tenants, ten)
		return nil, err
	}
	t.lim = lim
	t.reg.SetMaxActiveSeries(lim.MetricsGenerator.MaxActiveSeries)
	t.disabled, t.headers = lim.MetricsGenerator.DisableCollection, lim.MetricsGenerator.RemoteWriteHeaders
	g.tenants[ten] = t
	g.m.tenants.Set(float64(len(g.tenants)))
	return t, nil
}

// dropTenant forgets a tenant whose processors were all turned off.
func (g *Generator) dropTenant(ten string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.tenants[ten]; t != nil {
		g.retired = append(g.retired, t)
		delete(g.tenants, ten)
		g.m.tenants.Set(float64(len(g.tenants)))
	}
}

// collectOnce collects every tenant's series, queues them, and commits the
// offsets they cover once all are queued.
func (g *Generator) collectOnce(ctx context.Context) error {
	start := g.clock()
	g.collect.Lock()
	g.mu.Lock()
	offsets := maps.Clone(g.consumed)
	tenants := slices.Collect(maps.Values(g.tenants))
	retired := g.retired
	g.retired = nil
	g.mu.Unlock()
	for _, t := range retired {
		t.close()
	}
	type out struct {
		ten     string
		headers map[string]string
		series  []prompb.TimeSeries
	}
	var outs []out
	for _, t := range tenants {
		series := t.collect(start, registry.CollectOptions{Exemplars: g.exemplars})
		if !t.disabled && len(series) > 0 {
			outs = append(outs, out{t.name, t.headers, series})
		}
	}
	g.collect.Unlock()

	// Each tenant's checkpoint: the offsets this collection covers, over
	// those of its earlier checkpoint for the partitions not read since
	// the start (a crash between a queued collection and its commit
	// leaves them to skip).
	checkpoints := map[string]map[int32]int64{}
	if g.committer != nil {
		g.mu.Lock()
		for _, o := range outs {
			cp := maps.Clone(g.skip[o.ten])
			if cp == nil {
				cp = map[int32]int64{}
			}
			for p, off := range offsets {
				cp[p] = max(cp[p], off)
			}
			checkpoints[o.ten] = cp
		}
		g.mu.Unlock()
	}
	var errs []error
	for _, o := range outs {
		var cp []byte
		if g.committer != nil {
			cp, _ = json.Marshal(checkpoints[o.ten]) // a map of numbers always encodes
		}
		q, err := g.storage.Queue(o.ten)
		if err == nil {
			err = q.SetHeaders(o.headers)
		}
		if err == nil {
			err = q.Enqueue(ctx, o.series, cp)
		}
		if err != nil {
			g.m.collections.WithLabelValues(o.ten, "failed").Inc()
			errs = append(errs, fmt.Errorf("tenant %s: %w", o.ten, err))
			continue
		}
		g.m.collections.WithLabelValues(o.ten, "queued").Inc()
		g.m.samples.WithLabelValues(o.ten).Add(float64(len(o.series)))
	}
	if len(errs) > 0 {
		// Not committed: a crash now replays the records, counted again
		// only for the tenants whose collection was not queued.
		err := fmt.Errorf("cannot queue the collected series: %w", errors.Join(errs...))
		g.logger.Warn("metrics-generator collection not queued; it is retried at the next one", "err", err)
		return err
	}
	if g.committer != nil {
		g.mu.Lock()
		for _, o := range outs {
			g.skip[o.ten] = checkpoints[o.ten] // its queued checkpoint now
		}
		g.mu.Unlock()
		for p, off := range offsets {
			if err := g.committer.Commit(p, off, ""); err != nil {
				g.m.commitFailures.Inc()
			}
		}
	}
	g.m.collectSeconds.Observe(g.clock().Sub(start).Seconds())
	return nil
}

// revoke runs a collection before partitions go to another process, so
// that it replays as little as possible of what this one counted.
func (g *Generator) revoke(partitions []int32) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.collectOnce(ctx) // counted and logged inside
	g.mu.Lock()
	for _, p := range partitions {
		delete(g.consumed, p)
	}
	g.mu.Unlock()
}

// Shutdown stops the collection loop, runs a last collection, and closes
// the storage, which sends what it can within ctx.
func (g *Generator) Shutdown(ctx context.Context) error {
	if g.storage == nil {
		return nil // not started
	}
	if err := g.loop.Stop(ctx); err != nil {
		return fmt.Errorf("cannot stop the metrics-generator's collections: %w", err)
	}
	// The processors first (the service graphs' waiting halves become
	// edges or unpaired counts), then the last collection.
	g.collect.Lock()
	g.mu.Lock()
	for _, t := range g.tenants {
		t.shutdownProcessors()
	}
	g.mu.Unlock()
	g.collect.Unlock()
	err := g.collectOnce(ctx)
	g.mu.Lock()
	for _, t := range g.tenants {
		t.reg.Close()
	}
	for _, t := range g.retired {
		t.close()
	}
	g.tenants, g.retired = map[string]*tenant{}, nil
	g.mu.Unlock()
	// The queues send what they can within remote_write_flush_deadline
	// (and the shutdown's own deadline); the rest is sent after the next
	// start.
	fctx, cancel := context.WithTimeout(ctx, g.cfg.Storage.FlushDeadline)
	defer cancel()
	if cerr := g.storage.Close(fctx); cerr != nil {
		// What is left is on disk, sent after the next start: not a
		// failed shutdown.
		g.logger.Warn("metrics-generator stopped with series not yet sent", "err", cerr)
	}
	return err
}
