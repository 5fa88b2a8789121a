package block

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parquet-go/parquet-go"

	"github.com/weftdb/weft/internal/spanpred"
)

// This file is the span side of the reader: ScanSpans hands over single
// spans as the values of a few fields, for a query that decides on each
// span alone (a TraceQL metrics query whose search part is one spanset
// filter on fields stored per span). It reads only the columns of those
// fields and start_unix_nano, prunes row groups and pages as Scan does,
// and never reads the raw span, resource and scope columns or assembles a
// trace. SpanIDs reads the IDs of a few spans afterwards (exemplars).

// SpanScanRequest says what ScanSpans reads.
type SpanScanRequest struct {
	// Pred selects the spans: those for which Match holds (row groups and
	// pages ruled out by MayMatch are skipped unread). nil selects every
	// span.
	Pred spanpred.Predicate
	// Fields are read for the spans selected and handed over after
	// Pred's fields.
	Fields []spanpred.Field
	// FirstRowGroup and LastRowGroup bound the row groups scanned,
	// [FirstRowGroup, LastRowGroup); LastRowGroup 0 means to the end.
	FirstRowGroup, LastRowGroup int
}

// SpanRow is one span ScanSpans hands over.
type SpanRow struct {
	// RowGroup and Row locate the span in the block (Row within its row
	// group), for SpanIDs.
	RowGroup int
	Row      int64
	// Start is the span's start_unix_nano.
	Start int64
	// Values are the values of Pred's fields, then of the request's
	// Fields. They are valid only during the call.
	Values []spanpred.Value
}

// ScanSpans calls fn with each span of the requested row groups that
// req.Pred selects, in block order. fn returning ErrStopScan ends the scan
// early; another error ends it with that error.
func (r *Reader) ScanSpans(ctx context.Context, req SpanScanRequest, fn func(*SpanRow) error) (st ScanStats, err error) {
	f, _, err := r.loadFile(ctx)
	if err != nil {
		return st, err
	}
	ra := r.readerAt(ctx)
	defer func() { st.BytesRead = ra.bytesRead.Load() }()
	last := lastRowGroup(f, req.LastRowGroup)
	pfields, err := r.predFields(f, req.Pred)
	if err != nil {
		return st, err
	}
	efields, err := lookupFields(f, req.Fields)
	if err != nil {
		return st, fmt.Errorf("block %s: %w", r.meta.BlockID, err)
	}
	startLeaf, ok := f.Schema().Lookup(colStart)
	if !ok {
		return st, fmt.Errorf("block %s: no column %q", r.meta.BlockID, colStart)
	}
	var sc scanScratch
	extra := make([][]spanpred.Value, len(efields))
	var starts []int64
	row := &SpanRow{Values: make([]spanpred.Value, len(pfields)+len(efields))}
	for g := max(req.FirstRowGroup, 0); g < last; g++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.RowGroups++
		rg := f.RowGroups()[g]
		n := rg.NumRows()
		matched, hit, err := r.matchRows(ctx, ra, f, g, req.Pred, pfields, &st, &sc)
		if err != nil {
			return st, err
		}
		if !hit {
			continue
		}
		keep := matchedRanges(matched, n)
		if req.Pred == nil {
			st.SpansMatched += n
		}
		for i := range efields {
			_, generic, _, err := efields[i].domain(r, ra, f, g, true) // for generic only: no big dictionary read
			if err != nil {
				return st, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
			}
			if extra[i], err = efields[i].read(ra, f, g, generic, keep, extra[i]); err != nil {
				return st, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
			}
		}
		starts = resize(starts, n)
		if err := eachValueIn(ra, chunkOf(rg, startLeaf.ColumnIndex), keep, func(row int64, v parquet.Value) { starts[row] = v.Int64() }); err != nil {
			return st, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
		}
		row.RowGroup = g
		for _, k := range keep {
			for i := k[0]; i < k[1]; i++ {
				if matched != nil && !matched[i] {
					continue
				}
				row.Row, row.Start = i, starts[i]
				for j := range pfields {
					row.Values[j] = sc.values[j][i]
				}
				for j := range efields {
					row.Values[len(pfields)+j] = extra[j][i]
				}
				if err := fn(row); err != nil {
					if errors.Is(err, ErrStopScan) {
						return st, nil
					}
					return st, err
				}
			}
		}
	}
	return st, nil
}

// matchedRanges are the ranges of consecutive matched rows of a row group
// of n rows (matched nil: every row).
func matchedRanges(matched []bool, n int64) [][2]int64 {
	if matched == nil {
		return [][2]int64{{0, n}}
	}
	var out [][2]int64
	for i := int64(0); i < n; {
		if !matched[i] {
			i++
			continue
		}
		lo := i
		for i < n && matched[i] {
			i++
		}
		out = append(out, [2]int64{lo, i})
	}
	return out
}

// SpanIDs returns the trace and span IDs of rows of row group g (in the
// order of rows, which must be ascending), reading only the pages holding
// them.
func (r *Reader) SpanIDs(ctx context.Context, g int, rows []int64) (traceIDs [][16]byte, spanIDs [][8]byte, err error) {
	f, cols, err := r.loadFile(ctx)
	if err != nil {
		return nil, nil, err
	}
	if g < 0 || g >= len(f.RowGroups()) {
		return nil, nil, fmt.Errorf("block %s: no row group %d", r.meta.BlockID, g)
	}
	if !slices.IsSorted(rows) {
		return nil, nil, fmt.Errorf("block %s: rows not in order", r.meta.BlockID)
	}
	spanLeaf, ok := f.Schema().Lookup(colSpanID)
	if !ok {
		return nil, nil, fmt.Errorf("block %s: no column %q", r.meta.BlockID, colSpanID)
	}
	ra := r.readerAt(ctx)
	rg := f.RowGroups()[g]
	ranges := make([][2]int64, 0, len(rows))
	for _, row := range rows {
		if len(ranges) > 0 && ranges[len(ranges)-1][1] >= row {
			ranges[len(ranges)-1][1] = max(ranges[len(ranges)-1][1], row+1)
			continue
		}
		ranges = append(ranges, [2]int64{row, row + 1})
	}
	index := map[int64]int{}
	for i, row := range rows {
		if _, ok := index[row]; !ok {
			index[row] = i
		}
	}
	traceIDs, spanIDs = make([][16]byte, len(rows)), make([][8]byte, len(rows))
	fill := func(dst func(i int, b []byte)) func(row int64, v parquet.Value) {
		return func(row int64, v parquet.Value) {
			if i, ok := index[row]; ok {
				dst(i, v.ByteArray())
			}
		}
	}
	if err := eachValueIn(ra, chunkOf(rg, cols.traceID), ranges, fill(func(i int, b []byte) { copy(traceIDs[i][:], b) })); err != nil {
		return nil, nil, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	if err := eachValueIn(ra, chunkOf(rg, spanLeaf.ColumnIndex), ranges, fill(func(i int, b []byte) { copy(spanIDs[i][:], b) })); err != nil {
		return nil, nil, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	for i, row := range rows { // a row asked twice
		if j := index[row]; j != i {
			traceIDs[i], spanIDs[i] = traceIDs[j], spanIDs[j]
		}
	}
	return traceIDs, spanIDs, nil
}
