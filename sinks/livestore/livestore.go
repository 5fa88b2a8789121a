// Package livestore is the sink that keeps the recent window of traces per
// tenant in memory and finds a trace by ID. Spans of one trace that arrive
// in several pushes are merged, and a span sent twice is kept once. Memory
// is bounded in bytes: a full store makes pushes wait, then refuses them.
package livestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/pipelines"
)

// Type is the node kind.
const Type = "live_store"

// traceOverhead approximates the memory a trace costs besides its span
// bytes: the map entry, the struct and the span-ID set header.
const traceOverhead = 160

// partBytes is the memory of one tracePart.
const partBytes = 16

// shards per tenant, to spread lock contention by trace ID.
const shards = 16

// Store is one live-store.
type Store struct {
	cfg   Config
	clock func() time.Time

	mu      sync.RWMutex
	tenants map[string]*tenantStore

	bytes      atomic.Int64  // all tenants: the memory accounted for
	diskBytes  atomic.Int64  // all tenants: the segments on disk
	colBytes   atomic.Int64  // segment columns, counted in bytes too (segments.go)
	safeBefore atomic.Int64  // unix ns: every span received before is in a block
	room       chan struct{} // closed and replaced whenever bytes are freed

	roomMu sync.Mutex
	// spillMu makes one spill at a time (spill.go).
	spillMu sync.Mutex

	sweeper *periodic.Loop // nil until Start
	spiller *periodic.Loop // nil until Start, or without a path

	m storeMetrics
}

type storeMetrics struct {
	traces       *prometheus.GaugeVec
	bytes        *prometheus.GaugeVec
	diskBytes    prometheus.GaugeFunc
	deduplicated *prometheus.CounterVec
	backPressure prometheus.Counter
	discarded    *prometheus.CounterVec
	evicted      *prometheus.CounterVec
	revoked      *prometheus.CounterVec
	spilled      prometheus.Counter
	spillErrors  prometheus.Counter
}

// tenantStore is one tenant's part of the store: its segments, which hold
// the data, and the traces of the segments still in memory.
type tenantStore struct {
	name   string
	shards [shards]shard
	traces atomic.Int64
	bytes  atomic.Int64

	segMu sync.Mutex
	segs  []*segment // oldest first; the last may be open (segments.go)
}

type shard struct {
	mu     sync.RWMutex
	traces map[[16]byte]*liveTrace
}

// liveTrace is a trace with spans in the segments still in memory. Once
// all of them are on disk (or let go), the trace leaves the map: the
// spilled segments find it through their own index.
type liveTrace struct {
	spans spanSet
	parts []tracePart // its data in memory segments, oldest first
	size  int64       // bytes accounted for this trace, besides the data
	// partition is the input partition the trace's spans came from
	// (the distributor sends all of a trace to one), -1 when the input
	// is not partitioned (in process).
	partition int32
}

// tracePart is the spans one push appended for a trace to a segment.
type tracePart struct {
	seg    *segment
	off, n uint32
}

// New returns a live-store.
func New(set pipelines.Settings, cfg Config) *Store {
	s := &Store{
		cfg:     cfg,
		clock:   time.Now,
		tenants: map[string]*tenantStore{},
		room:    make(chan struct{}),
	}
	s.m = storeMetrics{
		traces: metrics.Register(set.Metrics, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_live_store_traces",
			Help: "Traces with spans in the live-store's memory (not only on disk), by tenant.",
		}, []string{"tenant"})),
		bytes: metrics.Register(set.Metrics, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_live_store_bytes",
			Help: "Memory the live-store accounts for (spans in memory, the traces' index, search columns), by tenant.",
		}, []string{"tenant"})),
		deduplicated: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_live_store_spans_deduplicated_total",
			Help: "Spans dropped because the trace already held a span with the same ID, by tenant.",
		}, []string{"tenant"})),
		backPressure: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_live_store_back_pressure_seconds_total",
			Help: "Time pushes spent waiting for room in a full live-store.",
		})),
		discarded: metrics.DiscardedSpans(set.Metrics),
		evicted: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_live_store_traces_evicted_total",
			Help: "Traces let go with a segment older than the window, or in blocks when the store was full, by tenant (a trace once per segment it had spans in).",
		}, []string{"tenant"})),
		revoked: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_live_store_traces_revoked_total",
			Help: "Traces let go because their input partition was given to another process (which reads it again), by tenant.",
		}, []string{"tenant"})),
		spilled: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_live_store_segments_spilled_total",
			Help: "Segments of the live-store moved from memory to disk (live_store.path).",
		})),
		spillErrors: metrics.Register(set.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_live_store_spill_errors_total",
			Help: "Segments the live-store could not move to disk (live_store.path); they stay in memory.",
		})),
	}
	s.m.diskBytes = metrics.Register(set.Metrics, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_live_store_disk_bytes",
		Help: "Bytes of trace data the live-store holds on disk (live_store.path).",
	}, func() float64 { return float64(s.diskBytes.Load()) }))
	return s
}

