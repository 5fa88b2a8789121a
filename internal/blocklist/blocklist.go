// Package blocklist keeps the list of blocks in object storage, per tenant:
// it polls the bucket so a process sees blocks that other processes wrote,
// takes blocks this process wrote as soon as they are uploaded, and keeps an
// open reader per block for the query side.
//
// A block whose meta.json cannot be used (not JSON, empty, failing
// block.Meta.Validate, or not matching the size of its data.parquet) is left
// out of the list, counted in weft_blocklist_unreadable_blocks and logged
// once; it is read again on every poll, so a repaired block comes back. A
// block rewritten under the same ID (a replay after a crash) is noticed by
// the last-modified time of its meta.json in the listing, and by Read when
// a read through a cached reader fails. Available says whether the list can
// be trusted: it fails until a poll has succeeded and when the last success
// is too old.
//
// A poll reads each tenant's index (index.json.gz, see Index) instead of
// listing the tenant, once ReadIndexes was called, and lists the tenant
// when the index is missing, invalid or stale (when fallback is on). The
// process whose list was given WriteIndexes always lists, and writes each
// tenant's index after polling it while its allow function says so (the
// backend scheduler holds its lock).
package blocklist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	"github.com/weftdb/weft/internal/storage"
)

// readConcurrency bounds the meta.json reads of one tenant's poll in flight.
const readConcurrency = 16

// stampSlack is how long after its last-modified time a meta.json must have
// been read for the listing's time to tell a later rewrite apart: S3 gives
// whole seconds, and the store's clock may differ from ours. A block read
// sooner is read once more at a later poll.
const stampSlack = 2 * time.Second

// Entry is one block: its meta and, once asked for, its reader. Its Meta is
// never changed: a block rewritten under the same ID gets a new Entry.
type Entry struct {
	Meta *block.Meta

	// stamp is the last-modified time of meta.json as the listing showed
	// it when Meta was read; zero when not known. checked is when Meta was
	// last read and found current. Both guarded by List.mu.
	stamp, checked time.Time
	// added is when the entry was put in the list: a listing that began
	// before it may not show the block yet, and must not remove it.
	added time.Time

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
	bkt        objstore.BucketReader
	interval   time.Duration
	staleAfter time.Duration
	stampSlack time.Duration
	logger     *slog.Logger

	mu      sync.RWMutex
	tenants map[string]map[uuid.UUID]*Entry
	// unreadable holds, per tenant, the blocks left out because their
	// meta.json cannot be used, with the reason last logged.
	unreadable  map[string]map[uuid.UUID]string
	lastSuccess time.Time // end of the last poll without error
	lastErr     error     // error of the last poll, nil after a success

	poller *periodic.Loop // nil until Start
	// stopPolls cancels the poll in progress when the list stops: a hung
	// store must not hold a shutdown for a poll's whole timeout.
	stopPolls context.CancelFunc

	blocks        *prometheus.GaugeVec
	length        *prometheus.GaugeVec // Tempo's name of blocks
	unreadableG   *prometheus.GaugeVec
	pollErrs      prometheus.Counter
	pollTime      prometheus.Histogram
	lastSuccessTS prometheus.Gauge
	rewritten     prometheus.Counter

	// index says how tenant indexes are used; guarded by being set
	// before Start.
	index indexUse
	// letGo holds, per tenant, the marks of blocks let go, for the index
	// this list writes. Guarded by mu.
	letGo map[string]map[uuid.UUID]*block.CompactedMeta
	// indexState is, per tenant, why its last poll did not use the index
	// ("" when it did), for logging changes only. Guarded by mu.
	indexState map[string]string
	im         indexMetrics
}

