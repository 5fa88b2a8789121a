package livestore

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spanpred"
)

// The live-store's data lives in segments: the pushes a tenant's store
// takes over a short time, appended one after the other, each trace's
// spans of a push as one TracesData piece (a segRef). A segment is open
// while pushes go to it, then sealed; once sealed for live_store.spill_after
// it moves to disk (spill.go), and it goes once the window has passed since
// its last push.
//
// This file also gives the live-store's search the pruning and the
// column-wise tests blocks have. Once a segment is sealed, the first search
// that reads a field there walks the segment's encoded spans once and
// keeps:
//
//   - the field's domain (its distinct values, or bounds) over the
//     segment, which rules the segment out as a row group's dictionaries
//     and statistics rule a row group out;
//   - while the segment has fewer than maxColumns columns, the field's
//     column: its value for every span of the segment, in segment order.
//
// A later search whose fields all have columns tests its predicate on the
// columns, span by span, without touching the encoded spans: only the
// traces with a span that satisfies it are read. Columns count in the
// store's bytes, and go first when the store is full.

// A segment is sealed once it holds segmentSpans spans or segmentBytes
// bytes, or is segmentAge old (unix nanoseconds). segmentBytes keeps the
// byte offsets within uint32 and bounds a whole read of a spilled segment.
const (
	segmentSpans = 20000
	segmentAge   = int64(2e9)
)

// segmentBytes is a var so that a test can lower it.
var segmentBytes int64 = 64 << 20

// maxColumns is the most columns a segment keeps.
const maxColumns = 8

// Memory estimates: one segRef, one value of a column, one row of rowRef,
// one entry of a spilled segment's index.
const (
	segRefBytes   = 32
	colValueBytes = 40
	rowRefBytes   = 4
	indexBytes    = 4
)

type segment struct {
	start  int64 // unix ns of the first push
	last   int64 // unix ns of the last push
	spans  int
	refs   []segRef // guarded by tenantStore.segMu while open; then fixed but for dropRefs
	refMem int64    // bytes of refs accounted for
	sealed bool     // set under tenantStore.segMu; refs no longer grow

	dataMu sync.RWMutex // guards what follows
	// chunks hold the pushes' bytes while in memory: a segment's data is
	// the chunks one after the other, each full but the last, and a ref
	// lies within one chunk (so that data is never copied to grow).
	chunks  [][]byte
	starts  []int64  // the offset of each chunk in the data
	dataMem int64    // the memory of chunks
	file    *os.File // once on disk: the data
	size    int64    // bytes of data (in memory or on disk)
	byID    []int32  // on disk: the indexes of refs, by trace ID
	gone    bool     // let go: nothing is read any more

	mu      sync.Mutex // guards what follows
	domains map[spanpred.Field]spanpred.Domain
	cols    map[spanpred.Field][]spanpred.Value
	rowRef  []uint32 // the ref of each row of the columns
	memos   map[string]any
	colMem  int64 // bytes of cols, rowRef and memos, counted in Store.bytes
}

// segRef is the spans one push appended to a segment for one trace.
type segRef struct {
	id        [16]byte
	off, n    uint32 // the byte range in the segment's data
	spans     uint32
	partition int32 // the input partition, -1 when not partitioned
}

// openFor returns the open segment for a push at now, sealing the open one
// and starting another when it is full or old. ts.segMu is held.
func (ts *tenantStore) openFor(now int64) *segment {
	cur := ts.open(now)
	if cur == nil || cur.spans >= segmentSpans || cur.size >= segmentBytes {
		if cur != nil {
			cur.sealed = true
		}
		cur = &segment{start: now, last: now}
		ts.segs = append(ts.segs, cur)
	}
	return cur
}

// Chunk sizes of a segment's data: the first is small, for tenants that
// push little, and each next one twice the previous, up to maxChunk.
const (
	minChunk = 16 << 10
	maxChunk = 1 << 20
)