// Start begins the periodic sweep of segments older than the window and,
// with a path, the moves of segments older than spill_after to disk.
func (s *Store) Start(context.Context) error {
	s.sweeper = periodic.Start(s.cfg.SweepInterval, s.Sweep)
	if s.cfg.Path != "" {
		s.spiller = periodic.Start(spillCheckInterval(s.cfg.SpillAfter), func() {
			s.Spill(s.clock().Add(-s.cfg.SpillAfter).UnixNano())
		})
	}
	return nil
}

// Shutdown stops the sweep and the spills. The data stays readable.
func (s *Store) Shutdown(ctx context.Context) error {
	return errors.Join(s.sweeper.Stop(ctx), s.spiller.Stop(ctx))
}

// MemoryBound is max_bytes (pipelines.MemoryBounded).
func (s *Store) MemoryBound() int64 { return s.cfg.MaxBytes }

// ReplayWindow is the window (pipelines.ReplayingSink): read from another
// process, the live-store rebuilds its window from the input on start.
func (s *Store) ReplayWindow() time.Duration { return s.cfg.Window }

// partitionOf is the input partition of msg, -1 when it has none.
func partitionOf(msg *message.Message) int32 {
	p, err := strconv.ParseInt(msg.Metadata.Get(pipelines.MetaSourcePartition), 10, 32)
	if err != nil || p < 0 {
		return -1
	}
	return int32(p)
}