// New returns a list of the blocks in bkt, polled every interval once
// started.
func New(bkt objstore.BucketReader, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) *List {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &List{
		bkt: bkt, interval: interval, logger: logger,
		// Three intervals, and never less than one interval plus the
		// timeout of a poll, so that one slow poll does not make the
		// list stale.
		staleAfter: max(3*interval, interval+pollTimeout(interval)),
		stampSlack: stampSlack,
		tenants:    map[string]map[uuid.UUID]*Entry{},
		unreadable: map[string]map[uuid.UUID]string{},
		letGo:      map[string]map[uuid.UUID]*block.CompactedMeta{},
		indexState: map[string]string{},
		im:         newIndexMetrics(reg),
		blocks: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_blocklist_blocks", Help: "Blocks known in object storage, by tenant.",
		}, []string{"tenant"})),
		length: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tempodb_blocklist_length", Help: "Blocks known in object storage, by tenant (as weft_blocklist_blocks).",
		}, []string{"tenant"})),
		unreadableG: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_blocklist_unreadable_blocks",
			Help: "Blocks left out of the block list because their meta.json cannot be read or is not valid, by tenant. Their spans are not queryable.",
		}, []string{"tenant"})),
		pollErrs: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_blocklist_poll_failures_total", Help: "Polls of the block list that failed.",
		})),
		pollTime: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_blocklist_poll_duration_seconds", Help: "Time to poll the block list of every tenant.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		})),
		lastSuccessTS: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_blocklist_last_successful_poll_timestamp_seconds",
			Help: "Unix time of the end of the last poll of the block list that succeeded; 0 until one has.",
		})),
		rewritten: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_blocklist_blocks_reopened_total",
			Help: "Blocks found rewritten under the same ID (a replay after a crash), whose cached reader was dropped.",
		})),
	}
}

// pollTimeout bounds one poll.
func pollTimeout(interval time.Duration) time.Duration { return max(interval, time.Minute) }

// Start polls once, then every interval until Stop. A failing first poll
// (object storage down) is logged, not fatal: the next polls catch up, and
// Available fails until one succeeds.
func (l *List) Start(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, pollTimeout(l.interval))
	if err := l.Poll(pctx); err != nil {
		l.logger.Warn("cannot read the block list; blocks written before this start are not queryable until a poll succeeds", "err", err)
	}
	cancel()
	stopped, stopPolls := context.WithCancel(context.Background())
	l.stopPolls = stopPolls
	l.poller = periodic.Start(l.interval, func() {
		ctx, cancel := context.WithTimeout(stopped, pollTimeout(l.interval))
		defer cancel()
		if err := l.Poll(ctx); err != nil {
			l.logger.Warn("cannot poll the block list", "err", err)
		}
	})
	return nil
}

// Stop ends the polling and closes the readers.
func (l *List) Stop() {
	if l.stopPolls != nil {
		l.stopPolls()
	}
	_ = l.poller.Stop(context.Background())
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, blocks := range l.tenants {
		for _, e := range blocks {
			e.close()
		}
	}
}

// Available returns nil when the list can be trusted to hold the blocks of
// object storage: a poll has succeeded, and the last success is less than
// three poll intervals old (at least one interval plus a poll's timeout).
// Otherwise the error says why, with the last poll's error: a query that
// finds nothing cannot tell that the data does not exist.
func (l *List) Available() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.lastSuccess.IsZero() {
		if l.lastErr != nil {
			return fmt.Errorf("the blocks in object storage are not known: no poll of the block list has succeeded yet: %w", l.lastErr)
		}
		return errors.New("the blocks in object storage are not known: the block list has not been polled yet")
	}
	if age := time.Since(l.lastSuccess); age > l.staleAfter {
		return fmt.Errorf("the block list is stale: its last successful poll was %s ago (storage.trace.blocklist_poll is %s): %w",
			age.Round(time.Second), l.interval, l.lastErr)
	}
	return nil
}

// Polled returns nil once a poll of the list has succeeded, else why none
// has: the readiness check of the processes that query blocks.
func (l *List) Polled() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.lastSuccess.IsZero() {
		return nil
	}
	if l.lastErr != nil {
		return fmt.Errorf("no poll of the blocks in object storage has succeeded yet: %w", l.lastErr)
	}
	return errors.New("the blocks in object storage have not been listed yet")
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
	blocks[meta.BlockID] = &Entry{Meta: meta, added: time.Now()}
	l.clearUnreadableLocked(meta.TenantID, meta.BlockID)
	hideCompacted(blocks)
	l.setLength(meta.TenantID, len(blocks))
}

// hideCompacted takes out of blocks those that a block of blocks was
// compacted from (block.Meta.CompactedFrom): a compaction's inputs stay in
// the bucket until the job lets them go, and a reader must not count their
// spans twice. Since the output's meta.json is written last and whole, a
// reader sees the inputs until it sees the output, then the output alone.
func hideCompacted(blocks map[uuid.UUID]*Entry) {
	for _, e := range blocks {
		for _, in := range e.Meta.CompactedFrom {
			if old := blocks[in]; old != nil {
				old.close()
				delete(blocks, in)
			}
		}
	}
}

