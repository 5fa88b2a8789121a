package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spanpred"
)

// This file is the search side of the reader: Scan finds the traces of a
// range of row groups that may satisfy a TraceQL condition, reading as
// little as it can.
//
//  1. Row-group pruning: the condition is tested against what the footer
//     and the dictionary pages say of each field's values (statistics,
//     complete dictionaries, whether a generic attribute key occurs at
//     all); a row group where no span can match is skipped unread.
//  2. Projection: in the other row groups only the columns of the
//     condition's fields are read, and the condition is tested per span.
//  3. Late materialization: the trace_id column is read only when some
//     span matched, and the raw span, resource and scope columns only for
//     the rows of the traces with a matching span.
//
// The traces found are whole (every span of the block's row groups), and
// the caller evaluates the query on them: the condition is necessary, not
// sufficient.

// ScanRequest says what Scan reads.
type ScanRequest struct {
	// Selection picks the traces: with a predicate, those with a span
	// that may satisfy it (nil reads every trace); by trace ID, those
	// named, looked up with the bloom filter and the trace-ID ranges of
	// the row groups instead of scanned.
	spanpred.Selection
	// FirstRowGroup and LastRowGroup bound the row groups scanned,
	// [FirstRowGroup, LastRowGroup); LastRowGroup 0 means to the end.
	FirstRowGroup, LastRowGroup int
	// NewestFirst hands the traces over newest first, for a search that
	// keeps the most recent ones (with a predicate; by trace ID it is
	// ignored): in descending order of their start in their row group,
	// the earliest start_unix_nano of their rows there, found from the
	// start_unix_nano column before any span is read. That start is never
	// earlier than the start of the spans handed over (a trace that
	// continues in a neighbouring row group is handed over whole, once).
	NewestFirst bool
	// Floor, with NewestFirst, is asked before each trace is handed over:
	// once it returns ok, traces starting before floor are not wanted,
	// and Scan ends when every trace left starts before it, skipping the
	// row groups whose largest start_unix_nano (column statistics) is
	// below it unread. A trace starting at floor exactly is handed over.
	Floor func() (floor uint64, ok bool)
}

// ScanStats counts what a Scan did.
type ScanStats struct {
	// BytesRead is what was read from the bucket.
	BytesRead uint64
	// RowGroups were scanned, RowGroupsPruned of them skipped from their
	// statistics, dictionaries and value filters (RowGroupsFiltered of
	// them from value filters, without reading a big dictionary).
	RowGroups, RowGroupsPruned, RowGroupsFiltered int
	// SpansPruned were skipped from page statistics (column index) in
	// row groups that were not pruned whole.
	SpansPruned int64
	// SpansTested were tested against the condition; SpansMatched passed.
	SpansTested, SpansMatched int64
}

// ErrStopScan, returned by a Scan callback, ends the scan without error.
var ErrStopScan = errors.New("stop scan")

// Scan calls fn with the ID and the spans (an OTLP TracesData message) of
// each trace of the requested row groups that req selects, in block
// order. fn returning ErrStopScan ends the scan early; another error ends
// it with that error.
func (r *Reader) Scan(ctx context.Context, req ScanRequest, fn func(id [16]byte, data []byte) error) (st ScanStats, err error) {
	if req.ByTraceID {
		return r.scanTraceIDs(ctx, req, fn)
	}
	f, cols, err := r.loadFile(ctx)
	if err != nil {
		return st, err
	}
	ra := r.readerAt(ctx)
	defer func() { st.BytesRead = ra.bytesRead.Load() }()
	last := lastRowGroup(f, req.LastRowGroup)
	fields, err := r.predFields(f, req.Pred)
	if err != nil {
		return st, err
	}
	var sc scanScratch
	if req.NewestFirst {
		err = r.scanNewest(ctx, ra, f, cols, max(req.FirstRowGroup, 0), last, req, fields, &st, &sc, fn)
		if errors.Is(err, ErrStopScan) {
			err = nil
		}
		return st, err
	}
	for g := max(req.FirstRowGroup, 0); g < last; g++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.RowGroups++
		err = r.scanRowGroup(ctx, ra, f, cols, g, req.Pred, req.MinSpans, fields, &st, &sc, fn)
		if errors.Is(err, ErrStopScan) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// lastRowGroup is the end of a scan's row groups: last, or the file's
// count when last is 0 or beyond it.
func lastRowGroup(f *parquet.File, last int) int {
	if last <= 0 || last > len(f.RowGroups()) {
		return len(f.RowGroups())
	}
	return last
}

// predFields are the columns of pred's fields, none for a nil pred.
func (r *Reader) predFields(f *parquet.File, pred spanpred.Predicate) ([]fieldColumns, error) {
	if pred == nil {
		return nil, nil
	}
	fields, err := lookupFields(f, pred.Fields())
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", r.meta.BlockID, err)
	}
	return fields, nil
}