// Consume keeps the spans of one message (one tenant, one partition), once
// the push that brought it is acknowledged (pipelines.OnSettled).
func (s *Store) Consume(msg *message.Message) error {
	ten := msg.Metadata.Get(pipelines.MetaTenant)
	if ten == "" {
		return status.Error(codes.InvalidArgument, "cannot keep spans: message has no tenant (is the live-store reading from a distributor?)")
	}
	var batch otlpwire.Batch
	if err := batch.Scan(msg.Payload); err != nil { // checked by the distributor
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if batch.SpanCount() == 0 {
		return nil
	}
	if err := s.waitForRoom(msg.Context(), int64(len(msg.Payload))); err != nil {
		s.m.discarded.WithLabelValues(ten, metrics.ReasonLiveStoreFull).Add(float64(batch.SpanCount()))
		return err
	}
	ts := s.tenant(ten)
	// Served only once the push is acknowledged: a push that another sink
	// (the block-builder's WAL) refused leaves nothing here. Its room is
	// held meanwhile, so that pushes in flight cannot take the store over
	// max_bytes.
	need := int64(len(msg.Payload))
	s.bytes.Add(need)
	partition := partitionOf(msg)
	pipelines.OnSettled(msg.Context(), func(acknowledged bool) {
		s.bytes.Add(-need)
		if acknowledged {
			s.add(ts, &batch, partition)
		} else {
			s.freed()
		}
	})
	return nil
}

// waitForRoom blocks while the store holds MaxBytes or more, up to
// BackPressureTimeout, and fails with Unavailable after it.
func (s *Store) waitForRoom(ctx context.Context, need int64) error {
	if s.bytes.Load()+need <= s.cfg.MaxBytes {
		return nil
	}
	// The columns kept for searches go first: they are a cache.
	s.dropColumns()
	if s.bytes.Load()+need <= s.cfg.MaxBytes {
		return nil
	}
	// Then the sealed segments move to disk, however young.
	if s.cfg.Path != "" {
		s.Spill(s.clock().UnixNano() + 1)
		if s.bytes.Load()+need <= s.cfg.MaxBytes {
			return nil
		}
	}
	// Then the segments whose spans are all in blocks.
	var evictedTo int64
	evictSafe := func() {
		if safe := s.safeBefore.Load(); safe > evictedTo {
			s.evictBefore(safe)
			evictedTo = safe
		}
	}
	evictSafe()
	if s.bytes.Load()+need <= s.cfg.MaxBytes {
		return nil
	}
	start := time.Now() // real time: the clock may be a test's
	defer func() { s.m.backPressure.Add(time.Since(start).Seconds()) }()
	timer := time.NewTimer(s.cfg.BackPressureTimeout)
	defer timer.Stop()
	for s.bytes.Load()+need > s.cfg.MaxBytes {
		s.roomMu.Lock()
		room := s.room
		s.roomMu.Unlock()
		// The block-builder may have moved safeBefore on meanwhile
		// (SetSafeBefore wakes the waiters).
		evictSafe()
		if s.bytes.Load()+need <= s.cfg.MaxBytes {
			break
		}
		select {
		case <-room:
		case <-timer.C:
			return status.Errorf(codes.Unavailable,
				"live-store is full: it holds %d bytes and the limit is %d (live_store.max_bytes); retry later",
				s.bytes.Load(), s.cfg.MaxBytes)
		case <-ctx.Done():
			return status.Errorf(codes.Unavailable, "live-store is full and the push was cancelled while waiting for room: %v", ctx.Err())
		}
	}
	return nil
}

func (s *Store) freed() {
	s.roomMu.Lock()
	close(s.room)
	s.room = make(chan struct{})
	s.roomMu.Unlock()
}

func (s *Store) tenant(name string) *tenantStore {
	s.mu.RLock()
	ts := s.tenants[name]
	s.mu.RUnlock()
	if ts != nil {
		return ts
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts = s.tenants[name]; ts == nil {
		ts = &tenantStore{name: name}
		for i := range ts.shards {
			ts.shards[i].traces = map[[16]byte]*liveTrace{}
		}
		s.tenants[name] = ts
	}
	return ts
}

// spanRef locates one span of a batch.
type spanRef struct {
	res   *otlpwire.Resource
	scope *otlpwire.Scope
	span  *otlpwire.Span
}

func (s *Store) add(ts *tenantStore, batch *otlpwire.Batch, partition int32) {
	// Group the spans by trace, keeping their order.
	groups := map[[16]byte][]spanRef{}
	var order [][16]byte
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for pi := range sc.Spans {
				sp := &sc.Spans[pi]
				var id [16]byte
				copy(id[:], sp.TraceID)
				if _, ok := groups[id]; !ok {
					order = append(order, id)
				}
				groups[id] = append(groups[id], spanRef{res, sc, sp})
			}
		}
	}
	now := s.clock().UnixNano()
	var b otlpwire.Builder
	var dups, addedBytes, addedTraces int64
	// The push goes to the open segment whole: segMu is held throughout,
	// so that its data only grows at its end.
	ts.segMu.Lock()
	sg := ts.openFor(now)
	capBefore := sg.dataCap()
	added := 0
	for _, id := range order {
		sh := &ts.shards[id[0]%shards]
		sh.mu.Lock()
		t := sh.traces[id]
		isNew := t == nil
		if isNew {
			t = &liveTrace{partition: partition}
		}
		b.Reset()
		for _, ref := range groups[id] {
			if !t.spans.add(binary.BigEndian.Uint64(pad8(ref.span.SpanID))) {
				dups++
				continue
			}
			b.Add(ref.res, ref.scope, ref.span.Raw)
		}
		if b.SpanCount() > 0 {
			if isNew {
				sh.traces[id] = t
				addedTraces++
			}
			off, n := sg.appendData(&b)
			t.parts = append(t.parts, tracePart{seg: sg, off: off, n: n})
			before := t.size
			t.size = traceOverhead + t.spans.size() + int64(cap(t.parts))*partBytes
			addedBytes += t.size - before
			sg.refs = append(sg.refs, segRef{id: id, off: off, n: n, spans: uint32(b.SpanCount()), partition: partition})
			added += b.SpanCount()
		}
		sh.mu.Unlock()
	}
	sg.spans += added
	sg.last = now
	addedBytes += sg.dataCap() - capBefore + int64(cap(sg.refs))*segRefBytes - sg.refMem
	sg.refMem = int64(cap(sg.refs)) * segRefBytes
	ts.segMu.Unlock()
	if dups > 0 {
		s.m.deduplicated.WithLabelValues(ts.name).Add(float64(dups))
	}
	s.account(ts, addedTraces, addedBytes)
}

