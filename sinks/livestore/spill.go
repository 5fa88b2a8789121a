package livestore

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"
)

// This file moves sealed segments from memory to disk and reads them back.
//
// A segment sealed for live_store.spill_after (or any sealed one, when the
// store is full) is written to a file under live_store.path, and its data
// leaves the memory. The file is unlinked as soon as it is created: only
// the open descriptor holds it, so a process that dies leaves nothing
// behind and the disk space comes back when the segment goes. What stays
// in memory per spilled segment is its refs (segRefBytes each) and an index
// of them by trace ID (indexBytes each); the traces whose spans are all on
// disk leave the trace map, and with it the span-ID set that drops a span
// sent twice: a span sent again after its first copy was spilled is kept
// twice, as a span sent again after the window is.
//
// Reads go through the page cache: a trace by ID reads its byte ranges
// (pread), a search or metrics query walking a spilled segment reads the
// file whole into a pooled buffer.

// spillCheckInterval is how often the store looks for segments to spill.
func spillCheckInterval(after time.Duration) time.Duration {
	return min(max(after/4, 250*time.Millisecond), 5*time.Second)
}

// Spill moves to disk the sealed segments whose last push arrived before
// before (unix nanoseconds). It does nothing without live_store.path; a
// segment that cannot be written stays in memory and is counted in
// weft_live_store_spill_errors_total.
func (s *Store) Spill(before int64) {
	if s.cfg.Path == "" {
		return
	}
	s.spillMu.Lock()
	defer s.spillMu.Unlock()
	now := s.clock().UnixNano()
	for _, ts := range s.tenantList() {
		ts.segMu.Lock()
		ts.open(now)
		var todo []*segment
		for _, sg := range ts.segs {
			if sg.sealed && sg.last < before {
				todo = append(todo, sg)
			}
		}
		ts.segMu.Unlock()
		for _, sg := range todo {
			if err := s.spillSegment(ts, sg); err != nil {
				s.m.spillErrors.Inc()
				return // the next ones would fail alike
			}
		}
	}
}

// spillSegment writes the sealed segment sg to a file and lets its data
// go from memory. A segment already on disk or let go is left as it is.
func (s *Store) spillSegment(ts *tenantStore, sg *segment) error {
	sg.dataMu.RLock()
	chunks, done := sg.chunks, sg.file != nil || sg.gone
	sg.dataMu.RUnlock()
	if done {
		return nil
	}
	if err := os.MkdirAll(s.cfg.Path, 0o750); err != nil {
		return fmt.Errorf("cannot create the live-store directory: %w", err)
	}
	f, err := os.CreateTemp(s.cfg.Path, "segment-*")
	if err != nil {
		return fmt.Errorf("cannot create a segment file: %w", err)
	}
	// Only the descriptor holds the file from now on.
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return fmt.Errorf("cannot unlink the segment file: %w", err)
	}
	for _, c := range chunks { // sealed: they no longer change
		if _, err := f.Write(c); err != nil {
			_ = f.Close()
			return fmt.Errorf("cannot write a segment file: %w", err)
		}
	}
	sg.dataMu.Lock()
	if sg.gone {
		sg.dataMu.Unlock()
		return f.Close()
	}
	memCap := sg.dataMem
	sg.file, sg.chunks, sg.starts, sg.dataMem = f, nil, nil, 0
	sg.byID = indexByID(sg.refs)
	index := int64(len(sg.byID)) * indexBytes
	sg.dataMu.Unlock()
	s.diskBytes.Add(sg.size)
	s.m.spilled.Inc()
	traces, bytes := ts.leaveMemory(sg)
	s.account(ts, -traces, index-memCap-bytes)
	return nil
}

// indexByID returns the indexes of refs, ordered by trace ID.
func indexByID(refs []segRef) []int32 {
	idx := make([]int32, len(refs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return bytes.Compare(refs[a].id[:], refs[b].id[:]) })
	return idx
}

// leaveMemory takes sg's parts out of the traces that have some there, and
// takes the traces left with none out of the map. It returns the traces
// taken out and the bytes they and their parts were accounted for.
func (ts *tenantStore) leaveMemory(sg *segment) (traces, freed int64) {
	ts.segMu.Lock()
	refs := sg.refs
	ts.segMu.Unlock()
	done := make(map[[16]byte]struct{}, len(refs))
	for _, r := range refs {
		if _, ok := done[r.id]; ok {
			continue
		}
		done[r.id] = struct{}{}
		sh := &ts.shards[r.id[0]%shards]
		sh.mu.Lock()
		if t := sh.traces[r.id]; t != nil {
			t.parts = slices.DeleteFunc(t.parts, func(p tracePart) bool { return p.seg == sg })
			if len(t.parts) == 0 {
				delete(sh.traces, r.id)
				traces++
				freed += t.size
			}
		}
		sh.mu.Unlock()
	}
	return traces, freed
}

// dropSegment lets go of sg, which is no longer in ts.segs: its data, in
// memory or on disk, its columns and its traces' parts.
func (s *Store) dropSegment(ts *tenantStore, sg *segment) {
	sg.dataMu.Lock()
	memCap, f, size, index := sg.dataMem, sg.file, sg.size, int64(len(sg.byID))*indexBytes
	sg.chunks, sg.starts, sg.dataMem, sg.file, sg.byID, sg.gone = nil, nil, 0, nil, nil, true
	sg.dataMu.Unlock()
	if f != nil {
		_ = f.Close() // read-only from here on: nothing to lose
		s.diskBytes.Add(-size)
	}
	traces, bytes := ts.leaveMemory(sg)
	s.freeColumns(sg)
	s.account(ts, -traces, -(memCap + index + sg.refMem + bytes))
}

