package block

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/storage"
)

// footerReadBytes is how much of the end of data.parquet Open's first
// lookup reads at once, hoping it holds the whole footer.
const footerReadBytes = 64 << 10

// Reader reads one block. It is safe for concurrent use. The bloom filter
// and the Parquet footer are read on first use and kept; page indexes of
// the column chunks a lookup touches are kept too.
type Reader struct {
	bkt    objstore.BucketReader
	meta   *Meta
	ranges [][2][16]byte // trace-ID range of each row group, from meta.json

	mu    sync.Mutex
	bloom *bloom.BloomFilter
	file  *parquet.File
	cols  leafColumns
	// bloomErr is why the bloom filter could not be read (missing or
	// damaged): the block is read without it. bloomTold is set once
	// BloomError has reported it.
	bloomErr  error
	bloomTold bool
	// bloomFlight and fileFlight are the loads in progress.
	bloomFlight, fileFlight *flight
	// filters are where the bits of the value filters read so far are,
	// by [row group, column] (filters.go).
	filters sync.Map
}

// leafColumns are the indexes of the leaf columns the reader reads.
type leafColumns struct {
	traceID, span, resource, scope int
}

// Open returns a reader of the block described by meta. It reads nothing
// yet; it refuses a format other than FormatV1.
func Open(ctx context.Context, bkt objstore.BucketReader, meta *Meta) (*Reader, error) {
	if meta.Format != FormatV1 {
		return nil, fmt.Errorf("open block %s/%s: %w %q: this version of weft reads only %q",
			meta.TenantID, meta.BlockID, ErrUnknownFormat, meta.Format, FormatV1)
	}
	r := &Reader{bkt: bkt, meta: meta, ranges: make([][2][16]byte, len(meta.RowGroups))}
	for i, rg := range meta.RowGroups {
		for j, s := range []string{rg.MinTraceID, rg.MaxTraceID} {
			if n, err := hex.Decode(r.ranges[i][j][:], []byte(s)); err != nil || n != 16 || len(s) != 32 {
				return nil, fmt.Errorf("open block %s/%s: row group %d: bad trace ID %q", meta.TenantID, meta.BlockID, i, s)
			}
		}
	}
	return r, nil
}

// Meta is the meta of the block.
func (r *Reader) Meta() *Meta { return r.meta }

// Close releases the reader's caches.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bloom, r.file = nil, nil
	return nil
}