func (s *Store) account(ts *tenantStore, traces, bytes int64) {
	if traces == 0 && bytes == 0 {
		return
	}
	s.m.traces.WithLabelValues(ts.name).Set(float64(ts.traces.Add(traces)))
	s.m.bytes.WithLabelValues(ts.name).Set(float64(ts.bytes.Add(bytes)))
	s.bytes.Add(bytes)
	if bytes < 0 {
		s.freed()
	}
}

func pad8(id []byte) []byte {
	if len(id) == 8 {
		return id
	}
	var b [8]byte
	copy(b[:], id)
	return b[:]
}

// SetSafeBefore tells the store that every span it received before t is in
// a block. When the store is full it lets those spans go first, instead of
// refusing pushes.
func (s *Store) SetSafeBefore(t time.Time) {
	s.safeBefore.Store(t.UnixNano())
	s.freed() // pushes waiting for room may now evict what is in blocks
}

// Sweep lets go of the segments whose last push arrived more than Window
// ago.
func (s *Store) Sweep() { s.evictBefore(s.clock().Add(-s.cfg.Window).UnixNano()) }

// tenantList is the tenants' stores.
func (s *Store) tenantList() []*tenantStore {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tenants := make([]*tenantStore, 0, len(s.tenants))
	for _, ts := range s.tenants {
		tenants = append(tenants, ts)
	}
	return tenants
}

// evictBefore lets go of the sealed segments whose last push arrived
// before cutoff (unix nanoseconds), with their spans, counting the traces
// they held spans of as evicted (a trace once per segment).
func (s *Store) evictBefore(cutoff int64) {
	for _, ts := range s.tenantList() {
		ts.segMu.Lock()
		ts.open(s.clock().UnixNano())
		var gone []*segment
		kept := ts.segs[:0]
		for _, sg := range ts.segs {
			if sg.last < cutoff {
				sg.sealed = true // the open one too: no push since cutoff
				gone = append(gone, sg)
			} else {
				kept = append(kept, sg)
			}
		}
		clear(ts.segs[len(kept):])
		ts.segs = kept
		ts.segMu.Unlock()
		var traces int
		for _, sg := range gone {
			traces += len(sg.traceIDs(ts))
			s.dropSegment(ts, sg)
		}
		if traces > 0 {
			s.m.evicted.WithLabelValues(ts.name).Add(float64(traces))
		}
	}
}

// Revoke lets go of the spans of partitions, which another process reads
// again from the window ago (pipelines.ReplayingSink): kept here too, they
// would be counted twice by TraceQL metrics.
func (s *Store) Revoke(partitions []int32) {
	set := map[int32]bool{}
	for _, p := range partitions {
		set[p] = true
	}
	for _, ts := range s.tenantList() {
		var traces, bytes int64
		for i := range ts.shards {
			sh := &ts.shards[i]
			sh.mu.Lock()
			for id, t := range sh.traces {
				if t.partition >= 0 && set[t.partition] {
					delete(sh.traces, id)
					traces++
					bytes += t.size
				}
			}
			sh.mu.Unlock()
		}
		ts.segMu.Lock()
		segs := append([]*segment(nil), ts.segs...)
		for _, sg := range segs {
			if n := sg.dropRefs(func(r segRef) bool { return r.partition >= 0 && set[r.partition] }); n > 0 && sg.sealed {
				s.freeColumns(sg) // the rows of its columns changed
			}
		}
		ts.segMu.Unlock()
		if traces > 0 {
			s.m.revoked.WithLabelValues(ts.name).Add(float64(traces))
		}
		s.account(ts, -traces, -bytes)
	}
}