// Poll lists every tenant's blocks, reads the meta of blocks it does not
// know yet, of blocks whose meta.json changed since it was read and of
// blocks it could not use before, and forgets blocks that are gone or being
// rewritten. An error of one block or tenant does not stop the others.
func (l *List) Poll(ctx context.Context) error {
	start := time.Now()
	defer func() { l.pollTime.Observe(time.Since(start).Seconds()) }()
	tenants, err := l.listTenants(ctx)
	if err != nil {
		l.pollDone(err)
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
		if listed[ten] {
			continue
		}
		// Every block of the tenant is gone, but for those added since
		// the listing began.
		for id, e := range blocks {
			if e.added.Before(start) {
				e.close()
				delete(blocks, id)
			}
		}
		if len(blocks) == 0 {
			delete(l.tenants, ten)
			l.blocks.DeleteLabelValues(ten)
			l.length.DeleteLabelValues(ten)
		} else {
			l.setLength(ten, len(blocks))
		}
	}
	for ten := range l.unreadable {
		if !listed[ten] {
			delete(l.unreadable, ten)
			l.unreadableG.DeleteLabelValues(ten)
		}
	}
	for ten := range l.letGo {
		if !listed[ten] {
			delete(l.letGo, ten)
		}
	}
	for ten := range l.indexState {
		if !listed[ten] {
			delete(l.indexState, ten)
		}
	}
	l.mu.Unlock()
	err = errors.Join(errs...)
	l.pollDone(err)
	return err
}

func (l *List) pollDone(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastErr = err
	if err != nil {
		l.pollErrs.Inc()
		return
	}
	l.lastSuccess = time.Now()
	l.lastSuccessTS.Set(float64(l.lastSuccess.UnixNano()) / 1e9)
}

// listed is what a tenant's listing shows of one block.
type listed struct {
	hasMeta bool      // meta.json exists (always true without stamps)
	hasMark bool      // meta.compacted.json exists (only known with stamps)
	stamp   time.Time // last-modified time of meta.json, when known
}

// listTenant lists the blocks of a tenant. When the bucket can list
// recursively with last-modified times (S3, the local backend), one listing
// of the tenant's objects tells which blocks have a meta.json and when it
// was written: about three keys per block, so one LIST request per ~330
// blocks on S3. Otherwise it lists the block directories and stamps is
// false.
func (l *List) listTenant(ctx context.Context, ten string) (blocks map[uuid.UUID]listed, stamps bool, err error) {
	blocks = map[uuid.UUID]listed{}
	prefix := ten + "/"
	opts := l.bkt.SupportedIterOptions()
	if slices.Contains(opts, objstore.Recursive) && slices.Contains(opts, objstore.UpdatedAt) {
		err := l.bkt.IterWithAttributes(ctx, prefix, func(a objstore.IterObjectAttributes) error {
			dir, obj, ok := strings.Cut(strings.TrimPrefix(a.Name, prefix), "/")
			if !ok {
				return nil
			}
			id, err := uuid.Parse(dir)
			if err != nil {
				return nil
			}
			b := blocks[id]
			switch obj {
			case block.MetaName:
				b.hasMeta = true
				b.stamp, _ = a.LastModified()
			case block.CompactedName:
				b.hasMark = true
			}
			blocks[id] = b
			return nil
		}, objstore.WithRecursiveIter(), objstore.WithUpdatedAt())
		if err != nil {
			return nil, false, fmt.Errorf("cannot list the blocks of tenant %q: %w", ten, err)
		}
		return blocks, true, nil
	}
	err = l.bkt.Iter(ctx, prefix, func(name string) error {
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(name, prefix), "/"))
		if err == nil {
			blocks[id] = listed{hasMeta: true}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("cannot list the blocks of tenant %q: %w", ten, err)
	}
	return blocks, false, nil
}

// readResult is the outcome of reading one block's meta.json.
type readResult struct {
	id   uuid.UUID
	meta *block.Meta
	err  error
	read time.Time // when the read began
}