// appendData appends b's spans to the segment's data and returns their
// byte range. Only the pusher holding tenantStore.segMu appends.
func (sg *segment) appendData(b *otlpwire.Builder) (off, n uint32) {
	sg.dataMu.Lock()
	defer sg.dataMu.Unlock()
	need := b.Size()
	last := len(sg.chunks) - 1
	if last < 0 || cap(sg.chunks[last])-len(sg.chunks[last]) < need {
		size := minChunk
		if last >= 0 {
			size = min(2*cap(sg.chunks[last]), maxChunk)
		}
		sg.chunks = append(sg.chunks, make([]byte, 0, max(size, need)))
		sg.starts = append(sg.starts, sg.size)
		sg.dataMem += int64(max(size, need))
		last++
	}
	c := sg.chunks[last]
	o := len(c)
	c = b.AppendTo(c)
	sg.chunks[last] = c
	n = uint32(len(c) - o)
	off = uint32(sg.starts[last]) + uint32(o)
	sg.size += int64(n)
	return off, n
}

// chunkAt returns the chunk that holds [off, off+n) and the range's
// position in it; ok is false when none does. sg.dataMu is held.
func (sg *segment) chunkAt(off, n uint32) (c []byte, at int, ok bool) {
	i, found := slices.BinarySearch(sg.starts, int64(off))
	if !found {
		i--
	}
	if i < 0 || i >= len(sg.chunks) {
		return nil, 0, false
	}
	c, at = sg.chunks[i], int(int64(off)-sg.starts[i])
	if at+int(n) > len(c) {
		return nil, 0, false
	}
	return c, at, true
}

// dataCap is the memory of the segment's data.
func (sg *segment) dataCap() int64 {
	sg.dataMu.RLock()
	defer sg.dataMu.RUnlock()
	return sg.dataMem
}

// open returns the open segment, sealing it first (and returning nil)
// when it is segmentAge old at now. ts.segMu is held.
func (ts *tenantStore) open(now int64) *segment {
	if len(ts.segs) == 0 {
		return nil
	}
	cur := ts.segs[len(ts.segs)-1]
	if cur.sealed {
		return nil
	}
	if now-cur.start >= segmentAge {
		cur.sealed = true
		return nil
	}
	return cur
}

// segments returns the tenant's segments, newest first.
func (ts *tenantStore) segments() []*segment {
	ts.segMu.Lock()
	defer ts.segMu.Unlock()
	out := make([]*segment, len(ts.segs))
	for i, sg := range ts.segs {
		out[len(out)-1-i] = sg
	}
	return out
}

// refList returns the segment's refs; a copy while it is open.
func (ts *tenantStore) refList(sg *segment) []segRef {
	ts.segMu.Lock()
	defer ts.segMu.Unlock()
	if sg.sealed {
		return sg.refs
	}
	return slices.Clone(sg.refs)
}

// traceIDs returns the distinct trace IDs of the segment's refs.
func (sg *segment) traceIDs(ts *tenantStore) [][16]byte {
	refs := ts.refList(sg)
	seen := make(map[[16]byte]struct{}, len(refs))
	var out [][16]byte
	for _, r := range refs {
		if _, ok := seen[r.id]; !ok {
			seen[r.id] = struct{}{}
			out = append(out, r.id)
		}
	}
	return out
}

// eachCandidates calls visit with the candidates of each segment, newest
// first, until visit returns false: the IDs of the traces with a span in
// the segment where p may match, each marked true when a column-wise test
// found a span that satisfies p (the trace needs no other test). The open
// segment's are all its traces; a sealed one's none when its domains rule
// p out.
func (s *Store) eachCandidates(ts *tenantStore, p spanpred.Predicate, now int64, visit func(cands map[[16]byte]bool) bool) {
	ts.segMu.Lock()
	ts.open(now)
	segs := make([]*segment, len(ts.segs))
	copy(segs, ts.segs)
	sealed := make([]bool, len(segs))
	for i, sg := range segs {
		sealed[i] = sg.sealed
	}
	ts.segMu.Unlock()

	fields := p.Fields()
	for i := len(segs) - 1; i >= 0; i-- {
		sg := segs[i]
		cands := map[[16]byte]bool{}
		add := func(id [16]byte, sure bool) {
			if !cands[id] {
				cands[id] = sure
			}
		}
		if sealed[i] {
			s.testSegment(ts, sg, p, fields, add)
		} else {
			// The refs of the open segment grow under segMu.
			ts.segMu.Lock()
			for _, r := range sg.refs {
				add(r.id, false)
			}
			ts.segMu.Unlock()
		}
		if len(cands) > 0 && !visit(cands) {
			return
		}
	}
}

