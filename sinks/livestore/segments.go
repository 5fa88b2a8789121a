package livestore

import (
	"sync"

	"github.com/weftdb/weft/internal/spanpred"
)

// This file gives the live-store's search the pruning blocks have. The
// pushes a tenant's store takes over a short time form a segment, listed
// as the byte ranges they appended to their traces' data. Once sealed, a
// segment is summarized the first time a search reads a field there: the
// field's domain (its distinct values, or bounds) over the segment's
// spans, computed from the encoded spans and then kept. A search tests its
// predicate against the domains of each sealed segment (as against a row
// group's dictionaries and statistics) and scans only the traces of the
// segments where a span may match, and of the open segment.

// A segment is sealed once it holds segmentSpans spans or is segmentAge
// old (unix nanoseconds).
const (
	segmentSpans = 20000
	segmentAge   = int64(2e9)
)

// segRefBytes approximates the memory of one segRef.
const segRefBytes = 40

type segment struct {
	start  int64 // unix ns of the first push
	spans  int
	refs   []segRef
	sealed bool // set under tenantStore.segMu; refs no longer change

	mu      sync.Mutex // guards domains
	domains map[spanpred.Field]spanpred.Domain
}

// segRef is the bytes one push appended to one trace.
type segRef struct {
	id [16]byte
	// gen is the trace's generation: a trace let go and started again by
	// a later span is another trace.
	gen    uint64
	off, n uint32
}

// record adds the refs of one push, taken at now (unix ns), to the open
// segment, sealing it first when it is full or old.
func (ts *tenantStore) record(now int64, refs []segRef, spans int) {
	if len(refs) == 0 {
		return
	}
	ts.segMu.Lock()
	defer ts.segMu.Unlock()
	cur := ts.open(now)
	if cur == nil || cur.spans >= segmentSpans {
		if cur != nil {
			cur.sealed = true
		}
		cur = &segment{start: now}
		ts.segs = append(ts.segs, cur)
	}
	cur.refs = append(cur.refs, refs...)
	cur.spans += spans
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

// candidates returns the IDs of the traces with a span in a segment where
// p may match: every trace of the open segment, and of each sealed one
// whose domains do not rule p out.
func (ts *tenantStore) candidates(p spanpred.Predicate, now int64) map[[16]byte]struct{} {
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
	out := map[[16]byte]struct{}{}
	for i, sg := range segs {
		// The refs of an open segment grow under segMu: read them there.
		if !sealed[i] {
			ts.segMu.Lock()
			for _, r := range sg.refs {
				out[r.id] = struct{}{}
			}
			ts.segMu.Unlock()
			continue
		}
		if !p.MayMatch(ts.domains(sg, fields)) {
			continue
		}
		for _, r := range sg.refs {
			out[r.id] = struct{}{}
		}
	}
	return out
}

// domains returns the domains of fields over the spans of the sealed
// segment sg, summarizing the fields not yet summarized.
func (ts *tenantStore) domains(sg *segment, fields []spanpred.Field) []spanpred.Domain {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	var todo []spanpred.Field
	for _, f := range fields {
		if _, ok := sg.domains[f]; !ok && !containsField(todo, f) {
			todo = append(todo, f)
		}
	}
	if len(todo) > 0 {
		if sg.domains == nil {
			sg.domains = map[spanpred.Field]spanpred.Domain{}
		}
		builders := make([]spanpred.DomainBuilder, len(todo))
		rr := spanpred.NewRowReader(todo)
		known := true
		for _, r := range sg.refs {
			sh := &ts.shards[r.id[0]%shards]
			sh.mu.RLock()
			if t := sh.traces[r.id]; t != nil && t.gen == r.gen && int(r.off)+int(r.n) <= len(t.data) {
				err := rr.Rows(t.data[r.off:r.off+r.n], func(row []spanpred.Value) bool {
					for i := range row {
						builders[i].Add(row[i])
					}
					return true
				})
				known = known && err == nil
			}
			sh.mu.RUnlock()
		}
		for i, f := range todo {
			d := builders[i].Domain()
			if !known {
				d = spanpred.Domain{} // data it could not read may hold anything
			}
			sg.domains[f] = d
		}
	}
	out := make([]spanpred.Domain, len(fields))
	for i, f := range fields {
		out[i] = sg.domains[f]
	}
	return out
}

func containsField(fs []spanpred.Field, f spanpred.Field) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}

// dropDead lets go of the segments none of whose traces is still held.
func (ts *tenantStore) dropDead() {
	ts.segMu.Lock()
	segs := make([]*segment, len(ts.segs))
	copy(segs, ts.segs)
	ts.segMu.Unlock()
	dead := map[*segment]bool{}
	for _, sg := range segs[:max(len(segs)-1, 0)] { // never the newest
		if !ts.anyLive(sg.refs) {
			dead[sg] = true
		}
	}
	if len(dead) == 0 {
		return
	}
	ts.segMu.Lock()
	kept := ts.segs[:0]
	for _, sg := range ts.segs {
		if !dead[sg] {
			kept = append(kept, sg)
		}
	}
	clear(ts.segs[len(kept):])
	ts.segs = kept
	ts.segMu.Unlock()
}

// anyLive reports whether a trace of refs is still held.
func (ts *tenantStore) anyLive(refs []segRef) bool {
	for _, r := range refs {
		sh := &ts.shards[r.id[0]%shards]
		sh.mu.RLock()
		t := sh.traces[r.id]
		live := t != nil && t.gen == r.gen
		sh.mu.RUnlock()
		if live {
			return true
		}
	}
	return false
}