// pollTenant updates the blocks of tenant ten: from its index when this
// list reads indexes and the index can be used, else from a listing (and
// then writes the index when this list is the writer).
func (l *List) pollTenant(ctx context.Context, ten string) error {
	if l.index.read {
		used, err := l.pollIndex(ctx, ten)
		if used || err != nil {
			return err
		}
	}
	present, listStart, err := l.pollListing(ctx, ten)
	if err != nil || l.index.writer == nil {
		return err
	}
	// Only a poll without error is written: a block whose meta.json could
	// not be read now would be missing from the index.
	l.writeIndex(ctx, ten, present, listStart)
	return nil
}

// pollListing updates the blocks of tenant ten from a listing of its
// objects, and returns what the listing showed and when it began.
func (l *List) pollListing(ctx context.Context, ten string) (map[uuid.UUID]listed, time.Time, error) {
	listStart := time.Now()
	present, stamps, err := l.listTenant(ctx, ten)
	if err != nil {
		return nil, listStart, err
	}
	l.mu.RLock()
	known := l.tenants[ten]
	var toRead []uuid.UUID
	for id, b := range present {
		if !b.hasMeta {
			continue // being written or rewritten: meta.json comes last
		}
		e, ok := known[id]
		_, bad := l.unreadable[ten][id]
		switch {
		case !ok, bad: // new, or unreadable before: read again
			toRead = append(toRead, id)
		case stamps && !e.stamp.Equal(b.stamp): // rewritten, or stamp not known yet
			toRead = append(toRead, id)
		case stamps && e.checked.Sub(b.stamp) < l.stampSlack:
			// Read too soon after it was written for the stamp to
			// show a rewrite within the same second.
			toRead = append(toRead, id)
		}
	}
	l.mu.RUnlock()

	results := make([]readResult, len(toRead))
	sem := make(chan struct{}, readConcurrency)
	var wg sync.WaitGroup
	for i, id := range toRead {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			read := time.Now()
			m, err := l.readBlock(ctx, ten, id)
			results[i] = readResult{id: id, meta: m, err: err, read: read}
		})
	}
	wg.Wait()

	var errs []error
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(ten)
	for id, e := range blocks {
		// Gone, or being rewritten: its meta.json is deleted first. A
		// block added since the listing began may just not be listed.
		if b, ok := present[id]; (!ok || !b.hasMeta) && e.added.Before(listStart) {
			e.close()
			delete(blocks, id)
		}
	}
	for id := range l.unreadable[ten] {
		if b, ok := present[id]; !ok || !b.hasMeta {
			l.clearUnreadableLocked(ten, id)
		}
	}
	for _, r := range results {
		old := blocks[r.id]
		if old != nil && old.added.After(r.read) {
			continue // added (written by this process) since: newer than what was read
		}
		switch {
		case r.err == nil:
			if l.clearUnreadableLocked(ten, r.id) {
				l.logger.Info("block is readable again", "tenant", ten, "block", r.id)
			}
			if old != nil && sameMeta(old.Meta, r.meta) {
				// Unchanged: only the stamp was new (a block this
				// process wrote), or it was read too soon.
				old.stamp, old.checked = present[r.id].stamp, r.read
				continue
			}
			if old != nil {
				old.close()
				l.rewritten.Inc()
				l.logger.Info("block was rewritten under the same ID; its reader is reopened", "tenant", ten, "block", r.id)
			}
			blocks[r.id] = &Entry{Meta: r.meta, stamp: present[r.id].stamp, checked: r.read, added: time.Now()}
		case isNotFound(l.bkt, r.err):
			// Deleted since the listing; the next poll sees it.
			if old != nil {
				old.close()
				delete(blocks, r.id)
			}
		case isUnreadable(l.bkt, r.err):
			if old != nil {
				old.close()
				delete(blocks, r.id)
			}
			l.setUnreadableLocked(ten, r.id, r.err)
		default:
			// A storage error: keep what the list had, retry next poll.
			errs = append(errs, r.err)
		}
	}
	hideCompacted(blocks)
	l.setLength(ten, len(blocks))
	return present, listStart, errors.Join(errs...)
}