// testSegment adds the candidates of the sealed segment sg.
func (s *Store) testSegment(ts *tenantStore, sg *segment, p spanpred.Predicate, fields []spanpred.Field, add func([16]byte, bool)) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	s.summarize(ts, sg, fields)
	domains := make([]spanpred.Domain, len(fields))
	for i, f := range fields {
		domains[i] = sg.domains[f]
	}
	if !p.MayMatch(domains) {
		return
	}
	cols := make([][]spanpred.Value, len(fields))
	for i, f := range fields {
		if cols[i] = sg.cols[f]; cols[i] == nil {
			// No column: every trace of the segment is a candidate.
			for _, r := range sg.refs {
				add(r.id, false)
			}
			return
		}
	}
	row := make([]spanpred.Value, len(fields))
	last := -1 // the last ref found, whose other rows need no test
	for j, ref := range sg.rowRef {
		if int(ref) == last {
			continue
		}
		for i := range cols {
			row[i] = cols[i][j]
		}
		if p.Match(row) {
			last = int(ref)
			add(sg.refs[ref].id, true)
		}
	}
}

// summarize computes the domains (and, room permitting, the columns) of
// the fields of sg that have none, in one walk over its spans. sg.mu is
// held.
func (s *Store) summarize(ts *tenantStore, sg *segment, fields []spanpred.Field) {
	var todo []spanpred.Field
	for _, f := range fields {
		if _, ok := sg.domains[f]; !ok && !containsField(todo, f) {
			todo = append(todo, f)
		}
	}
	if len(todo) == 0 {
		return
	}
	if sg.domains == nil {
		sg.domains = map[spanpred.Field]spanpred.Domain{}
	}
	keepCols := len(sg.cols)+len(todo) <= maxColumns
	builders := make([]spanpred.DomainBuilder, len(todo))
	var cols [][]spanpred.Value
	var rowRef []uint32
	if keepCols {
		cols = make([][]spanpred.Value, len(todo))
		for i := range cols {
			cols[i] = make([]spanpred.Value, 0, sg.spans)
		}
		if sg.rowRef == nil {
			rowRef = make([]uint32, 0, sg.spans)
		}
	}
	rr := spanpred.NewRowReader(todo)
	rr.EverySpan = keepCols
	known := true
	// Strings are copied out of the traces' data once per distinct value.
	interned := map[string]string{}
	var strMem int64
	sg.walk(sg.refs, func(ri int, r segRef, data []byte) bool {
		rows := 0
		if data != nil {
			err := rr.Rows(data, func(row []spanpred.Value) bool {
				rows++
				for i := range row {
					v := row[i]
					builders[i].Add(v)
					if keepCols {
						if v.Kind == spanpred.String {
							str, ok := interned[v.Str]
							if !ok {
								str = strings.Clone(v.Str)
								interned[str] = str
								strMem += int64(len(str)) + 16
							}
							v.Str = str
						}
						cols[i] = append(cols[i], v)
					}
				}
				return true
			})
			known = known && err == nil
		}
		if !keepCols {
			return true
		}
		// A segment let go leaves missing values; a push whose bytes
		// give another number of spans than it added (never expected)
		// leaves no columns.
		for ; rows < int(r.spans); rows++ {
			for i := range cols {
				cols[i] = append(cols[i], spanpred.Value{})
			}
		}
		if rows != int(r.spans) {
			keepCols = false
			return true
		}
		if rowRef != nil {
			for range r.spans {
				rowRef = append(rowRef, uint32(ri))
			}
		}
		return true
	})
	for i, f := range todo {
		d := builders[i].Domain()
		if !known {
			d = spanpred.Domain{} // data it could not read may hold anything
		}
		sg.domains[f] = d
	}
	if !keepCols || !known || (rowRef == nil && sg.rowRef == nil) {
		return
	}
	if sg.cols == nil {
		sg.cols = map[spanpred.Field][]spanpred.Value{}
	}
	mem := strMem
	if rowRef != nil {
		sg.rowRef = rowRef
		mem += int64(cap(rowRef)) * rowRefBytes
	}
	for i, f := range todo {
		if len(cols[i]) != len(sg.rowRef) {
			return // cannot be: every walk gives sg.spans rows
		}
		sg.cols[f] = cols[i]
		mem += int64(cap(cols[i])) * colValueBytes
	}
	sg.colMem += mem
	s.colBytes.Add(mem)
	s.bytes.Add(mem)
}