// FindTraceByID returns the spans of a trace as OTLP TracesData protobuf, or
// nil when the store does not hold it. start and end are not used: the
// live-store holds only the recent window.
func (s *Store) FindTraceByID(_ context.Context, tenant string, traceID [16]byte, _, _ int64) ([]byte, error) {
	s.mu.RLock()
	ts := s.tenants[tenant]
	s.mu.RUnlock()
	if ts == nil {
		return nil, nil
	}
	return ts.read(traceID), nil
}

// Bytes is the memory the store accounts for, all tenants together.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// String names the store in logs.
func (s *Store) String() string { return fmt.Sprintf("live-store(%d bytes)", s.Bytes()) }

// spanSet holds the span IDs of one trace. Small traces use a slice, which
// is smaller and as fast as a map at that size.
type spanSet struct {
	small []uint64
	big   map[uint64]struct{}
}

const smallSet = 32

// add inserts id and reports whether it was new.
func (s *spanSet) add(id uint64) bool {
	if s.big != nil {
		if _, ok := s.big[id]; ok {
			return false
		}
		s.big[id] = struct{}{}
		return true
	}
	for _, x := range s.small {
		if x == id {
			return false
		}
	}
	if len(s.small) < smallSet {
		s.small = append(s.small, id)
		return true
	}
	s.big = make(map[uint64]struct{}, 2*smallSet)
	for _, x := range s.small {
		s.big[x] = struct{}{}
	}
	s.small = nil
	s.big[id] = struct{}{}
	return true
}

// size approximates the memory of the set.
func (s *spanSet) size() int64 {
	if s.big != nil {
		return int64(len(s.big)) * 16
	}
	return int64(cap(s.small)) * 8
}

// Scan calls fn with a copy of each trace of the tenant that sel selects,
// until fn returns false or ctx is done, and returns the bytes of the
// traces it tested. The predicate is tested on the encoded spans, reading
// only the fields it names: no trace is decoded. With a predicate, only the
// traces of the segments where a span may match are read (segments.go).
// fn may be slow and may keep data.
func (s *Store) Scan(ctx context.Context, tenant string, sel spanpred.Selection, fn func(traceID [16]byte, data []byte) bool) (bytes int64, err error) {
	s.mu.RLock()
	ts := s.tenants[tenant]
	s.mu.RUnlock()
	if ts == nil {
		return 0, nil
	}
	var m *spanpred.Matcher
	if sel.Pred != nil {
		m = spanpred.NewMatcher(sel.Pred)
	}
	// visit reads the trace, tests it unless sure (a trace the matcher
	// cannot read is handed over, for the engine to say what is wrong
	// with it) and hands it to fn; it reports whether to go on.
	visit := func(id [16]byte, sure bool) bool {
		data := ts.read(id)
		if data == nil {
			return true
		}
		bytes += int64(len(data))
		if !sure && m != nil {
			if ok, err := m.Match(data); !ok && err == nil {
				return true
			}
		}
		return fn(id, data)
	}
	if sel.ByTraceID {
		for _, id := range sel.TraceIDs {
			if !visit(id, false) {
				break
			}
		}
		return bytes, ctx.Err()
	}
	seen := map[[16]byte]bool{}
	if sel.Pred != nil {
		// Only the traces of the segments where a span may match, newest
		// segment first, each once.
		var err error
		s.eachCandidates(ts, sel.Pred, s.clock().UnixNano(), func(cands map[[16]byte]bool) bool {
			if err = ctx.Err(); err != nil {
				return false
			}
			for id, sure := range cands {
				if seen[id] {
					continue
				}
				seen[id] = true
				if !visit(id, sure) {
					return false
				}
			}
			return true
		})
		return bytes, err
	}
	// Every trace, newest segment first.
	for _, sg := range ts.segments() {
		if err := ctx.Err(); err != nil {
			return bytes, err
		}
		for _, id := range sg.traceIDs(ts) {
			if seen[id] {
				continue
			}
			seen[id] = true
			if !visit(id, false) {
				return bytes, nil
			}
		}
	}
	return bytes, nil
}
