package block

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/bloom"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spanpred"
)

// This file is the value filters of data.parquet: a split-block bloom
// filter (the Parquet standard's: xxHash64 of the value's bytes, 256-bit
// blocks) per row group for every attribute value column, so that a search
// for a value the row group does not hold skips it without reading the
// column (docs/block-format.md, "Value filters").
//
// weft builds them itself, from the distinct values of each row group,
// and writes them where Parquet keeps bloom filters (the column chunk's
// bloom_filter_offset and bloom_filter_length), between the page indexes
// and the footer. parquet-go's own filters (parquet.BloomFilters) are not
// used: in v0.32.0, once a column's dictionary outgrows
// DictionaryMaxBytes and the writer falls back to plain encoding, the
// filter holds only the values of the dictionary, not those written
// after (60% false negatives in a probe of 100,000 distinct values): the
// very columns that need a filter, those of many distinct values, would
// get a wrong one. It would also size the filter by the count of values,
// not of distinct values, when there is no dictionary.

// writeFilters turns the value filters on; tests turn them off to write
// blocks as weft did before them.
var writeFilters = true

// filterBitsPerValue is the size of a value filter per distinct value:
// about 1% false positives.
const filterBitsPerValue = 10

// filterColumns are the leaf columns with value filters: the values of
// the generic attribute lists and the dedicated string attribute columns.
var filterColumns = func() []string {
	cols := []string{
		colSpanAttrs + ".list.element.value",
		colResourceAttrs + ".list.element.value",
		colServiceName,
	}
	for _, d := range resourceDedicated {
		cols = append(cols, d.column)
	}
	for _, d := range spanDedicated {
		if !d.isInt {
			cols = append(cols, d.column)
		}
	}
	return cols
}()

// filterLeaf maps the leaf column index of each filtered column of pqRow's
// schema to its place in filterColumns.
var filterLeaf = func() map[int]int {
	schema := parquet.SchemaOf(pqRow{})
	m := map[int]int{}
	for i, name := range filterColumns {
		leaf, ok := schema.Lookup(strings.Split(name, ".")...)
		if !ok {
			panic("block: no column " + name)
		}
		m[leaf.ColumnIndex] = i
	}
	return m
}()

// Indexes into filterColumns of the columns filled per row.
const (
	fSpanAttrs = iota
	fResourceAttrs
	fServiceName
	fResourceDedicated // first of len(resourceDedicated)
)

var fSpanDedicated = func() []int {
	idx := make([]int, len(spanDedicated))
	n := fResourceDedicated + len(resourceDedicated)
	for j, d := range spanDedicated {
		idx[j] = -1
		if !d.isInt {
			idx[j] = n
			n++
		}
	}
	return idx
}()

// filterCollector gathers the distinct value hashes of each filtered
// column over the row group being written, and the filters of the row
// groups written.
type filterCollector struct {
	cur       [][]uint64 // per filtered column: hashes of the current row group, with repeats
	resources map[uint64]struct{}
	groups    [][][]byte // per row group, per filtered column: the filter (nil if no value)
	seen      map[uint64]struct{}
}

func newFilterCollector() *filterCollector {
	return &filterCollector{cur: make([][]uint64, len(filterColumns)), resources: map[uint64]struct{}{}, seen: map[uint64]struct{}{}}
}

