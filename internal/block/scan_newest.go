package block

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/weftdb/weft/internal/otlpwire"
)

// This file is Scan with NewestFirst: a search keeping the N most recent
// traces needs each candidate trace's start, a column, not its spans. The
// candidates (traces with a row passing the condition) of each row group
// are ranked by the earliest start_unix_nano of their rows, and their raw
// span, resource and scope columns are read in that order, a batch at a
// time, until the caller's floor (the start of the N-th most recent trace
// it kept) rules out every trace left. Row groups are visited in
// descending order of their largest start (column statistics): a
// candidate is handed over only once no row group left can hold a newer
// one, and a row group whose largest start is below the floor is not read.

// newestFirstBatch and newestMaxBatch bound the candidates whose spans
// are read at once, first and at most.
const (
	newestFirstBatch = 8
	newestMaxBatch   = 1024
)

// candidate is a trace of a row group with a row passing the condition.
type candidate struct {
	start  uint64 // earliest start_unix_nano of its rows in the row group
	g      int
	lo, hi int64 // its rows
	id     [16]byte
}

// candidates is a max-heap of candidates by start (then block order, so
// that the order is deterministic).
type candidates []candidate

func (h candidates) Len() int { return len(h) }
func (h candidates) Less(i, j int) bool {
	if h[i].start != h[j].start {
		return h[i].start > h[j].start
	}
	return h[i].g < h[j].g || h[i].g == h[j].g && h[i].lo < h[j].lo
}
func (h candidates) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candidates) Push(x any)   { *h = append(*h, x.(candidate)) }
func (h *candidates) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// scanNewest is Scan with NewestFirst over row groups [first, last). It
// returns ErrStopScan when fn did, or when the floor ruled out the rest.
func (r *Reader) scanNewest(ctx context.Context, ra *objectReaderAt, f *parquet.File, cols leafColumns, first, last int,
	req ScanRequest, fields []fieldColumns, st *ScanStats, sc *scanScratch, fn func(id [16]byte, data []byte) error) error {
	leaf, ok := f.Schema().Lookup(colStart)
	if !ok {
		return fmt.Errorf("block %s: no column %q", r.meta.BlockID, colStart)
	}
	startCol := leaf.ColumnIndex
	floor := func() (uint64, bool) {
		if req.Floor == nil {
			return 0, false
		}
		return req.Floor()
	}
	// The row groups, by descending largest start.
	type group struct {
		g      int
		newest uint64
	}
	groups := make([]group, 0, max(last-first, 0))
	for g := first; g < last; g++ {
		newest := uint64(math.MaxUint64) // unknown
		if lo, hi, ok := chunkOf(f.RowGroups()[g], startCol).Bounds(); ok && lo.Int64() >= 0 && !hi.IsNull() {
			newest = uint64(hi.Int64())
		}
		groups = append(groups, group{g, newest})
	}
	slices.SortStableFunc(groups, func(a, b group) int { return cmp.Compare(b.newest, a.newest) })

	var pending candidates
	done := map[[16]byte]bool{} // traces cut over row groups, handed over whole
	batch := newestFirstBatch
	var tb otlpwire.Builder
	// emit hands over the pending candidates that start at or after bound,
	// newest first, a batch at a time. A batch holds no candidate the
	// floor rules out; it doubles after a batch handed over whole, so
	// that the spans read for candidates the floor then rules out are
	// at most those of the traces handed over.
	emit := func(bound uint64) error {
		for len(pending) > 0 && pending[0].start >= bound {
			if err := ctx.Err(); err != nil {
				return err
			}
			fl, ok := floor()
			if ok && pending[0].start < fl {
				return ErrStopScan // and every row group left is older
			}
			var b []candidate
			for len(b) < batch && len(pending) > 0 && pending[0].start >= bound && !(ok && pending[0].start < fl) {
				b = append(b, heap.Pop(&pending).(candidate))
			}
			if err := r.emitBatch(ctx, ra, f, cols, b, floor, done, &tb, fn); err != nil {
				return err
			}
			if len(b) == batch {
				batch = min(2*batch, newestMaxBatch)
			}
		}
		return nil
	}
	for _, gr := range groups {
		if fl, ok := floor(); ok && gr.newest < fl {
			st.RowGroupsPruned += len(groups) - st.RowGroups
			break
		}
		if err := emit(gr.newest); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		st.RowGroups++
		if err := r.loadCandidates(ctx, ra, f, cols, startCol, gr.g, req, fields, st, sc, &pending); err != nil {
			return err
		}
	}
	return emit(0)
}

