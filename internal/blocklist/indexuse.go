package blocklist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/metrics"
)

// indexClockSlack is how much the clock of the index's writer may be
// ahead of ours: a block this process added less than this before the
// index's created_at, and missing from it, is kept (the writer's listing
// may have begun before the upload).
const indexClockSlack = 5 * time.Second

// indexUse says how a List uses tenant indexes.
type indexUse struct {
	read       bool          // poll a tenant from its index when it can be used
	fallback   bool          // list a tenant whose index cannot be used
	staleAfter time.Duration // an index older is not used

	writer objstore.Bucket // set: list every tenant and write its index
	allow  func() bool     // whether the writer may write now
}

type indexMetrics struct {
	reads, writes, writeFails, errs *prometheus.CounterVec
	fallbacks                       *prometheus.CounterVec
	age                             *prometheus.GaugeVec
}

func newIndexMetrics(reg prometheus.Registerer) indexMetrics {
	ten := []string{"tenant"}
	return indexMetrics{
		reads: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_blocklist_tenant_index_reads_total", Help: "Polls of a tenant's blocks served by its index (index.json.gz), without listing, by tenant.",
		}, ten)),
		fallbacks: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_blocklist_tenant_index_fallbacks_total",
			Help: "Polls of a tenant's blocks that listed the tenant because its index could not be used, by tenant and reason (missing, invalid, stale, error).",
		}, []string{"tenant", "reason"})),
		errs: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempodb_blocklist_tenant_index_errors_total", Help: "Reads of a tenant index that failed: not valid, or a storage error (a missing index is not counted), by tenant.",
		}, ten)),
		age: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tempodb_blocklist_tenant_index_age_seconds", Help: "Age of the tenant index at its last read, by tenant.",
		}, ten)),
		writes: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_blocklist_tenant_index_writes_total", Help: "Tenant indexes written (by the backend scheduler holding its lock), by tenant.",
		}, ten)),
		writeFails: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_blocklist_tenant_index_write_failures_total", Help: "Tenant indexes that could not be written, by tenant.",
		}, ten)),
	}
}

// ReadIndexes makes the list poll each tenant from its index
// (storage.trace.blocklist_poll_*): an index younger than staleAfter (0:
// three poll intervals) is used instead of a listing; a missing, invalid
// or older one makes the poll list the tenant when fallback is true, and
// fail for that tenant (keeping what the list had) when it is false.
// It has no effect on a list that writes indexes. Call it before Start.
func (l *List) ReadIndexes(fallback bool, staleAfter time.Duration) {
	if staleAfter <= 0 {
		staleAfter = 3 * l.interval
	}
	l.index.read, l.index.fallback, l.index.staleAfter = l.index.writer == nil, fallback, staleAfter
}

// WriteIndexes makes the list the source of the tenant indexes: it lists
// every tenant at each poll (never reads an index) and, after a poll of
// a tenant without error, writes the tenant's index to bkt when allow
// returns true (the backend scheduler holds its lock). Call it before
// Start.
func (l *List) WriteIndexes(bkt objstore.Bucket, allow func() bool) {
	l.index.writer, l.index.allow, l.index.read = bkt, allow, false
}