// loadBloom returns the bloom filter, or nil when it is missing or
// damaged: a bad bloom filter must not make the block unreadable, the
// trace-ID ranges of the row groups still prune. It fails only when object
// storage failed (storage.ErrUnavailable) or ctx ended, which may pass.
func (r *Reader) loadBloom(ctx context.Context) (*bloom.BloomFilter, error) {
	name := r.meta.ObjectName(BloomName)
	var bf *bloom.BloomFilter
	err := r.once(ctx, &r.bloomFlight, func() bool { bf = r.bloom; return r.bloom != nil || r.bloomErr != nil }, func() error {
		b, err := r.readBloom(ctx, name)
		if err != nil && (ctx.Err() != nil || storage.IsUnavailable(err)) {
			return fmt.Errorf("read %s: %w", name, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bloomErr = fmt.Errorf("cannot read %s: %w", name, err)
		} else {
			r.bloom = b
		}
		return nil
	})
	return bf, err
}

// flight is a load of the reader's state (bloom filter, footer) in
// progress: the callers that need it meanwhile wait for it rather than
// each reading it (and, with object storage hung, each waiting the read
// timeout in turn).
type flight struct {
	done chan struct{}
	err  error
}

// once runs load unless loaded (called under r.mu) reports the state is
// there; load runs without r.mu and takes it to store what it read. While
// a load is in progress other callers wait for it and get its error. A
// load that failed because its caller's ctx ended is not passed on: the
// next caller loads again.
func (r *Reader) once(ctx context.Context, fl **flight, loaded func() bool, load func() error) error {
	for {
		r.mu.Lock()
		if loaded() {
			r.mu.Unlock()
			return nil
		}
		if f := *fl; f != nil {
			r.mu.Unlock()
			select {
			case <-f.done:
				if f.err != nil {
					return f.err
				}
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f := &flight{done: make(chan struct{})}
		*fl = f
		r.mu.Unlock()
		err := load()
		r.mu.Lock()
		*fl = nil
		if ctx.Err() == nil {
			f.err = err
		}
		close(f.done)
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

func (r *Reader) readBloom(ctx context.Context, name string) (*bloom.BloomFilter, error) {
	rc, err := r.bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	bf := &bloom.BloomFilter{}
	if _, err := bf.ReadFrom(rc); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if bf.Cap() == 0 || bf.K() == 0 {
		return nil, errors.New("empty bloom filter")
	}
	return bf, nil
}

// BloomError returns why the block's bloom filter could not be read (the
// block is then read without it), or nil; first is true the first time it
// is returned, so that the caller counts and logs it once per block.
func (r *Reader) BloomError() (err error, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bloomErr == nil {
		return nil, false
	}
	first = !r.bloomTold
	r.bloomTold = true
	return r.bloomErr, first
}

func (r *Reader) loadFile(ctx context.Context) (*parquet.File, leafColumns, error) {
	var (
		f    *parquet.File
		cols leafColumns
	)
	err := r.once(ctx, &r.fileFlight, func() bool { f, cols = r.file, r.cols; return r.file != nil }, func() error {
		pf, c, err := r.openFile(ctx)
		if err == nil {
			r.mu.Lock()
			r.file, r.cols = pf, c
			r.mu.Unlock()
		}
		return err
	})
	return f, cols, err
}

// openFile reads the footer of data.parquet and checks it against meta.json.
func (r *Reader) openFile(ctx context.Context) (*parquet.File, leafColumns, error) {
	name := r.meta.ObjectName(DataName)
	f, err := parquet.OpenFile(r.readerAt(ctx), r.meta.Size,
		parquet.SkipMagicBytes(true),   // the footer magic is still checked
		parquet.SkipPageIndex(true),    // read per column chunk, when a lookup needs it
		parquet.SkipBloomFilters(true), // the block has its own bloom filter
		parquet.OptimisticRead(true),
		parquet.ReadBufferSize(footerReadBytes),
	)
	if err != nil {
		return nil, leafColumns{}, fmt.Errorf("open %s: %w", name, err)
	}
	var cols leafColumns
	for _, c := range []struct {
		idx  *int
		name string
	}{{&cols.traceID, colTraceID}, {&cols.span, colSpan}, {&cols.resource, colResource}, {&cols.scope, colScope}} {
		leaf, ok := f.Schema().Lookup(c.name)
		if !ok {
			return nil, leafColumns{}, fmt.Errorf("open %s: no column %q", name, c.name)
		}
		*c.idx = leaf.ColumnIndex
	}
	if n := len(f.RowGroups()); n != len(r.meta.RowGroups) {
		return nil, leafColumns{}, fmt.Errorf("open %s: %d row groups, meta.json lists %d", name, n, len(r.meta.RowGroups))
	}
	for i, rg := range f.RowGroups() {
		if rg.NumRows() != r.meta.RowGroups[i].Rows {
			return nil, leafColumns{}, fmt.Errorf("open %s: row group %d has %d rows, meta.json says %d", name, i, rg.NumRows(), r.meta.RowGroups[i].Rows)
		}
	}
	return f, cols, nil
}

// FindTraceByID returns the spans of trace id in the block as an OTLP
// TracesData message, spans grouped under their resource and scope, or nil
// when the block does not hold the trace.
//
// The bloom filter is tested first (a missing or damaged one is passed
// over; see BloomError); then, in each row group whose trace-ID
// range holds id, the trace_id pages whose bounds (column index) hold id
// are read to find the matching rows, and only the pages of the span,
// resource and scope columns holding those rows (offset index) are read.
func (r *Reader) FindTraceByID(ctx context.Context, id [16]byte) ([]byte, error) {
	data, _, err := r.findTrace(ctx, id)
	return data, err
}

// findTrace is FindTraceByID, also returning the bytes read from the
// bucket for it (the bloom filter and the footer aside).
func (r *Reader) findTrace(ctx context.Context, id [16]byte) (data []byte, bytesRead uint64, err error) {
	bf, err := r.loadBloom(ctx)
	if err != nil {
		return nil, 0, err
	}
	if bf != nil && !bf.Test(id[:]) {
		return nil, 0, nil
	}
	var groups []int
	for i, rg := range r.ranges {
		if bytes.Compare(id[:], rg[0][:]) >= 0 && bytes.Compare(id[:], rg[1][:]) <= 0 {
			groups = append(groups, i)
		}
	}
	if len(groups) == 0 {
		return nil, 0, nil
	}
	f, cols, err := r.loadFile(ctx)
	if err != nil {
		return nil, 0, err
	}
	ra := r.readerAt(ctx)
	defer func() { bytesRead = ra.bytesRead.Load() }()
	var out spanSet
	for _, g := range groups {
		rg := f.RowGroups()[g]
		lo, hi, err := findRows(ra, chunkOf(rg, cols.traceID), chunkMeta(f, g, cols.traceID), id)
		if err != nil {
			return nil, 0, fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
		}
		if lo == hi {
			continue
		}
		if err := r.readRaw(ra, f, g, cols, lo, hi, &out); err != nil {
			return nil, 0, err
		}
	}
	if len(out.spans) == 0 {
		return nil, 0, nil
	}
	return out.traces(), 0, nil
}

// ReadAll returns every span of the block as one TracesData message.
func (r *Reader) ReadAll(ctx context.Context) ([]byte, error) {
	f, cols, err := r.loadFile(ctx)
	if err != nil {
		return nil, err
	}
	ra := r.readerAt(ctx)
	var out spanSet
	for g, rg := range f.RowGroups() {
		if err := r.readRaw(ra, f, g, cols, 0, rg.NumRows(), &out); err != nil {
			return nil, err
		}
	}
	return out.traces(), nil
}

func chunkOf(rg parquet.RowGroup, col int) *parquet.FileColumnChunk {
	return rg.ColumnChunks()[col].(*parquet.FileColumnChunk)
}

// findRows returns the rows [lo, hi) of a row group whose trace ID is id.
func findRows(ra *objectReaderAt, chunk *parquet.FileColumnChunk, md *format.ColumnMetaData, id [16]byte) (lo, hi int64, err error) {
	oi, err := chunk.OffsetIndexFrom(ra)
	if err != nil {
		return 0, 0, fmt.Errorf("trace_id offset index: %w", err)
	}
	first, last := 0, oi.NumPages()-1
	if ci, err := chunk.ColumnIndexFrom(ra); err == nil {
		// Pages are sorted: keep those whose bounds hold id.
		first = sort.Search(ci.NumPages(), func(p int) bool {
			return bytes.Compare(ci.MaxValue(p).ByteArray(), id[:]) >= 0
		})
		last = sort.Search(ci.NumPages(), func(p int) bool {
			return bytes.Compare(ci.MinValue(p).ByteArray(), id[:]) > 0
		}) - 1
	} else if !errors.Is(err, parquet.ErrMissingColumnIndex) {
		return 0, 0, fmt.Errorf("trace_id column index: %w", err)
	}
	if first > last {
		return 0, 0, nil
	}
	startRow := oi.FirstRowIndex(first)
	cache := newRangeCache(ra)
	if err := cache.fetch(pageRanges(md, oi, first, last)); err != nil {
		return 0, 0, err
	}
	pages := chunk.PagesFrom(cache)
	defer pages.Close()
	if err := pages.SeekToRow(startRow); err != nil {
		return 0, 0, err
	}
	row := startRow
	lo, hi = -1, -1
	for p := first; p <= last; p++ {
		page, err := pages.ReadPage()
		if err != nil {
			return 0, 0, fmt.Errorf("read trace_id page: %w", err)
		}
		n := page.NumRows()
		err = eachBytes(page, func(i int, v []byte) bool {
			switch c := bytes.Compare(v, id[:]); {
			case c == 0 && lo < 0:
				lo, hi = row+int64(i), row+int64(i)+1
			case c == 0:
				hi = row + int64(i) + 1
			case c > 0:
				return false
			}
			return true
		})
		parquet.Release(page)
		if err != nil {
			return 0, 0, err
		}
		row += n
	}
	if lo < 0 {
		return 0, 0, nil
	}
	return lo, hi, nil
}

// pageRanges are the byte ranges of pages first..last of a column chunk,
// headers included, and of its dictionary page if it has one.
func pageRanges(md *format.ColumnMetaData, oi parquet.OffsetIndex, first, last int) [][2]int64 {
	var ranges [][2]int64
	if dict := md.DictionaryPageOffset; dict > 0 && oi.NumPages() > 0 && dict < oi.Offset(0) {
		ranges = append(ranges, [2]int64{dict, oi.Offset(0)})
	}
	if first <= last {
		ranges = append(ranges, [2]int64{oi.Offset(first), oi.Offset(last) + oi.CompressedPageSize(last)})
	}
	return ranges
}

// chunkMeta is the footer metadata of column col of row group g.
func chunkMeta(f *parquet.File, g, col int) *format.ColumnMetaData {
	return &f.Metadata().RowGroups[g].Columns[col].MetaData
}

// readRaw appends the raw columns of rows [lo, hi) of row group g to out.
func (r *Reader) readRaw(ra *objectReaderAt, f *parquet.File, g int, cols leafColumns, lo, hi int64, out *spanSet) error {
	rg := f.RowGroups()[g]
	cache := newRangeCache(ra)
	type colRead struct {
		chunk *parquet.FileColumnChunk
		md    *format.ColumnMetaData
		vals  [][]byte
	}
	var reads []*colRead
	for _, col := range []int{cols.span, cols.resource, cols.scope} {
		reads = append(reads, &colRead{chunk: chunkOf(rg, col), md: chunkMeta(f, g, col)})
	}
	var ranges [][2]int64
	for _, c := range reads {
		oi, err := c.chunk.OffsetIndexFrom(ra)
		if err != nil {
			return fmt.Errorf("block %s: row group %d: offset index: %w", r.meta.BlockID, g, err)
		}
		first := sort.Search(oi.NumPages(), func(p int) bool { return oi.FirstRowIndex(p) > lo }) - 1
		last := sort.Search(oi.NumPages(), func(p int) bool { return oi.FirstRowIndex(p) >= hi }) - 1
		ranges = append(ranges, pageRanges(c.md, oi, max(first, 0), last)...)
	}
	if err := cache.fetch(ranges); err != nil {
		return fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
	}
	for ci, c := range reads {
		vals, err := readValues(cache, c.chunk, c.md, lo, hi, ci > 0)
		if err != nil {
			return fmt.Errorf("block %s: row group %d: %w", r.meta.BlockID, g, err)
		}
		c.vals = vals
	}
	for i := range reads[0].vals {
		out.add(reads[0].vals[i], reads[1].vals[i], reads[2].vals[i])
	}
	return nil
}

// readValues reads the values of rows [lo, hi) of a required byte-array
// column chunk (md, its footer metadata, may be nil). Values are copied out
// of the pages; with intern, equal values share one copy.
func readValues(ra io.ReaderAt, chunk *parquet.FileColumnChunk, md *format.ColumnMetaData, lo, hi int64, intern bool) ([][]byte, error) {
	pages := chunk.PagesFrom(ra)
	defer pages.Close()
	if err := pages.SeekToRow(lo); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, hi-lo)
	var seen map[string][]byte
	if intern {
		seen = map[string][]byte{}
	}
	// Without interning, values are copied into one arena (a few
	// allocations instead of one per value) and sliced out at the end.
	var arena []byte
	var ends []int
	if n := chunk.NumValues(); !intern && n > 0 && md != nil {
		// Sized from the chunk's uncompressed bytes for these rows: one
		// allocation in the usual case.
		arena = make([]byte, 0, md.TotalUncompressedSize*(hi-lo)/n)
		ends = make([]int, 0, hi-lo)
	}
	for int64(len(out)+len(ends)) < hi-lo {
		page, err := pages.ReadPage()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read column %d: %w", chunk.Column(), err)
		}
		err = eachBytes(page, func(_ int, v []byte) bool {
			if int64(len(out)+len(ends)) == hi-lo {
				return false
			}
			if !intern {
				arena = append(arena, v...)
				ends = append(ends, len(arena))
				return true
			}
			c, ok := seen[string(v)]
			if !ok {
				c = bytes.Clone(v)
				seen[string(c)] = c
			}
			out = append(out, c)
			return true
		})
		parquet.Release(page)
		if err != nil {
			return nil, err
		}
	}
	start := 0
	for _, end := range ends {
		out = append(out, arena[start:end:end])
		start = end
	}
	return out, nil
}

// eachBytes calls fn with the index and value of each value of a page of a
// required byte-array or fixed-length byte-array column, until fn returns
// false. v points into the page.
func eachBytes(page parquet.Page, fn func(i int, v []byte) bool) error {
	if page.NumNulls() != 0 {
		return fmt.Errorf("page of column %d has nulls", page.Column())
	}
	if dict := page.Dictionary(); dict != nil {
		data := page.Data()
		for i, idx := range data.Int32() {
			if !fn(i, dict.Index(idx).ByteArray()) {
				return nil
			}
		}
		return nil
	}
	data := page.Data()
	switch data.Kind() {
	case encoding.FixedLenByteArray:
		b, size := data.FixedLenByteArray()
		for i := 0; (i+1)*size <= len(b); i++ {
			if !fn(i, b[i*size:(i+1)*size]) {
				return nil
			}
		}
	case encoding.ByteArray:
		b, offsets := data.ByteArray()
		for i := 0; i+1 < len(offsets); i++ {
			if !fn(i, b[offsets[i]:offsets[i+1]]) {
				return nil
			}
		}
	default:
		return fmt.Errorf("page of column %d: unexpected kind %v", page.Column(), data.Kind())
	}
	return nil
}

// spanSet collects spans with their resource and scope (interned, so equal
// resources and scopes are the same slice) and builds TracesData.
type spanSet struct {
	spans []rawSpan
}

type rawSpan struct{ span, resource, scope []byte }

func (s *spanSet) add(span, resource, scope []byte) {
	s.spans = append(s.spans, rawSpan{span, resource, scope})
}

// traces groups the spans by resource, then scope, in order of first
// appearance, keeping the order of spans within a scope, and encodes them.
func (s *spanSet) traces() []byte {
	var b otlpwire.Builder
	return s.appendTraces(&b)
}

// appendTraces is traces with a builder to reuse (it is reset). Groups
// are found by linear search: a trace has few distinct resources and
// scopes, and equal ones are usually the same interned slice.
func (s *spanSet) appendTraces(b *otlpwire.Builder) []byte {
	type scopeGroup struct {
		scope otlpwire.Scope
		spans [][]byte
	}
	type resGroup struct {
		res    otlpwire.Resource
		scopes []*scopeGroup
	}
	same := func(a, b []byte) bool {
		return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0] || bytes.Equal(a, b))
	}
	var order []*resGroup
	for _, sp := range s.spans {
		var rg *resGroup
		for _, g := range order {
			if same(g.res.Header, sp.resource) {
				rg = g
				break
			}
		}
		if rg == nil {
			rg = &resGroup{res: otlpwire.Resource{Header: sp.resource}}
			order = append(order, rg)
		}
		var sg *scopeGroup
		for _, g := range rg.scopes {
			if same(g.scope.Header, sp.scope) {
				sg = g
				break
			}
		}
		if sg == nil {
			sg = &scopeGroup{scope: otlpwire.Scope{Header: sp.scope}}
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, sp.span)
	}
	b.Reset()
	for _, rg := range order {
		for _, sg := range rg.scopes {
			for _, sp := range sg.spans {
				b.Add(&rg.res, &sg.scope, sp)
			}
		}
	}
	return b.AppendTo(make([]byte, 0, b.Size()))
}

// readerAt reads data.parquet through bkt.GetRange.
func (r *Reader) readerAt(ctx context.Context) *objectReaderAt {
	return &objectReaderAt{ctx: ctx, bkt: r.bkt, name: r.meta.ObjectName(DataName), size: r.meta.Size}
}

// objectReaderAt is an io.ReaderAt over one object: each ReadAt is one
// GetRange.
type objectReaderAt struct {
	ctx  context.Context
	bkt  objstore.BucketReader
	name string
	size int64
	// bytesRead counts the bytes read.
	bytesRead atomic.Uint64
}

func (o *objectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset", o.name)
	}
	if off >= o.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), o.size-off)
	rc, err := o.bkt.GetRange(o.ctx, o.name, off, n)
	if err != nil {
		return 0, fmt.Errorf("read %s [%d, %d): %w", o.name, off, off+n, err)
	}
	defer rc.Close()
	m, err := io.ReadFull(rc, p[:n])
	o.bytesRead.Add(uint64(m))
	if err != nil {
		return m, fmt.Errorf("read %s [%d, %d): %w", o.name, off, off+n, err)
	}
	if n < int64(len(p)) {
		return m, io.EOF
	}
	return m, nil
}