// loadCandidates pushes the candidates of row group g onto pending.
func (r *Reader) loadCandidates(ctx context.Context, ra *objectReaderAt, f *parquet.File, cols leafColumns, startCol, g int,
	req ScanRequest, fields []fieldColumns, st *ScanStats, sc *scanScratch, pending *candidates) error {
	matched, hit, err := r.matchRows(ctx, ra, f, g, req.Pred, fields, st, sc)
	if err != nil || !hit {
		return err
	}
	rg := f.RowGroups()[g]
	n := rg.NumRows()
	sc.ids, err = readTraceIDs(ra, chunkOf(rg, cols.traceID), n, sc.ids)
	if err != nil {
		return fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	ids := sc.ids
	traces := r.fewMatchesOut(traceRanges(ids, matched), ids, matched, g, req.MinSpans)
	if len(traces) == 0 {
		return nil
	}
	// The start of the rows of the traces, read in runs of nearby traces.
	var runs [][2]int64
	for _, cl := range clusters(traces, 4096, math.MaxInt64) {
		runs = append(runs, [2]int64{cl[0][0], cl[len(cl)-1][1]})
	}
	sc.starts = resize(sc.starts, n)
	starts := sc.starts
	set := func(row int64, v parquet.Value) {
		if !v.IsNull() {
			starts[row] = uint64(v.Int64())
		}
	}
	if len(runs) == 1 && runs[0][0] == 0 && runs[0][1] == n {
		// Every row: a page's values at once.
		err = eachPage(ra, chunkOf(rg, startCol), func(row int64, page parquet.Page) error {
			if page.NumNulls() == 0 && page.Dictionary() == nil {
				if data := page.Data(); data.Kind() == encoding.Int64 {
					for i, v := range data.Int64() {
						starts[row+int64(i)] = uint64(v)
					}
					return nil
				}
			}
			return eachPageValue(page, func(i int64, v parquet.Value) { set(row+i, v) })
		})
	} else {
		err = eachValueIn(ra, chunkOf(rg, startCol), runs, set)
	}
	if err != nil {
		return fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	for _, tr := range traces {
		c := candidate{start: starts[tr[0]], g: g, lo: tr[0], hi: tr[1]}
		for _, s := range starts[tr[0]+1 : tr[1]] {
			c.start = min(c.start, s)
		}
		c.id = ids[tr[0]]
		heap.Push(pending, c)
	}
	return nil
}

// emitBatch reads the raw columns of the candidates of b (newest first)
// and hands them over in that order, ending with ErrStopScan when the
// floor rules the next one out.
func (r *Reader) emitBatch(ctx context.Context, ra *objectReaderAt, f *parquet.File, cols leafColumns, b []candidate,
	floor func() (uint64, bool), done map[[16]byte]bool, tb *otlpwire.Builder, fn func(id [16]byte, data []byte) error) error {
	// Read each row group's candidates in block order, nearby ones at once.
	spans := make([][]rawSpan, len(b))
	byGroup := map[int][]int{}
	for i, c := range b {
		byGroup[c.g] = append(byGroup[c.g], i)
	}
	for g, idx := range byGroup {
		slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(b[x].lo, b[y].lo) })
		ranges := make([][2]int64, len(idx))
		for k, i := range idx {
			ranges[k] = [2]int64{b[i].lo, b[i].hi}
		}
		k := 0
		for _, cl := range clusters(ranges, 512, maxClusterRows) {
			if err := ctx.Err(); err != nil {
				return err
			}
			var raw spanSet
			if err := r.readRaw(ra, f, g, cols, cl[0][0], cl[len(cl)-1][1], &raw); err != nil {
				return err
			}
			base := cl[0][0]
			for _, tr := range cl {
				spans[idx[k]] = raw.spans[tr[0]-base : tr[1]-base]
				k++
			}
		}
	}
	for i, c := range b {
		if fl, ok := floor(); ok && c.start < fl {
			return ErrStopScan
		}
		n := f.RowGroups()[c.g].NumRows()
		var data []byte
		if (c.lo == 0 && c.g > 0 && r.inRowGroup(c.id, c.g-1)) || (c.hi == n && r.inRowGroup(c.id, c.g+1)) {
			// The trace continues in a neighbouring row group: hand it
			// over whole, once.
			if done[c.id] {
				continue
			}
			done[c.id] = true
			var err error
			if data, err = r.FindTraceByID(ctx, c.id); err != nil {
				return err
			}
		} else {
			one := spanSet{spans: spans[i]}
			data = one.appendTraces(tb)
		}
		if err := fn(c.id, data); err != nil {
			return err
		}
	}
	return nil
}