// listTenants lists the tenant directories at the top of the bucket (one
// listing, whatever the number of blocks).
func (l *List) listTenants(ctx context.Context) ([]string, error) {
	var tenants []string
	err := l.bkt.Iter(ctx, "", func(name string) error {
		if t, ok := strings.CutSuffix(name, "/"); ok && t != "" {
			tenants = append(tenants, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the tenants: %w", err)
	}
	slices.Sort(tenants)
	return tenants, nil
}

// setLength sets the block-count gauges of tenant.
func (l *List) setLength(tenant string, n int) {
	l.blocks.WithLabelValues(tenant).Set(float64(n))
	l.length.WithLabelValues(tenant).Set(float64(n))
}

// pollIndex updates the blocks of tenant ten from its index, and reports
// whether it did. It returns false, nil when the tenant must be listed
// instead, and an error when the index cannot be used and fallback is off.
func (l *List) pollIndex(ctx context.Context, ten string) (bool, error) {
	idx, _, err := readIndex(ctx, l.bkt, ten)
	// The tenant's error series exists from its first read, at 0 until a
	// read fails, so that an increase() over it sees the first failure.
	l.im.errs.WithLabelValues(ten)
	var reason string
	switch {
	case err == nil:
		age := time.Since(idx.CreatedAt)
		l.im.age.WithLabelValues(ten).Set(age.Seconds())
		if age > l.index.staleAfter {
			reason = "stale"
			err = fmt.Errorf("the index %s was created %s ago, more than storage.trace.blocklist_poll_stale_tenant_index (%s)",
				IndexObject(ten), age.Round(time.Second), l.index.staleAfter)
		}
	case isNotFound(l.bkt, err):
		reason = "missing"
		err = fmt.Errorf("no index %s", IndexObject(ten))
	case errors.Is(err, ErrInvalidIndex):
		reason = "invalid"
		l.im.errs.WithLabelValues(ten).Inc()
	default:
		reason = "error"
		l.im.errs.WithLabelValues(ten).Inc()
		err = fmt.Errorf("cannot read %s: %w", IndexObject(ten), err)
	}
	l.logIndexState(ten, reason, err)
	if reason == "" {
		l.applyIndex(ten, idx)
		l.im.reads.WithLabelValues(ten).Inc()
		return true, nil
	}
	l.im.fallbacks.WithLabelValues(ten, reason).Inc()
	if !l.index.fallback {
		return true, fmt.Errorf("cannot poll the blocks of tenant %q from its index (storage.trace.blocklist_poll_fallback is false): %w", ten, err)
	}
	return false, nil
}

// logIndexState logs when the way tenant ten is polled changes: its
// index cannot be used (but for a missing one: a deployment without a
// backend scheduler has none), or can again. Not once per poll.
func (l *List) logIndexState(ten, reason string, err error) {
	l.mu.Lock()
	prev, seen := l.indexState[ten]
	l.indexState[ten] = reason
	l.mu.Unlock()
	switch {
	case reason == prev && seen:
	case reason == "" && prev != "missing" && seen:
		l.logger.Info("tenant index is used again", "tenant", ten)
	case reason != "" && reason != "missing":
		l.logger.Warn("tenant index cannot be used", "tenant", ten, "reason", reason, "err", err, "fallback", l.index.fallback)
	}
}

// applyIndex makes the blocks of tenant ten those of idx, but for the
// blocks this process added since the index was made.
func (l *List) applyIndex(ten string, idx *Index) {
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(ten)
	in := make(map[uuid.UUID]*block.Meta, len(idx.Meta))
	for _, m := range idx.Meta {
		in[m.BlockID] = m
	}
	cut := idx.CreatedAt.Add(-indexClockSlack)
	for id, e := range blocks {
		if _, ok := in[id]; !ok && e.added.Before(cut) {
			e.close()
			delete(blocks, id)
		}
	}
	for id, m := range in {
		old := blocks[id]
		if old != nil {
			// DeepEqual first: an entry from an earlier index decodes
			// the same, and comparing JSON costs twice as much as the
			// rest of the poll.
			if reflect.DeepEqual(old.Meta, m) || sameMeta(old.Meta, m) || old.added.After(idx.CreatedAt) {
				continue // unchanged, or rewritten by this process since
			}
			old.close()
			l.rewritten.Inc()
			l.logger.Info("block was rewritten under the same ID; its reader is reopened", "tenant", ten, "block", id)
		}
		l.clearUnreadableLocked(ten, id)
		// Its added time is the index's: a later index without it
		// removes it.
		blocks[id] = &Entry{Meta: m, added: idx.CreatedAt}
	}
	bad := map[uuid.UUID]string{}
	for _, u := range idx.Unreadable {
		if blocks[u.BlockID] == nil {
			bad[u.BlockID] = u.Error
		}
	}
	for id := range l.unreadable[ten] {
		if _, ok := bad[id]; !ok {
			l.clearUnreadableLocked(ten, id)
		}
	}
	for id, msg := range bad {
		l.setUnreadableLocked(ten, id, errors.New(msg))
	}
	hideCompacted(blocks)
	l.setLength(ten, len(blocks))
}

// writeIndex writes the index of tenant ten from the list, after a
// listing (present) that began at listStart: the marks of blocks let go
// are read once each. A failure is logged and counted, not a poll error:
// the poll itself succeeded, and readers list the tenant once the index
// is stale.
func (l *List) writeIndex(ctx context.Context, ten string, present map[uuid.UUID]listed, listStart time.Time) {
	l.mu.RLock()
	var toRead []uuid.UUID
	for id, b := range present {
		if b.hasMark && !b.hasMeta && l.letGo[ten][id] == nil {
			toRead = append(toRead, id)
		}
	}
	l.mu.RUnlock()
	marks := make([]*block.CompactedMeta, len(toRead))
	errs := make([]error, len(toRead))
	sem := make(chan struct{}, readConcurrency)
	var wg sync.WaitGroup
	for i, id := range toRead {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			marks[i], errs[i] = block.ReadCompactedMark(ctx, l.bkt, ten, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		l.im.writeFails.WithLabelValues(ten).Inc()
		l.logger.Warn("cannot write the tenant index: cannot read the marks of blocks let go", "tenant", ten, "err", err)
		return
	}

	l.mu.Lock()
	lg := l.letGo[ten]
	if lg == nil {
		lg = map[uuid.UUID]*block.CompactedMeta{}
		l.letGo[ten] = lg
	}
	for id := range lg {
		if b, ok := present[id]; !ok || b.hasMeta || !b.hasMark {
			delete(lg, id) // deleted, or listed again
		}
	}
	for i, id := range toRead {
		if marks[i] != nil {
			lg[id] = marks[i]
		}
	}
	idx := &Index{CreatedAt: listStart.UTC(), Meta: []*block.Meta{}, Compacted: []*block.CompactedMeta{}}
	for _, e := range l.tenants[ten] {
		idx.Meta = append(idx.Meta, e.Meta)
	}
	for _, m := range lg {
		idx.Compacted = append(idx.Compacted, m)
	}
	for id, msg := range l.unreadable[ten] {
		idx.Unreadable = append(idx.Unreadable, UnreadableBlock{BlockID: id, Error: msg})
	}
	l.mu.Unlock()
	slices.SortFunc(idx.Meta, func(a, b *block.Meta) int { return bytes.Compare(a.BlockID[:], b.BlockID[:]) })
	slices.SortFunc(idx.Compacted, func(a, b *block.CompactedMeta) int { return bytes.Compare(a.BlockID[:], b.BlockID[:]) })
	slices.SortFunc(idx.Unreadable, func(a, b UnreadableBlock) int { return bytes.Compare(a.BlockID[:], b.BlockID[:]) })

	if l.index.allow != nil && !l.index.allow() {
		return // not the lock holder
	}
	if err := WriteIndex(ctx, l.index.writer, ten, idx); err != nil {
		l.im.writeFails.WithLabelValues(ten).Inc()
		l.logger.Warn("cannot write the tenant index; readers list the tenant once it is stale", "tenant", ten, "err", err)
		return
	}
	l.im.writes.WithLabelValues(ten).Inc()
}