// sameMeta reports whether a and b describe the same write of a block
// (createdAt differs between writes).
func sameMeta(a, b *block.Meta) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// readBlock reads and checks the meta.json of a block, and checks that
// data.parquet has the size it gives (one HEAD request on S3): a wrong size
// makes every read of the block fail. The bloom is not checked: a block
// whose bloom is missing or damaged is read without it (block.Reader).
func (l *List) readBlock(ctx context.Context, ten string, id uuid.UUID) (*block.Meta, error) {
	m, err := block.ReadMeta(ctx, l.bkt, ten, id)
	if err != nil {
		if isNotFound(l.bkt, err) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot read the meta of block %s/%s: %w", ten, id, err)
	}
	if m.Format != block.FormatV1 {
		return nil, fmt.Errorf("cannot use block %s/%s: %w", ten, id, m.Validate())
	}
	if err := m.CheckData(ctx, l.bkt); err != nil {
		return nil, err
	}
	return m, nil
}

// isUnreadable reports whether err means the block cannot be used until
// its objects are replaced: a meta.json that is not valid, or access to it
// denied.
func isUnreadable(bkt objstore.BucketReader, err error) bool {
	if errors.Is(err, block.ErrInvalidMeta) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if bkt.IsAccessDeniedErr(e) {
			return true
		}
	}
	return false
}

// setUnreadableLocked records that a block is left out, logging it the
// first time and when the reason changes. l.mu must be held for writing.
func (l *List) setUnreadableLocked(ten string, id uuid.UUID, err error) {
	bad := l.unreadable[ten]
	if bad == nil {
		bad = map[uuid.UUID]string{}
		l.unreadable[ten] = bad
	}
	if msg, ok := bad[id]; !ok || msg != err.Error() {
		l.logger.Warn("block left out of the block list: its spans are not queryable until it is repaired or removed",
			"tenant", ten, "block", id, "err", err)
	}
	bad[id] = err.Error()
	l.unreadableG.WithLabelValues(ten).Set(float64(len(bad)))
}

// clearUnreadableLocked forgets that a block was left out and reports
// whether it was. l.mu must be held for writing.
func (l *List) clearUnreadableLocked(ten string, id uuid.UUID) bool {
	bad := l.unreadable[ten]
	if _, ok := bad[id]; !ok {
		return false
	}
	delete(bad, id)
	l.unreadableG.WithLabelValues(ten).Set(float64(len(bad)))
	return true
}