func containsField(fs []spanpred.Field, f spanpred.Field) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}

// dropColumns lets go of the columns and memos of every segment (the
// store is full: they are a cache).
func (s *Store) dropColumns() {
	if s.colBytes.Load() == 0 {
		return
	}
	for _, ts := range s.tenantList() {
		ts.segMu.Lock()
		segs := append([]*segment(nil), ts.segs...)
		ts.segMu.Unlock()
		for _, sg := range segs {
			s.freeColumns(sg)
		}
	}
}

// freeColumns lets go of sg's columns.
func (s *Store) freeColumns(sg *segment) {
	sg.mu.Lock()
	mem := sg.colMem
	sg.cols, sg.rowRef, sg.memos, sg.colMem = nil, nil, nil, 0
	sg.mu.Unlock()
	if mem > 0 {
		s.colBytes.Add(-mem)
		s.bytes.Add(-mem)
		s.freed()
	}
}

// EachPart calls fn with each segment of the tenant's store, newest first,
// until fn returns false or ctx is done: sealed ones keep what readers
// derive from them (spanpred.Part.Memo).
func (s *Store) EachPart(ctx context.Context, tenant string, fn func(p spanpred.Part) bool) error {
	s.mu.RLock()
	ts := s.tenants[tenant]
	s.mu.RUnlock()
	if ts == nil {
		return nil
	}
	ts.segMu.Lock()
	ts.open(s.clock().UnixNano())
	parts := make([]*part, len(ts.segs))
	for i, sg := range ts.segs {
		p := &part{s: s, ts: ts, sg: sg, sealed: sg.sealed, refs: sg.refs}
		if !sg.sealed {
			p.refs = append([]segRef(nil), sg.refs...) // the open one grows
		}
		parts[len(parts)-1-i] = p
	}
	ts.segMu.Unlock()
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(p) {
			return nil
		}
	}
	return nil
}

// part is a segment as a spanpred.Part.
type part struct {
	s      *Store
	ts     *tenantStore
	sg     *segment
	sealed bool
	refs   []segRef
}

func (p *part) EachData(fn func(data []byte) bool) {
	p.sg.walk(p.refs, func(_ int, _ segRef, data []byte) bool {
		return data == nil || fn(data)
	})
}

// maxMemoBytes bounds one memo: a bigger value is not kept.
const maxMemoBytes = 4 << 20

func (p *part) Memo(key string, build func() (any, int64)) (any, bool) {
	if !p.sealed {
		return nil, false
	}
	sg := p.sg
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if v, ok := sg.memos[key]; ok {
		return v, true
	}
	v, n := build()
	if v == nil || n > maxMemoBytes {
		return v, true
	}
	if sg.memos == nil {
		sg.memos = map[string]any{}
	}
	sg.memos[key] = v
	n += int64(len(key)) + 64
	sg.colMem += n
	p.s.colBytes.Add(n)
	p.s.bytes.Add(n)
	return v, true
}