func hashString(s string) uint64 {
	return bloom.XXH64{}.Sum64(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (fc *filterCollector) add(col int, s string) {
	fc.cur[col] = append(fc.cur[col], hashString(s))
}

// addRows takes the values of rows into the current row group.
func (fc *filterCollector) addRows(rows []pqRow) {
	for i := range rows {
		r := &rows[i]
		for _, a := range r.SpanAttrs {
			fc.add(fSpanAttrs, a.Value)
		}
		for j := range spanDedicated {
			if k := fSpanDedicated[j]; k >= 0 {
				if p := *r.dedicatedString(j); p != nil {
					fc.add(k, *p)
				}
			}
		}
		// The resource columns repeat for every span of a resource:
		// take them once per row group.
		h := bloom.XXH64{}.Sum64(r.Resource)
		if _, ok := fc.resources[h]; ok {
			continue
		}
		fc.resources[h] = struct{}{}
		for _, a := range r.ResourceAttrs {
			fc.add(fResourceAttrs, a.Value)
		}
		if r.ServiceName != nil {
			fc.add(fServiceName, *r.ServiceName)
		}
		for j, p := range [...]*string{r.ResK8sClusterName, r.ResK8sNamespaceName, r.ResK8sPodName, r.ResK8sContainerName} {
			if p != nil {
				fc.add(fResourceDedicated+j, *p)
			}
		}
	}
}

// cut ends the current row group: its filters are built from the distinct
// hashes gathered.
func (fc *filterCollector) cut() {
	g := make([][]byte, len(filterColumns))
	for col, hashes := range fc.cur {
		if len(hashes) == 0 {
			continue
		}
		clear(fc.seen)
		for _, h := range hashes {
			fc.seen[h] = struct{}{}
		}
		f := make(bloom.SplitBlockFilter, bloom.NumSplitBlocksOf(int64(len(fc.seen)), filterBitsPerValue))
		for h := range fc.seen {
			f.Insert(h)
		}
		g[col] = f.Bytes()
		fc.cur[col] = hashes[:0]
	}
	clear(fc.resources)
	fc.groups = append(fc.groups, g)
}

// dataWriter writes a data.parquet: parquet-go's writer for the rows,
// then the value filters spliced in before the footer.
type dataWriter struct {
	pw      *parquet.GenericWriter[pqRow]
	out     *tailWriter
	filters *filterCollector
	pending bool // rows written since the last Flush
}

// Write writes rows to the current row group.
func (w *dataWriter) Write(rows []pqRow) (int, error) {
	if writeFilters {
		w.filters.addRows(rows)
	}
	w.pending = w.pending || len(rows) > 0
	return w.pw.Write(rows)
}

// Flush ends the current row group.
func (w *dataWriter) Flush() error {
	if !w.pending {
		return nil
	}
	if err := w.pw.Flush(); err != nil {
		return err
	}
	w.filters.cut()
	w.pending = false
	return nil
}

// Close writes what is buffered, the page indexes, the filters and the
// footer.
func (w *dataWriter) Close() error {
	if err := w.Flush(); err != nil {
		return err
	}
	if !writeFilters {
		return w.pw.Close()
	}
	w.out.hold()
	if err := w.pw.Close(); err != nil {
		return err
	}
	return w.out.finish(w.filters.groups)
}

// tailWriter passes writes through to w until hold, then keeps them (the
// page indexes and footer parquet-go writes on Close) for finish.
type tailWriter struct {
	w       io.Writer
	n       int64 // bytes passed through
	holding bool
	tail    bytes.Buffer
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if t.holding {
		return t.tail.Write(p)
	}
	n, err := t.w.Write(p)
	t.n += int64(n)
	return n, err
}

func (t *tailWriter) hold() { t.holding = true }

// finish writes the tail held with the filters inserted before the
// footer, and the footer pointing at them.
func (t *tailWriter) finish(groups [][][]byte) error {
	tail := t.tail.Bytes()
	if len(tail) < 8 || string(tail[len(tail)-4:]) != "PAR1" {
		return errors.New("internal error: no Parquet footer at the end of the file")
	}
	footerLen := int(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	footerAt := len(tail) - 8 - footerLen
	if footerAt < 0 {
		return errors.New("internal error: Parquet footer longer than the file's tail")
	}
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), tail[footerAt:len(tail)-8], &md); err != nil {
		return fmt.Errorf("cannot decode the Parquet footer: %w", err)
	}
	if len(md.RowGroups) != len(groups) {
		return fmt.Errorf("internal error: %d row groups written, filters for %d", len(md.RowGroups), len(groups))
	}
	var filters bytes.Buffer
	base := t.n + int64(footerAt)
	header := format.BloomFilterHeader{}
	header.Algorithm.Value = &format.SplitBlockAlgorithm{}
	header.Hash.Value = &format.XxHash{}
	header.Compression.Value = &format.BloomFilterUncompressed{}
	for g, rg := range md.RowGroups {
		for col := range rg.Columns {
			k, ok := filterLeaf[col]
			if !ok || groups[g][k] == nil {
				continue
			}
			bits := groups[g][k]
			header.NumBytes = int32(len(bits))
			h, err := thrift.Marshal(new(thrift.CompactProtocol), &header)
			if err != nil {
				return fmt.Errorf("cannot encode a bloom filter header: %w", err)
			}
			off := base + int64(filters.Len())
			filters.Write(h)
			filters.Write(bits)
			rg.Columns[col].MetaData.BloomFilterOffset = off
			rg.Columns[col].MetaData.BloomFilterLength = int32(len(h) + len(bits))
		}
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		return fmt.Errorf("cannot encode the Parquet footer: %w", err)
	}
	var end [8]byte
	binary.LittleEndian.PutUint32(end[:4], uint32(len(footer)))
	copy(end[4:], "PAR1")
	for _, b := range [][]byte{tail[:footerAt], filters.Bytes(), footer, end[:]} {
		if _, err := t.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// filterRef is the value filter of a column chunk: its bits, read through
// the scan's reader at each test (one 32-byte block per test).
type filterRef struct {
	ra     io.ReaderAt
	off, n int64
}

// filterLoc is where a filter's bits are in data.parquet.
type filterLoc struct{ off, n int64 }

// valueFilter returns the value filter of column col of row group g, nil
// when it has none (a block written before filters, or a column without
// values in the row group). The filter's header is read once per Reader,
// and the bits are read through ra when tested (parquet-go's
// FileColumnChunk.BloomFilterFrom would keep the reader it was first
// given, and with it the context of the first scan).
func (r *Reader) valueFilter(ra io.ReaderAt, f *parquet.File, g, col int) (*filterRef, error) {
	if _, ok := filterLeaf[col]; !ok {
		return nil, nil
	}
	md := chunkMeta(f, g, col)
	if md.BloomFilterOffset <= 0 || md.BloomFilterLength <= 0 {
		return nil, nil
	}
	key := [2]int{g, col}
	if loc, ok := r.filters.Load(key); ok {
		l := loc.(filterLoc)
		return &filterRef{ra: ra, off: l.off, n: l.n}, nil
	}
	head := make([]byte, min(int64(md.BloomFilterLength), 64))
	if _, err := ra.ReadAt(head, md.BloomFilterOffset); err != nil {
		return nil, fmt.Errorf("read bloom filter header of column %d: %w", col, err)
	}
	br := bytes.NewReader(head)
	var h format.BloomFilterHeader
	if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(br)).Decode(&h); err != nil {
		return nil, fmt.Errorf("decode bloom filter header of column %d: %w", col, err)
	}
	if _, ok := h.Algorithm.Value.(*format.SplitBlockAlgorithm); !ok {
		return nil, nil
	}
	if _, ok := h.Hash.Value.(*format.XxHash); !ok {
		return nil, nil
	}
	if _, ok := h.Compression.Value.(*format.BloomFilterUncompressed); !ok {
		return nil, nil
	}
	hlen := int64(len(head) - br.Len())
	if h.NumBytes <= 0 || h.NumBytes%bloom.BlockSize != 0 || hlen+int64(h.NumBytes) != int64(md.BloomFilterLength) {
		return nil, fmt.Errorf("bloom filter of column %d: %d bytes of bits after a %d-byte header, %d in all", col, h.NumBytes, hlen, md.BloomFilterLength)
	}
	l := filterLoc{off: md.BloomFilterOffset + hlen, n: int64(h.NumBytes)}
	r.filters.Store(key, l)
	return &filterRef{ra: ra, off: l.off, n: l.n}, nil
}

// filterTexts are the texts an attribute equal to v can be stored as (the
// generic list's text, or a dedicated string column's value); ok is false
// when they cannot be listed (the filter cannot rule v out).
func filterTexts(v spanpred.Value) (texts []string, ok bool) {
	const exact = 1 << 53 // integers a float64 holds exactly
	switch v.Kind {
	case spanpred.String:
		return []string{v.Str}, true
	case spanpred.Bool:
		return []string{strconv.FormatBool(v.Int != 0)}, true
	case spanpred.Int, spanpred.Duration:
		// Equal to an int of the same value, or to a double of the same
		// value (the engine compares an int and a double as float64s:
		// past 2^53 several ints compare equal to one double).
		if v.Int <= -exact || v.Int >= exact {
			return nil, false
		}
		return []string{strconv.FormatInt(v.Int, 10), string(otlpwire.AppendDouble(nil, float64(v.Int)))}, true
	case spanpred.Float:
		x := v.Float
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		t := []string{string(otlpwire.AppendDouble(nil, x))}
		if x == math.Trunc(x) {
			if x <= -exact || x >= exact {
				return nil, false
			}
			t = append(t, strconv.FormatInt(int64(x), 10))
		}
		return t, true
	}
	return nil, false
}

// filterMayHold reports whether filter bf may hold a value equal to v
// (true when it cannot be read).
func filterMayHold(bf *filterRef, v spanpred.Value) bool {
	texts, ok := filterTexts(v)
	if !ok {
		return true
	}
	for _, t := range texts {
		hit, err := bloom.CheckSplitBlock(io.NewSectionReader(bf.ra, bf.off, bf.n), bf.n, hashString(t))
		if err != nil || hit {
			return true
		}
	}
	return false
}
