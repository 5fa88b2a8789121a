// Package blocklist keeps the list of blocks in object storage, per tenant:
// it polls the bucket so a process sees blocks that other processes wrote,
// takes blocks this process wrote as soon as they are uploaded, and keeps an
// open reader per block for the query side.
package blocklist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/periodic"
)

// Entry is one block: its meta and, once asked for, its reader.
type Entry struct {
	Meta *block.Meta

	mu     sync.Mutex
	reader *block.Reader
}

// Reader opens the block on first use and keeps it open.
func (e *Entry) Reader(ctx context.Context, bkt objstore.BucketReader) (*block.Reader, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reader != nil {
		return e.reader, nil
	}
	r, err := block.Open(ctx, bkt, e.Meta)
	if err != nil {
		return nil, err
	}
	e.reader = r
	return r, nil
}

func (e *Entry) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reader != nil {
		_ = e.reader.Close()
		e.reader = nil
	}
}

// List is the block list of a bucket.
type List struct {
	bkt      objstore.BucketReader
	interval time.Duration
	logger   *slog.Logger

	mu      sync.RWMutex
	tenants map[string]map[uuid.UUID]*Entry

	poller *periodic.Loop // nil until Start

	blocks   *prometheus.GaugeVec
	pollErrs prometheus.Counter
	pollTime prometheus.Histogram
}

// New returns a list of the blocks in bkt, polled every interval once
// started.
func New(bkt objstore.BucketReader, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) *List {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &List{
		bkt: bkt, interval: interval, logger: logger,
		tenants: map[string]map[uuid.UUID]*Entry{},
		blocks: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_blocklist_blocks", Help: "Blocks known in object storage, by tenant.",
		}, []string{"tenant"})),
		pollErrs: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_blocklist_poll_failures_total", Help: "Polls of the block list that failed.",
		})),
		pollTime: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_blocklist_poll_duration_seconds", Help: "Time to poll the block list of every tenant.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		})),
	}
}

// Start polls once, then every interval until Stop. A failing first poll
// (object storage down) is logged, not fatal: the next polls catch up.
func (l *List) Start(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	if err := l.Poll(pctx); err != nil {
		l.logger.Warn("cannot read the block list; blocks written before this start are not queryable until a poll succeeds", "err", err)
	}
	cancel()
	l.poller = periodic.Start(l.interval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), max(l.interval, time.Minute))
		defer cancel()
		if err := l.Poll(ctx); err != nil {
			l.logger.Warn("cannot poll the block list", "err", err)
		}
	})
	return nil
}

// Stop ends the polling and closes the readers.
func (l *List) Stop() {
	_ = l.poller.Stop(context.Background())
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, blocks := range l.tenants {
		for _, e := range blocks {
			e.close()
		}
	}
}

// Add puts a block this process has just written into the list, replacing
// an entry with the same ID (a replayed block).
func (l *List) Add(meta *block.Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(meta.TenantID)
	if old := blocks[meta.BlockID]; old != nil {
		old.close()
	}
	blocks[meta.BlockID] = &Entry{Meta: meta}
	l.blocks.WithLabelValues(meta.TenantID).Set(float64(len(blocks)))
}