func (r *Reader) scanRowGroup(ctx context.Context, ra *objectReaderAt, f *parquet.File, cols leafColumns, g int,
	cond spanpred.Predicate, minSpans int, fields []fieldColumns, st *ScanStats, sc *scanScratch, fn func(id [16]byte, data []byte) error) error {
	rg := f.RowGroups()[g]
	n := rg.NumRows()
	matched, hit, err := r.matchRows(ctx, ra, f, g, cond, fields, st, sc)
	if err != nil || !hit {
		return err
	}
	sc.ids, err = readTraceIDs(ra, chunkOf(rg, cols.traceID), n, sc.ids)
	if err != nil {
		return fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	ids := sc.ids
	traces := r.fewMatchesOut(traceRanges(ids, matched), ids, matched, g, minSpans)
	var tb otlpwire.Builder
	for _, cl := range clusters(traces, 512, maxClusterRows) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var raw spanSet
		if err := r.readRaw(ra, f, g, cols, cl[0][0], cl[len(cl)-1][1], &raw); err != nil {
			return err
		}
		base := cl[0][0]
		for _, tr := range cl {
			id := ids[tr[0]]
			var data []byte
			if (tr[0] == 0 && g > 0 && r.inRowGroup(id, g-1)) || (tr[1] == n && r.inRowGroup(id, g+1)) {
				// The trace continues in a neighbouring row group.
				if data, err = r.FindTraceByID(ctx, id); err != nil {
					return err
				}
			} else {
				one := spanSet{spans: raw.spans[tr[0]-base : tr[1]-base]}
				data = one.appendTraces(&tb)
			}
			if err := fn(id, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// fewMatchesOut drops from traces (row ranges of row group g) those with
// fewer than minSpans matched rows (Selection.MinSpans), but for the
// traces that continue in a neighbouring row group, whose other rows are
// not counted.
func (r *Reader) fewMatchesOut(traces [][2]int64, ids [][16]byte, matched []bool, g, minSpans int) [][2]int64 {
	if minSpans <= 1 || matched == nil {
		return traces
	}
	n := int64(len(ids))
	return slices.DeleteFunc(traces, func(tr [2]int64) bool {
		id := ids[tr[0]]
		if (tr[0] == 0 && r.inRowGroup(id, g-1)) || (tr[1] == n && r.inRowGroup(id, g+1)) {
			return false
		}
		k := 0
		for _, m := range matched[tr[0]:tr[1]] {
			if m {
				k++
			}
		}
		return k < minSpans
	})
}

// memoKey identifies a value of a field by its kind, integer and the
// place and length of its string: equal keys are equal values (two
// copies of a string only take two entries).
type memoKey struct {
	kind spanpred.Kind
	str  *byte
	n    int
	i    int64
}

// maxMemo bounds the combinations of values whose test matchRows
// remembers, and maxMemoFields the fields of a condition it remembers
// them for.
const (
	maxMemo       = 1024
	maxMemoFields = 4
)

// memoTuple is the key of a combination of up to maxMemoFields values.
type memoTuple [maxMemoFields]memoKey

// traceRanges returns the row ranges of the traces (runs of equal IDs)
// with a matched row (matched nil: every trace).
func traceRanges(ids [][16]byte, matched []bool) [][2]int64 {
	var traces [][2]int64
	n := int64(len(ids))
	for lo := int64(0); lo < n; {
		hi := lo + 1
		hit := matched == nil || matched[lo]
		for hi < n && ids[hi] == ids[lo] {
			hit = hit || matched[hi]
			hi++
		}
		if hit {
			traces = append(traces, [2]int64{lo, hi})
		}
		lo = hi
	}
	return traces
}

// scanScratch holds the per-row buffers of a scan, reused from one row group
// to the next (fresh ones cost a third of a most_recent scan of a
// compacted block in allocation and garbage collection).
type scanScratch struct {
	values  [][]spanpred.Value // of each field
	matched []bool
	ids     [][16]byte
	starts  []uint64
}

// resize returns s with length n, its elements zero, reusing its array
// when it is big enough.
func resize[T any](s []T, n int64) []T {
	if int64(cap(s)) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// readTraceIDs reads the n trace IDs of a trace_id column chunk into buf
// (resized).
func readTraceIDs(ra *objectReaderAt, chunk *parquet.FileColumnChunk, n int64, buf [][16]byte) ([][16]byte, error) {
	ids := resize(buf, n)
	err := eachPage(ra, chunk, func(row int64, page parquet.Page) error {
		if data := page.Data(); page.NumNulls() == 0 && page.Dictionary() == nil && data.Kind() == encoding.FixedLenByteArray {
			if b, size := data.FixedLenByteArray(); size == 16 {
				for i := int64(0); (i+1)*16 <= int64(len(b)) && row+i < n; i++ {
					ids[row+i] = [16]byte(b[i*16 : (i+1)*16])
				}
				return nil
			}
		}
		return eachBytes(page, func(i int, v []byte) bool {
			if row+int64(i) < n && len(v) == 16 {
				ids[row+int64(i)] = [16]byte(v)
			}
			return true
		})
	})
	return ids, err
}

// matchRows tests cond on the rows of row group g: matched says which rows
// passed (nil: every row, cond being nil), hit whether any did.
func (r *Reader) matchRows(ctx context.Context, ra *objectReaderAt, f *parquet.File, g int,
	cond spanpred.Predicate, fields []fieldColumns, st *ScanStats, sc *scanScratch) (matched []bool, hit bool, err error) {
	rg := f.RowGroups()[g]
	n := rg.NumRows()
	if cond != nil {
		domains := make([]spanpred.Domain, len(fields))
		generic := make([]bool, len(fields))
		// First from value filters in place of big dictionaries, then,
		// if a filter was used and the condition may still match, from
		// the dictionaries.
		for _, preferFilter := range []bool{true, false} {
			usedFilter := false
			for i := range fields {
				var used bool
				if domains[i], generic[i], used, err = fields[i].domain(r, ra, f, g, preferFilter); err != nil {
					return nil, false, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
				}
				usedFilter = usedFilter || used
			}
			if !cond.MayMatch(domains) {
				st.RowGroupsPruned++
				if preferFilter && usedFilter {
					st.RowGroupsFiltered++
				}
				return nil, false, nil
			}
			if !usedFilter {
				break
			}
		}
		keep, err := keepRows(ra, rg, cond, fields, domains, generic)
		if err != nil {
			return nil, false, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
		}
		kept := int64(0)
		for _, k := range keep {
			kept += k[1] - k[0]
		}
		st.SpansPruned += n - kept
		if kept == 0 {
			return nil, false, nil
		}
		if len(sc.values) < len(fields) {
			sc.values = make([][]spanpred.Value, len(fields))
		}
		rows := sc.values[:len(fields)]
		for i := range fields {
			v, err := fields[i].read(ra, f, g, generic[i], keep, rows[i])
			if err != nil {
				return nil, false, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
			}
			rows[i] = v
		}
		sc.matched = resize(sc.matched, n)
		matched = sc.matched
		row := make([]spanpred.Value, len(fields))
		// A condition is tested once per distinct combination of its
		// fields' values (the values of string and enum columns repeat:
		// service names, routes, statuses), for up to maxMemoFields
		// fields. Strings are told apart by where they are, not hashed:
		// the rows of one dictionary entry share its string. The first
		// few combinations are looked up in a short list, the others in
		// a map (hashing took a quarter of a most_recent scan).
		var memo map[memoTuple]bool
		var few [16]struct {
			key memoTuple
			ok  bool
		}
		nfew := 0
		if len(fields) <= maxMemoFields {
			memo = map[memoTuple]bool{}
		}
		for _, k := range keep {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
			for i := k[0]; i < k[1]; i++ {
				var key memoTuple
				memoize := memo != nil
				for j := range fields {
					v := rows[j][i]
					row[j] = v
					if v.Kind == spanpred.Float { // NaN is no map key
						memoize = false
					} else if memoize {
						key[j] = memoKey{kind: v.Kind, str: unsafe.StringData(v.Str), n: len(v.Str), i: v.Int}
					}
				}
				var ok bool
				if memoize {
					known := false
					for _, e := range few[:nfew] {
						if e.key == key {
							ok, known = e.ok, true
							break
						}
					}
					if !known {
						if ok, known = memo[key]; !known {
							ok = cond.Match(row)
							if nfew < len(few) {
								few[nfew].key, few[nfew].ok = key, ok
								nfew++
							} else {
								memo[key] = ok
							}
							if len(memo) > maxMemo { // values seldom repeat
								memo = nil
							}
						}
					}
				} else {
					ok = cond.Match(row)
				}
				if ok {
					matched[i], hit = true, true
					st.SpansMatched++
				}
			}
		}
		st.SpansTested += kept
		return matched, hit, nil
	}
	return nil, true, nil
}

// scanTraceIDs is Scan by trace ID: each trace named whose first row group
// in the block is one of the requested ones is read whole with
// FindTraceByID, so that a trace cut over row groups of several jobs is
// handed over once. The predicate is not tested: the engine decides.
func (r *Reader) scanTraceIDs(ctx context.Context, req ScanRequest, fn func(id [16]byte, data []byte) error) (st ScanStats, err error) {
	last := req.LastRowGroup
	if last <= 0 || last > len(r.ranges) {
		last = len(r.ranges)
	}
	first := max(req.FirstRowGroup, 0)
	st.RowGroups = max(last-first, 0)
	ids := slices.Clone(req.TraceIDs)
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	var read uint64
	defer func() { st.BytesRead = read }()
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		g := slices.IndexFunc(r.ranges, func(rg [2][16]byte) bool {
			return bytes.Compare(id[:], rg[0][:]) >= 0 && bytes.Compare(id[:], rg[1][:]) <= 0
		})
		if g < first || g >= last {
			continue
		}
		data, n, err := r.findTrace(ctx, id)
		read += n
		if err != nil {
			return st, err
		}
		if data == nil {
			continue
		}
		if err := fn(id, data); err != nil {
			if errors.Is(err, ErrStopScan) {
				return st, nil
			}
			return st, err
		}
	}
	return st, nil
}

// inRowGroup reports whether row group g exists and its trace-ID range
// holds id.
func (r *Reader) inRowGroup(id [16]byte, g int) bool {
	if g < 0 || g >= len(r.ranges) {
		return false
	}
	return bytes.Compare(id[:], r.ranges[g][0][:]) >= 0 && bytes.Compare(id[:], r.ranges[g][1][:]) <= 0
}

// maxClusterRows bounds the rows of one read of the raw columns, so that a
// scan stopped early (enough traces found) has not read the whole row
// group: about one page of the span column.
const maxClusterRows = 1024

// clusters groups sorted row ranges whose gaps are under gap rows, so that
// each group is read with one pass over the pages; a group spans at most
// maxRows rows unless one range alone is longer.
func clusters(ranges [][2]int64, gap, maxRows int64) [][][2]int64 {
	var out [][][2]int64
	for i, rg := range ranges {
		if i > 0 && rg[0]-ranges[i-1][1] < gap {
			cur := out[len(out)-1]
			if rg[1]-cur[0][0] <= maxRows {
				out[len(out)-1] = append(cur, rg)
				continue
			}
		}
		out = append(out, [][2]int64{rg})
	}
	return out
}

// fieldColumns are the columns holding one condition field.
type fieldColumns struct {
	ref spanpred.Field
	// flat is the column of an intrinsic or a dedicated attribute column
	// (-1 if none); kind says how to read it.
	flat int
	kind flatKind
	// generic are the key, value and type leaf columns of span_attrs or
	// resource_attrs, for an attribute (key -1 for an intrinsic).
	key, value, typ int
}

type flatKind int

const (
	kindString flatKind = iota
	kindInt
	kindDuration
	kindStatus
	kindSpanKind
)

func lookupFields(f *parquet.File, refs []spanpred.Field) ([]fieldColumns, error) {
	leaf := func(path ...string) (int, error) {
		l, ok := f.Schema().Lookup(path...)
		if !ok {
			return 0, fmt.Errorf("no column %q", path)
		}
		return l.ColumnIndex, nil
	}
	out := make([]fieldColumns, len(refs))
	for i, ref := range refs {
		fc := fieldColumns{ref: ref, flat: -1, key: -1, value: -1, typ: -1}
		var col string
		switch ref.Intrinsic {
		case spanpred.IntrinsicDuration:
			col, fc.kind = colDuration, kindDuration
		case spanpred.IntrinsicName:
			col = colName
		case spanpred.IntrinsicStatusMessage:
			col = colStatusMessage
		case spanpred.IntrinsicStatus:
			col, fc.kind = colStatusCode, kindStatus
		case spanpred.IntrinsicKind:
			col, fc.kind = colKind, kindSpanKind
		case spanpred.IntrinsicNone:
			list := colSpanAttrs
			var ded []dedicatedColumn
			var idx map[string]int
			if ref.Resource {
				list, ded, idx = colResourceAttrs, resourceDedicated[:], resourceDedicatedIndex
			} else {
				ded, idx = spanDedicated[:], spanDedicatedIndex
			}
			if j, ok := idx[ref.Name]; ok {
				col = ded[j].column
				if ded[j].isInt {
					fc.kind = kindInt
				}
			} else if ref.Resource && ref.Name == serviceNameAttr {
				col = colServiceName
			}
			var err error
			if fc.key, err = leaf(list, "list", "element", "key"); err != nil {
				return nil, err
			}
			if fc.value, err = leaf(list, "list", "element", "value"); err != nil {
				return nil, err
			}
			if fc.typ, err = leaf(list, "list", "element", "type"); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("field %+v is not stored per span", ref)
		}
		if col != "" {
			c, err := leaf(col)
			if err != nil {
				return nil, err
			}
			fc.flat = c
		}
		out[i] = fc
	}
	return out, nil
}

// fullDictionary reports whether every data page of a column chunk is
// dictionary-encoded, so that its dictionary lists every value.
func fullDictionary(md *format.ColumnMetaData) bool {
	if md.DictionaryPageOffset <= 0 || len(md.EncodingStats) == 0 {
		return false
	}
	for _, s := range md.EncodingStats {
		if (s.PageType == format.DataPage || s.PageType == format.DataPageV2) &&
			s.Encoding != format.RLEDictionary && s.Encoding != format.PlainDictionary {
			return false
		}
	}
	return true
}

// dictionary returns the values of the dictionary of column col of row
// group g, or ok false when it does not list every value of the chunk.
func dictionary(ra *objectReaderAt, f *parquet.File, g, col int) (values []parquet.Value, ok bool, err error) {
	md := chunkMeta(f, g, col)
	if !fullDictionary(md) {
		return nil, false, nil
	}
	chunk := chunkOf(f.RowGroups()[g], col)
	// Fetch the dictionary page alone: the page reader reads ahead.
	cache := newRangeCache(ra)
	if err := cache.fetch([][2]int64{{md.DictionaryPageOffset, md.DataPageOffset}}); err != nil {
		return nil, false, fmt.Errorf("read dictionary of column %d: %w", col, err)
	}
	pages := chunk.PagesFrom(cache)
	defer pages.Close()
	dict, err := pages.ReadDictionary()
	if err != nil {
		return nil, false, fmt.Errorf("read dictionary of column %d: %w", col, err)
	}
	if dict == nil {
		return nil, false, nil
	}
	values = make([]parquet.Value, dict.Len())
	for i := range values {
		values[i] = dict.Index(int32(i)).Clone()
	}
	return values, true, nil
}

// domain is what the row group's metadata, dictionaries and value
// filters say of the field's values: the values of its flat column
// (dictionary, else statistics, else its value filter) and, when its key
// occurs in the generic attribute list, every value of that list that
// could be it (dictionary, else the list's value filter). With a filter
// the domain is not Known but has MayHold, which rules values out.
//
// generic reports whether the key occurs in the generic list (or may).
//
// With preferFilter, a column whose dictionary is big (over
// filterFirstBytes) is described by its value filter instead, when it has
// one, and used reports whether one was: a cheap first test, which rules
// out the values a search for equality names without reading the
// dictionary of a high-cardinality column; the dictionaries are read
// only when it passes (they also rule out ranges and regular
// expressions).
func (fc *fieldColumns) domain(r *Reader, ra *objectReaderAt, f *parquet.File, g int, preferFilter bool) (d spanpred.Domain, generic, used bool, err error) {
	unknown := spanpred.Domain{}
	var parts domainParts
	if fc.flat >= 0 {
		chunk := chunkOf(f.RowGroups()[g], fc.flat)
		if chunk.NumValues() == 0 || chunk.NullCount() < chunk.NumValues() {
			if preferFilter && bigDictionary(f, g, fc.flat) {
				if bf, err := fc.filter(r, ra, f, g, fc.flat); err != nil {
					return unknown, true, false, err
				} else if bf != nil {
					parts.filters = append(parts.filters, bf)
					goto generic
				}
			}
			values, ok, err := dictionary(ra, f, g, fc.flat)
			if err != nil {
				return unknown, true, false, err
			}
			if ok {
				for _, v := range values {
					parts.values = append(parts.values, fc.flatValue(v))
				}
			} else if lo, hi, ok := chunk.Bounds(); ok && (fc.kind == kindInt || fc.kind == kindDuration && lo.Int64() >= 0) {
				parts.bounded = true
				parts.min, parts.max = fc.flatValue(lo), fc.flatValue(hi)
			} else if bf, err := fc.filter(r, ra, f, g, fc.flat); err != nil || bf == nil {
				return unknown, true, false, err
			} else {
				parts.filters = append(parts.filters, bf)
			}
		}
	}
generic:
	used = len(parts.filters) > 0
	if fc.key < 0 {
		return parts.domain(), false, used, nil
	}
	keys, ok, err := dictionary(ra, f, g, fc.key)
	if err != nil || !ok {
		return unknown, true, used, err
	}
	if !slices.ContainsFunc(keys, func(k parquet.Value) bool { return string(k.ByteArray()) == fc.ref.Name }) {
		return parts.domain(), false, used, nil // only the flat column holds the attribute
	}
	types, ok, err := dictionary(ra, f, g, fc.typ)
	if err != nil || !ok || parts.bounded {
		return unknown, true, used, err
	}
	for _, t := range types {
		if t.Int32() > 4 { // arrays, kvlists, bytes
			return unknown, true, used, nil
		}
	}
	if preferFilter && bigDictionary(f, g, fc.value) {
		if bf, err := fc.filter(r, ra, f, g, fc.value); err != nil {
			return unknown, true, used, err
		} else if bf != nil {
			parts.filters = append(parts.filters, bf)
			return parts.domain(), true, true, nil
		}
	}
	values, ok, err := dictionary(ra, f, g, fc.value)
	if err != nil {
		return unknown, true, used, err
	}
	if !ok {
		bf, err := fc.filter(r, ra, f, g, fc.value)
		if err != nil || bf == nil {
			return unknown, true, used, err
		}
		parts.filters = append(parts.filters, bf)
		return parts.domain(), true, true, nil
	}
	for _, v := range values {
		text := string(v.ByteArray())
		parts.values = append(parts.values, spanpred.StringValue(text))
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			parts.values = append(parts.values, spanpred.IntValue(i))
		}
		if x, err := strconv.ParseFloat(text, 64); err == nil {
			parts.values = append(parts.values, spanpred.FloatValue(x))
		}
		if text == "true" || text == "false" {
			parts.values = append(parts.values, spanpred.BoolValue(text == "true"))
		}
	}
	return parts.domain(), true, used, nil
}

// filterFirstBytes is the size of a dictionary page past which a column's
// value filter is tested before its dictionary is read (see domain): a
// test reads about 1 KiB.
const filterFirstBytes = 64 << 10

// bigDictionary reports whether column col of row group g has no
// dictionary that lists every value, or one over filterFirstBytes.
func bigDictionary(f *parquet.File, g, col int) bool {
	md := chunkMeta(f, g, col)
	return !fullDictionary(md) || md.DataPageOffset-md.DictionaryPageOffset > filterFirstBytes
}

// filter is the value filter of column col of row group g, nil when there
// is none (a string column only: the filters hold texts).
func (fc *fieldColumns) filter(r *Reader, ra *objectReaderAt, f *parquet.File, g, col int) (*filterRef, error) {
	if col == fc.flat && fc.kind != kindString {
		return nil, nil
	}
	return r.valueFilter(ra, f, g, col)
}

// domainParts are what domain found of a field's values: values listed,
// bounds, or value filters.
type domainParts struct {
	values   []spanpred.Value
	bounded  bool
	min, max spanpred.Value
	filters  []*filterRef
}

func (p *domainParts) domain() spanpred.Domain {
	switch {
	case p.bounded:
		return spanpred.Domain{Known: true, Bounded: true, Min: p.min, Max: p.max}
	case len(p.filters) == 0:
		return spanpred.Domain{Known: true, Values: p.values}
	}
	values, filters := p.values, p.filters
	return spanpred.Domain{MayHold: func(v spanpred.Value) bool {
		for _, x := range values {
			if mayEqual(x, v) {
				return true
			}
		}
		for _, bf := range filters {
			if filterMayHold(bf, v) {
				return true
			}
		}
		return false
	}}
}

// mayEqual reports whether stored value x may compare equal to v: as the
// engine compares, numbers of different kinds as float64s, an unknown
// value as anything.
func mayEqual(x, v spanpred.Value) bool {
	numeric := func(k spanpred.Kind) bool {
		return k == spanpred.Int || k == spanpred.Float || k == spanpred.Duration
	}
	switch {
	case x.Kind == spanpred.Unknown:
		return true
	case x.Kind == v.Kind:
		return x.Str == v.Str && x.Int == v.Int && (x.Kind != spanpred.Float || x.Float == v.Float)
	case numeric(x.Kind) && numeric(v.Kind):
		a, b := float64(x.Int), float64(v.Int)
		if x.Kind == spanpred.Float {
			a = x.Float
		}
		if v.Kind == spanpred.Float {
			b = v.Float
		}
		return a == b
	}
	return false
}

// flatValue converts a value of the flat column.
func (fc *fieldColumns) flatValue(v parquet.Value) spanpred.Value {
	if v.IsNull() {
		return spanpred.Value{}
	}
	switch fc.kind {
	case kindInt:
		return spanpred.IntValue(v.Int64())
	case kindDuration:
		d := v.Int64()
		if d < 0 {
			d = 0 // as Span.DurationNanos
		}
		return spanpred.DurationValue(d)
	case kindStatus:
		return spanpred.StatusValue(v.Int32())
	case kindSpanKind:
		return spanpred.SpanKindValue(v.Int32())
	}
	return spanpred.StringValue(string(v.ByteArray()))
}

// read returns the field's value for every row of row group g, in buf
// (resized).
// With generic, the rows the flat column leaves missing are looked up in
// the generic list. Only the pages of the flat column holding rows in keep
// are read; other rows are left missing.
func (fc *fieldColumns) read(ra *objectReaderAt, f *parquet.File, g int, generic bool, keep [][2]int64, buf []spanpred.Value) ([]spanpred.Value, error) {
	rg := f.RowGroups()[g]
	out := resize(buf, rg.NumRows())
	if fc.flat >= 0 {
		chunk := chunkOf(rg, fc.flat)
		whole := len(keep) == 1 && keep[0][0] == 0 && keep[0][1] >= rg.NumRows()
		if fc.kind == kindString && whole && !(chunk.NumValues() > 0 && chunk.NullCount() == chunk.NumValues()) {
			if err := fc.readDictionary(ra, chunk, out); err != nil {
				return nil, err
			}
		} else if !(chunk.NumValues() > 0 && chunk.NullCount() == chunk.NumValues()) {
			strs := map[string]spanpred.Value{}
			err := eachValueIn(ra, chunk, keep, func(row int64, v parquet.Value) {
				if fc.kind == kindString && !v.IsNull() {
					if s, ok := strs[string(v.ByteArray())]; ok {
						out[row] = s
						return
					}
					s := fc.flatValue(v)
					strs[s.Str] = s
					out[row] = s
					return
				}
				out[row] = fc.flatValue(v)
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if fc.key < 0 || !generic {
		return out, nil
	}
	return out, fc.readGeneric(ra, rg, out)
}

// readDictionary sets out[row] to the value of every row of a string
// column chunk: the values of a dictionary page are converted once, each
// row taking its value by index (no string hashed or copied per row).
func (fc *fieldColumns) readDictionary(ra *objectReaderAt, chunk *parquet.FileColumnChunk, out []spanpred.Value) error {
	var dict parquet.Dictionary
	var vals []spanpred.Value
	var have []bool
	return eachPage(ra, chunk, func(row int64, page parquet.Page) error {
		if d := page.Dictionary(); d != nil && page.NumNulls() == 0 {
			if d != dict {
				dict, vals, have = d, make([]spanpred.Value, d.Len()), make([]bool, d.Len())
			}
			data := page.Data()
			for i, idx := range data.Int32() {
				if !have[idx] {
					vals[idx], have[idx] = fc.flatValue(d.Index(idx)), true
				}
				out[row+int64(i)] = vals[idx]
			}
			return nil
		}
		return eachPageValue(page, func(i int64, v parquet.Value) {
			out[row+i] = fc.flatValue(v)
		})
	})
}

// eachPage calls fn with each page of a non-repeated column chunk and the
// row of its first value. Pages are released after fn returns.
func eachPage(ra *objectReaderAt, chunk *parquet.FileColumnChunk, fn func(row int64, page parquet.Page) error) error {
	pages := chunk.PagesFrom(ra)
	defer pages.Close()
	row := int64(0)
	for {
		page, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read column %d: %w", chunk.Column(), err)
		}
		err = fn(row, page)
		row += page.NumRows()
		parquet.Release(page)
		if err != nil {
			return err
		}
	}
}

// eachPageValue calls fn with each value of a page of a non-repeated
// column and its index in the page.
func eachPageValue(page parquet.Page, fn func(i int64, v parquet.Value)) error {
	buf := make([]parquet.Value, 1024)
	vr := page.Values()
	i := int64(0)
	for {
		k, err := vr.ReadValues(buf)
		for _, v := range buf[:k] {
			fn(i, v)
			i++
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read column %d: %w", page.Column(), err)
		}
	}
}

// readGeneric fills the rows whose value is still missing with the first
// entry of the generic list with the field's key.
func (fc *fieldColumns) readGeneric(ra *objectReaderAt, rg parquet.RowGroup, out []spanpred.Value) error {
	keys, err := listValues(ra, chunkOf(rg, fc.key))
	if err != nil {
		return err
	}
	// Find the (row, entry) of each row's first matching key.
	type hit struct{ row, entry int64 }
	var hits []hit
	seen := int64(-1)
	for i, k := range keys.vals {
		row := keys.rows[i]
		if row != seen && !k.IsNull() && string(k.ByteArray()) == fc.ref.Name && out[row].Kind == spanpred.Missing {
			hits = append(hits, hit{row, int64(i)})
			seen = row
		}
	}
	if len(hits) == 0 {
		return nil
	}
	vals, err := listValues(ra, chunkOf(rg, fc.value))
	if err != nil {
		return err
	}
	types, err := listValues(ra, chunkOf(rg, fc.typ))
	if err != nil {
		return err
	}
	if len(vals.vals) != len(keys.vals) || len(types.vals) != len(keys.vals) {
		return fmt.Errorf("attribute list columns disagree: %d keys, %d values, %d types", len(keys.vals), len(vals.vals), len(types.vals))
	}
	for _, h := range hits {
		out[h.row] = genericValue(string(vals.vals[h.entry].ByteArray()), types.vals[h.entry].Int32())
	}
	return nil
}

// genericValue rebuilds an attribute value from its text and type (the
// AnyValue field number; see docs/block-format.md).
func genericValue(text string, typ int32) spanpred.Value {
	switch typ {
	case 0:
		return spanpred.Value{}
	case 1:
		return spanpred.StringValue(text)
	case 2:
		return spanpred.BoolValue(text == "true")
	case 3:
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return spanpred.IntValue(i)
		}
	case 4:
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return spanpred.FloatValue(f)
		}
	}
	return spanpred.UnknownValue()
}

// listColumn is the values of a list leaf column, each with its row.
type listColumn struct {
	vals []parquet.Value
	rows []int64
}

// listValues reads a repeated leaf column: one entry per list element, a
// null for an empty list.
func listValues(ra *objectReaderAt, chunk *parquet.FileColumnChunk) (listColumn, error) {
	var lc listColumn
	row := int64(-1)
	err := eachValue(ra, chunk, func(_ int64, v parquet.Value) {
		if v.RepetitionLevel() == 0 {
			row++
		}
		lc.vals = append(lc.vals, v.Clone())
		lc.rows = append(lc.rows, row)
	})
	return lc, err
}

// eachValueIn calls fn with the value of each row in ranges (sorted,
// disjoint) of a non-repeated column chunk, reading only the pages that
// hold them (offset index).
func eachValueIn(ra *objectReaderAt, chunk *parquet.FileColumnChunk, ranges [][2]int64, fn func(row int64, v parquet.Value)) error {
	if len(ranges) == 1 && ranges[0][0] == 0 && ranges[0][1] >= chunk.NumValues() {
		return eachValue(ra, chunk, fn)
	}
	if _, err := chunk.OffsetIndexFrom(ra); err != nil {
		return fmt.Errorf("read offset index of column %d: %w", chunk.Column(), err)
	}
	pages := chunk.PagesFrom(ra)
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	for _, rg := range ranges {
		if err := pages.SeekToRow(rg[0]); err != nil {
			return fmt.Errorf("read column %d: %w", chunk.Column(), err)
		}
		row := rg[0]
		for row < rg[1] {
			page, err := pages.ReadPage()
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("read column %d: %w", chunk.Column(), err)
			}
			vr := page.Values()
			for row < rg[1] {
				k, err := vr.ReadValues(buf[:min(int64(len(buf)), rg[1]-row)])
				for _, v := range buf[:k] {
					fn(row, v)
					row++
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					parquet.Release(page)
					return fmt.Errorf("read column %d: %w", chunk.Column(), err)
				}
			}
			parquet.Release(page)
		}
	}
	return nil
}

// keepRows returns the row ranges of a row group that the column index
// (per-page minimum and maximum) of the condition's numeric and enum
// fields does not rule out: a page whose bounds, put in place of the row
// group's domain of its field, make the condition impossible excludes its
// rows.
func keepRows(ra *objectReaderAt, rg parquet.RowGroup, cond spanpred.Predicate, fields []fieldColumns, domains []spanpred.Domain, generic []bool) ([][2]int64, error) {
	n := rg.NumRows()
	var excluded []bool
	for i, fc := range fields {
		if fc.flat < 0 || generic[i] || fc.kind == kindString {
			continue
		}
		chunk := chunkOf(rg, fc.flat)
		ci, err := chunk.ColumnIndexFrom(ra)
		if errors.Is(err, parquet.ErrMissingColumnIndex) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read column index of column %d: %w", fc.flat, err)
		}
		oi, err := chunk.OffsetIndexFrom(ra)
		if err != nil {
			return nil, fmt.Errorf("read offset index of column %d: %w", fc.flat, err)
		}
		saved := domains[i]
		for p := range ci.NumPages() {
			d, ok := pageDomain(fc.kind, ci, p)
			if !ok {
				continue
			}
			domains[i] = d
			if cond.MayMatch(domains) {
				continue
			}
			if excluded == nil {
				excluded = make([]bool, n)
			}
			end := n
			if p+1 < oi.NumPages() {
				end = oi.FirstRowIndex(p + 1)
			}
			for row := oi.FirstRowIndex(p); row < end; row++ {
				excluded[row] = true
			}
		}
		domains[i] = saved
	}
	if excluded == nil {
		return [][2]int64{{0, n}}, nil
	}
	var keep [][2]int64
	for row := int64(0); row < n; {
		if excluded[row] {
			row++
			continue
		}
		lo := row
		for row < n && !excluded[row] {
			row++
		}
		keep = append(keep, [2]int64{lo, row})
	}
	return keep, nil
}

// pageDomain is the domain of a numeric or enum field over page p.
func pageDomain(kind flatKind, ci parquet.ColumnIndex, p int) (spanpred.Domain, bool) {
	if ci.NullPage(p) {
		return spanpred.Domain{Known: true}, true
	}
	lo, hi := ci.MinValue(p).Int64(), ci.MaxValue(p).Int64()
	switch kind {
	case kindInt:
		return spanpred.Domain{Known: true, Bounded: true, Min: spanpred.IntValue(lo), Max: spanpred.IntValue(hi)}, true
	case kindDuration:
		if lo < 0 {
			return spanpred.Domain{}, false
		}
		return spanpred.Domain{Known: true, Bounded: true, Min: spanpred.DurationValue(lo), Max: spanpred.DurationValue(hi)}, true
	case kindStatus, kindSpanKind:
		lo, hi = int64(ci.MinValue(p).Int32()), int64(ci.MaxValue(p).Int32())
		if hi-lo > 8 {
			return spanpred.Domain{}, false
		}
		d := spanpred.Domain{Known: true}
		for v := lo; v <= hi; v++ {
			if kind == kindStatus {
				d.Values = append(d.Values, spanpred.StatusValue(int32(v)))
			} else {
				d.Values = append(d.Values, spanpred.SpanKindValue(int32(v)))
			}
		}
		return d, true
	}
	return spanpred.Domain{}, false
}

// eachValue calls fn with every value of a column chunk and the row it
// belongs to (counting rows by repetition level 0; for a repeated column
// fn sees each element). Values point into pages that are released after
// fn returns.
func eachValue(ra *objectReaderAt, chunk *parquet.FileColumnChunk, fn func(row int64, v parquet.Value)) error {
	pages := chunk.PagesFrom(ra)
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	row := int64(-1)
	for {
		page, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read column %d: %w", chunk.Column(), err)
		}
		vr := page.Values()
		for {
			k, err := vr.ReadValues(buf)
			for _, v := range buf[:k] {
				if v.RepetitionLevel() == 0 {
					row++
				}
				fn(row, v)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(page)
				return fmt.Errorf("read column %d: %w", chunk.Column(), err)
			}
		}
		parquet.Release(page)
	}
}