// Unreadable returns the IDs of the tenant's blocks left out because their
// meta.json cannot be used, sorted.
func (l *List) Unreadable(tenant string) []uuid.UUID {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var ids []uuid.UUID
	for id := range l.unreadable[tenant] {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// UnreadableReason returns why the tenant's block id is left out of the
// list, or "" when it is not.
func (l *List) UnreadableReason(tenant string, id uuid.UUID) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.unreadable[tenant][id]
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
// is not in the bucket either (not complete yet, or deleted), and an error
// wrapping block.ErrInvalidMeta when its meta.json cannot be used.
func (l *List) Fetch(ctx context.Context, tenant string, id uuid.UUID) (*Entry, error) {
	if e := l.Get(tenant, id); e != nil {
		return e, nil
	}
	meta, err := l.readBlock(ctx, tenant, id)
	if err != nil {
		if isNotFound(l.bkt, err) {
			return nil, nil
		}
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(tenant)
	if e := blocks[id]; e != nil { // added meanwhile
		return e, nil
	}
	e := &Entry{Meta: meta, added: time.Now()}
	blocks[id] = e
	l.clearUnreadableLocked(tenant, id)
	hideCompacted(blocks)
	l.setLength(tenant, len(blocks))
	return e, nil
}

// FetchPlanned is Fetch for a job planned from a list that named the
// block. When the block was let go since (compacted into another, or past
// retention), its objects stay in the bucket for the backend's
// compacted_block_retention, so that the queries planned with it can end:
// FetchPlanned then returns an entry for it made from its
// meta.compacted.json, not added to the list. It returns nil, nil when the
// block is gone.
func (l *List) FetchPlanned(ctx context.Context, tenant string, id uuid.UUID) (*Entry, error) {
	e, err := l.Fetch(ctx, tenant, id)
	if e != nil || err != nil {
		return e, err
	}
	mark, err := block.ReadCompactedMark(ctx, l.bkt, tenant, id)
	if err != nil || mark == nil {
		if err != nil && isNotFound(l.bkt, err) {
			err = nil
		}
		return nil, err
	}
	if mark.TenantID != tenant || mark.BlockID != id {
		return nil, fmt.Errorf("cannot use block %s/%s: %w: its meta.compacted.json names block %s/%s", tenant, id, block.ErrInvalidMeta, mark.TenantID, mark.BlockID)
	}
	meta := mark.Meta
	if err := meta.Validate(); err != nil {
		return nil, fmt.Errorf("cannot use block %s/%s: %w", tenant, id, err)
	}
	return &Entry{Meta: &meta, added: time.Now()}, nil
}

// ErrBadBlockID is OpenPlanned's error for a block ID that is not a UUID.
var ErrBadBlockID = errors.New("invalid block ID")

// OpenPlanned returns a reader of the block a query's job names (blockID,
// a UUID as text), found with FetchPlanned (l may be nil: no list). A
// malformed ID fails with ErrBadBlockID, a block that is in neither the
// list nor the bucket with an error saying so.
func OpenPlanned(ctx context.Context, l *List, bkt objstore.BucketReader, tenant, blockID string) (*block.Reader, error) {
	id, err := uuid.Parse(blockID)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadBlockID, blockID, err)
	}
	var e *Entry
	if l != nil {
		// The frontend may have planned from a newer block list than ours,
		// or with a block let go since.
		if e, err = l.FetchPlanned(ctx, tenant, id); err != nil {
			return nil, err
		}
	}
	if e == nil {
		return nil, errors.New("not in the bucket")
	}
	r, err := e.Reader(ctx, bkt)
	if err != nil {
		return nil, fmt.Errorf("cannot open it: %w", err)
	}
	return r, nil
}

// Refresh is for a read through e's reader that failed: it reads the
// block's meta.json again and, when the block was rewritten since e was
// made (a replay after a crash rewrites a block under the same ID), puts a
// new entry in the list in e's place and returns it. It returns nil, nil
// when the block is unchanged (the failure was not a rewrite) or gone. It
// costs one GET and one HEAD request.
func (l *List) Refresh(ctx context.Context, e *Entry) (*Entry, error) {
	ten, id := e.Meta.TenantID, e.Meta.BlockID
	meta, err := l.readBlock(ctx, ten, id)
	switch {
	case isNotFound(l.bkt, err):
		return nil, nil
	case err != nil:
		return nil, err
	case sameMeta(meta, e.Meta):
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	blocks := l.blocksLocked(ten)
	cur := blocks[id]
	if cur != nil && cur != e && sameMeta(cur.Meta, meta) {
		return cur, nil // refreshed meanwhile
	}
	if cur != nil {
		cur.close()
	}
	ne := &Entry{Meta: meta, added: time.Now()}
	blocks[id] = ne
	l.clearUnreadableLocked(ten, id)
	l.setLength(ten, len(blocks))
	l.rewritten.Inc()
	l.logger.Info("block was rewritten under the same ID; its reader is reopened", "tenant", ten, "block", id)
	return ne, nil
}

// Read runs read on the reader of e, opened from bkt (the caller's bucket,
// which may bound each call). When it fails for another reason than ctx or
// an object-storage outage (storage.IsUnavailable), the block's meta.json is
// read again (Refresh) and, if the block was rewritten under the same ID
// since e was made, read runs once more on the new block; otherwise the first
// error is returned.
func Read[T any](ctx context.Context, l *List, bkt objstore.BucketReader, e *Entry, read func(*block.Reader) (T, error)) (T, error) {
	v, err := readEntry(ctx, bkt, e, read)
	if err == nil || ctx.Err() != nil || storage.IsUnavailable(err) {
		return v, err
	}
	ne, rerr := l.Refresh(ctx, e)
	if rerr != nil || ne == nil {
		return v, err
	}
	return readEntry(ctx, bkt, ne, read)
}

func readEntry[T any](ctx context.Context, bkt objstore.BucketReader, e *Entry, read func(*block.Reader) (T, error)) (T, error) {
	r, err := e.Reader(ctx, bkt)
	if err != nil {
		var zero T
		return zero, err
	}
	return read(r)
}

// Tenants returns the tenants with blocks in the list.
func (l *List) Tenants() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.tenants))
	for t, blocks := range l.tenants {
		if len(blocks) > 0 {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
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