// Poll lists every tenant's blocks, reads the meta of blocks it does not
// know yet and forgets blocks that are gone. Block metas are immutable
// except when a replay rewrites a block, which the writing process reports
// through Add.
func (l *List) Poll(ctx context.Context) error {
	start := time.Now()
	defer func() { l.pollTime.Observe(time.Since(start).Seconds()) }()
	tenants, err := block.ListTenants(ctx, l.bkt)
	if err != nil {
		l.pollErrs.Inc()
		return err
	}
	var errs []error
	listed := map[string]bool{}
	for _, ten := range tenants {
		listed[ten] = true
		if err := l.pollTenant(ctx, ten); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	for ten, blocks := range l.tenants {
		if !listed[ten] { // every block of the tenant is gone
			for _, e := range blocks {
				e.close()
			}
			delete(l.tenants, ten)
			l.blocks.DeleteLabelValues(ten)
		}
	}
	l.mu.Unlock()
	if len(errs) > 0 {
		l.pollErrs.Inc()
	}
	return errors.Join(errs...)
}

func (l *List) pollTenant(ctx context.Context, ten string) error {
	var ids []uuid.UUID
	err := l.bkt.Iter(ctx, ten+"/", func(name string) error {
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(name, ten+"/"), "/"))
		if err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot list the blocks of tenant %q: %w", ten, err)
	}
	l.mu.RLock()
	known := l.tenants[ten]
	var missing []uuid.UUID
	for _, id := range ids {
		if _, ok := known[id]; !ok {
			missing = append(missing, id)
		}
	}
	l.mu.RUnlock()

	found := map[uuid.UUID]*block.Meta{}
	for _, id := range missing {
		meta, err := block.ReadMeta(ctx, l.bkt, ten, id)
		if err != nil {
			if isNotFound(l.bkt, err) {
				continue // not complete yet: meta.json comes last
			}
			return fmt.Errorf("cannot read the meta of block %s/%s: %w", ten, id, err)
		}
		found[id] = meta
	}
	present := map[uuid.UUID]bool{}
	for _, id := range ids {
		present[id] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(ten)
	for id, e := range blocks {
		if !present[id] {
			e.close()
			delete(blocks, id)
		}
	}
	for id, meta := range found {
		if _, ok := blocks[id]; !ok {
			blocks[id] = &Entry{Meta: meta}
		}
	}
	l.blocks.WithLabelValues(ten).Set(float64(len(blocks)))
	return nil
}

// isNotFound unwraps err fully looking for the bucket's not-found error.
func isNotFound(bkt objstore.BucketReader, err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if bkt.IsObjNotFoundErr(e) {
			return true
		}
	}
	return false
}

// Blocks returns the tenant's blocks whose time range overlaps [start, end]
// (a zero time is unbounded), newest first.
func (l *List) Blocks(tenant string, start, end time.Time) []*Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []*Entry
	for _, e := range l.tenants[tenant] {
		if !start.IsZero() && e.Meta.EndTime.Before(start) {
			continue
		}
		if !end.IsZero() && e.Meta.StartTime.After(end) {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.EndTime.After(out[j].Meta.EndTime) })
	return out
}

// Get returns the tenant's block id, or nil when the list does not hold it.
func (l *List) Get(tenant string, id uuid.UUID) *Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.tenants[tenant][id]
}

// Fetch returns the tenant's block id like Get; a block the list does not
// hold yet is looked up in the bucket (its meta.json) and added. So a querier
// can run a job that a query-frontend planned from a newer list than its own:
// each process polls on its own schedule. It returns nil, nil when the block
// is not in the bucket either (not complete yet, or deleted).
func (l *List) Fetch(ctx context.Context, tenant string, id uuid.UUID) (*Entry, error) {
	if e := l.Get(tenant, id); e != nil {
		return e, nil
	}
	meta, err := block.ReadMeta(ctx, l.bkt, tenant, id)
	if err != nil {
		if isNotFound(l.bkt, err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read the meta of block %s/%s: %w", tenant, id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(tenant)
	if e := blocks[id]; e != nil { // added meanwhile
		return e, nil
	}
	e := &Entry{Meta: meta}
	blocks[id] = e
	l.blocks.WithLabelValues(tenant).Set(float64(len(blocks)))
	return e, nil
}

// Count is the number of blocks of a tenant.
func (l *List) Count(tenant string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tenants[tenant])
}

// blocksLocked returns the blocks of tenant, creating its empty set on first
// use. l.mu must be held for writing.
func (l *List) blocksLocked(tenant string) map[uuid.UUID]*Entry {
	blocks := l.tenants[tenant]
	if blocks == nil {
		blocks = map[uuid.UUID]*Entry{}
		l.tenants[tenant] = blocks
	}
	return blocks
}