// dropRefs takes the refs drop selects out of sg (their bytes stay, unread)
// and returns how many it took. ts.segMu is held.
func (sg *segment) dropRefs(drop func(segRef) bool) int {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	sg.dataMu.Lock()
	defer sg.dataMu.Unlock()
	kept := make([]segRef, 0, len(sg.refs))
	spans := 0
	for _, r := range sg.refs {
		if !drop(r) {
			kept = append(kept, r)
			spans += int(r.spans)
		}
	}
	n := len(sg.refs) - len(kept)
	if n == 0 {
		return 0
	}
	sg.refs, sg.spans = kept, spans
	if sg.byID != nil {
		sg.byID = indexByID(kept)
	}
	return n
}

// read returns the trace's spans held by the tenant's store, as TracesData
// bytes in the order they arrived, or nil. The parts the trace map lists
// are taken first, as a snapshot, and the spilled segments' indexes give
// the rest: a segment spilled meanwhile is read through the snapshot, once.
func (ts *tenantStore) read(id [16]byte) []byte {
	sh := &ts.shards[id[0]%shards]
	sh.mu.RLock()
	var parts []tracePart
	if t := sh.traces[id]; t != nil {
		parts = slices.Clone(t.parts)
	}
	sh.mu.RUnlock()
	segs := ts.segments()
	var out []byte
	for i := len(segs) - 1; i >= 0; i-- { // oldest first
		sg := segs[i]
		named := false
		for _, p := range parts {
			if p.seg == sg {
				named = true
				out = sg.appendRange(out, p.off, p.n)
			}
		}
		if !named {
			out = sg.appendByID(out, id)
		}
	}
	return out
}

// appendRange appends the bytes [off, off+n) of the segment's data to dst;
// nothing when they cannot be read (the segment let go).
func (sg *segment) appendRange(dst []byte, off, n uint32) []byte {
	sg.dataMu.RLock()
	defer sg.dataMu.RUnlock()
	switch {
	case sg.gone || int64(off)+int64(n) > sg.size:
		return dst
	case sg.file == nil:
		c, at, ok := sg.chunkAt(off, n)
		if !ok {
			return dst
		}
		return append(dst, c[at:at+int(n)]...)
	}
	l := len(dst)
	dst = slices.Grow(dst, int(n))[:l+int(n)]
	if _, err := sg.file.ReadAt(dst[l:], int64(off)); err != nil {
		return dst[:l]
	}
	return dst
}

// appendByID appends the spans of trace id in the spilled segment sg to
// dst; nothing when sg is in memory (the trace map lists its parts).
func (sg *segment) appendByID(dst []byte, id [16]byte) []byte {
	sg.dataMu.RLock()
	byID := sg.byID
	var refs []segRef
	if byID != nil { // sealed: refs change only under dataMu (dropRefs)
		refs = sg.refs
	}
	sg.dataMu.RUnlock()
	if byID == nil {
		return dst
	}
	i, _ := slices.BinarySearchFunc(byID, id, func(x int32, id [16]byte) int { return bytes.Compare(refs[x].id[:], id[:]) })
	for ; i < len(byID) && refs[byID[i]].id == id; i++ {
		r := refs[byID[i]]
		dst = sg.appendRange(dst, r.off, r.n)
	}
	return dst
}

// walk calls fn with the data of each of refs, in order, until fn returns
// false; data is nil for a ref that cannot be read (the segment let go),
// and valid only during the call. A spilled segment is read whole, once.
func (sg *segment) walk(refs []segRef, fn func(i int, r segRef, data []byte) bool) {
	sg.dataMu.RLock()
	var whole []byte // the file's bytes, for a spilled segment
	var buf *[]byte
	chunks, starts, gone := slices.Clone(sg.chunks), slices.Clone(sg.starts), sg.gone
	if sg.file != nil {
		buf = getBuf(int(sg.size))
		if _, err := sg.file.ReadAt(*buf, 0); err != nil {
			putBuf(buf)
			buf, gone = nil, true
		} else {
			whole = *buf
		}
	}
	sg.dataMu.RUnlock()
	if buf != nil {
		defer putBuf(buf)
	}
	ci := 0 // refs go forward through the chunks, mostly
	for i, r := range refs {
		var d []byte
		end := int64(r.off) + int64(r.n)
		switch {
		case gone:
		case whole != nil:
			if end <= int64(len(whole)) {
				d = whole[r.off:end]
			}
		default:
			if ci >= len(starts) || int64(r.off) < starts[ci] {
				ci = 0
			}
			for ci+1 < len(starts) && starts[ci+1] <= int64(r.off) {
				ci++
			}
			if ci < len(chunks) {
				if at := int64(r.off) - starts[ci]; at >= 0 && at+int64(r.n) <= int64(len(chunks[ci])) {
					d = chunks[ci][at : at+int64(r.n)]
				}
			}
		}
		if !fn(i, r, d) {
			return
		}
	}
}

// bufs holds a few buffers for reading spilled segments whole; more are
// allocated, and dropped after use, when all are taken.
var bufs = make(chan *[]byte, 2)

func getBuf(n int) *[]byte {
	select {
	case b := <-bufs:
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	default:
	}
	b := make([]byte, n)
	return &b
}

// maxPooledBuf is the largest buffer kept in bufs: a pooled buffer stays
// in memory for good, and a segment may be up to segmentBytes.
const maxPooledBuf = 16 << 20

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	select {
	case bufs <- b:
	default:
	}
}