// rangeCache is an io.ReaderAt serving byte ranges fetched in advance, each
// with one GetRange, and reading anything else from the object. It is given
// to parquet-go's page readers, which read through a buffered reader that
// reads ahead: a read that starts in a fetched range and runs past its end
// returns the fetched part only (without error, which bufio.Reader accepts)
// instead of fetching bytes nobody may need; the page reader asks again if
// it does need them.
type rangeCache struct {
	obj    *objectReaderAt
	ranges []cachedRange // sorted by offset, disjoint
}

type cachedRange struct {
	off  int64
	data []byte
}

func newRangeCache(obj *objectReaderAt) *rangeCache { return &rangeCache{obj: obj} }

// fetch reads the given ranges, merging those that touch, concurrently.
func (c *rangeCache) fetch(ranges [][2]int64) error {
	ranges = slices.Clone(ranges)
	slices.SortFunc(ranges, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var merged [][2]int64
	for _, rg := range ranges {
		if rg[1] <= rg[0] {
			continue
		}
		if n := len(merged); n > 0 && rg[0] <= merged[n-1][1] {
			merged[n-1][1] = max(merged[n-1][1], rg[1])
			continue
		}
		merged = append(merged, rg)
	}
	c.ranges = make([]cachedRange, len(merged))
	errs := make([]error, len(merged))
	var wg sync.WaitGroup
	for i, rg := range merged {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, rg[1]-rg[0])
			n, err := c.obj.ReadAt(buf, rg[0])
			if err == io.EOF && n == len(buf) {
				err = nil
			}
			c.ranges[i], errs[i] = cachedRange{off: rg[0], data: buf[:n]}, err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *rangeCache) ReadAt(p []byte, off int64) (int, error) {
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i].off+int64(len(c.ranges[i].data)) > off })
	if i < len(c.ranges) && c.ranges[i].off <= off {
		return copy(p, c.ranges[i].data[off-c.ranges[i].off:]), nil
	}
	if i < len(c.ranges) && off+int64(len(p)) > c.ranges[i].off {
		// Read up to the next fetched range only.
		p = p[:c.ranges[i].off-off]
	}
	return c.obj.ReadAt(p, off)
}
