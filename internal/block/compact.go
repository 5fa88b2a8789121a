package block

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/thanos-io/objstore"
)

// This file is the merge a compaction job runs: Compact reads a few blocks
// of one tenant row group by row group and writes them as one block.

// CompactionOrigin is the Source.Origin of a block written by Compact. A
// compacted block's spans come from the blocks listed in its
// Meta.CompactedFrom, not from one range of one log: its Source names no
// partition or offsets (they are 0), and no replay of a log rebuilds it.
const CompactionOrigin = "compaction"

// compactionNamespace is the namespace of the version-5 UUIDs of
// compacted blocks.
var compactionNamespace = uuid.MustParse("5c1e3f0a-9b7d-4c2e-8f61-0d4a7b2e9c13")

// CompactedID is the ID of the block Compact writes from the blocks ids of
// tenant: a version-5 (SHA-1) UUID of the tenant and the sorted IDs. It
// does not depend on the order of ids, so a retried job writes the same
// block.
func CompactedID(tenant string, ids []uuid.UUID) uuid.UUID {
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, compareIDs)
	var b strings.Builder
	b.WriteString(tenant)
	for _, id := range sorted {
		b.WriteByte('/')
		b.WriteString(id.String())
	}
	return uuid.NewSHA1(compactionNamespace, []byte(b.String()))
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// CompactOptions tune Compact.
type CompactOptions struct {
	// WriteOptions shape the output as Write's do (row groups, bloom
	// filter, pages).
	WriteOptions
	// SpoolDir, when set, is a local directory where data.parquet is
	// written before it is uploaded whole, with its size known. When
	// empty, data.parquet is streamed to the bucket through a pipe, an
	// upload of unknown length: fine for the filesystem bucket, but
	// objstore's S3 provider then passes no part size and minio-go
	// allocates a 528 MiB buffer for its parts; with a known size, parts
	// of part_size (64 MiB by default) are read from the file.
	SpoolDir string
}

// CompactResult is what Compact did.
type CompactResult struct {
	// Meta is the output block's meta.
	Meta *Meta
	// Written is false when the output was already complete (a retry of
	// a job that finished): nothing was read or written.
	Written bool
	// SpansRead is the number of spans read from the inputs; Duplicates
	// of them were left out as repeats of a span already written (same
	// trace ID and span ID).
	SpansRead, Duplicates int64
}

// compactCodec is the zstd codec of compacted blocks: the level of Write,
// with a window of compactZstdWindow. parquet-go's codec keeps the
// encoder's default 8 MiB window, for which each pooled encoder holds a
// 16 MiB history buffer (a third of a merge's heap in profiles). Pages
// are smaller than the window (PageBytes, 256 KiB by default), so every
// match the default window finds is still in reach.
var compactCodec = &windowedZstd{level: zstdLevel, window: compactZstdWindow}

// compactZstdWindow is the zstd window of compacted blocks.
const compactZstdWindow = 1 << 20

// compactBatchRows is how many rows are read from an input at once.
const compactBatchRows = 256

// compactReadBufferBytes is the read buffer of each column of an input.
// Pages are read from the row group fetched in memory, so a small buffer
// costs no request.
const compactReadBufferBytes = 4 << 10

// Compact merges the blocks described by inputs, all of one tenant, into
// one block written to bkt under the ID CompactedID gives, and returns its
// meta. The inputs are left as they are: marking them compacted is the
// caller's job, once Compact has returned.
//
// The output holds every span of the inputs once: the rows are sorted by
// trace ID then start time (ties in the order of the input IDs, then of
// the rows in each input), a trace split across inputs comes back
// together in one row group, and a span whose trace ID and span ID were
// already written (a record delivered twice, a replay after a crash) is
// left out, the first one in that order being kept. The span, resource
// and scope columns are copied byte for byte. Row groups are cut between
// traces at opts.RowGroupBytes of span bytes, the bloom filter is sized
// for the inputs' trace counts, the compaction level is one more than the
// highest of the inputs', CompactedFrom lists the inputs, and Source is
// {Origin: CompactionOrigin}.
//
// Memory does not grow with the size of the blocks but with their row
// groups and the number of inputs: each input is read one row group at a
// time (fetched with one ranged read, then decoded compactBatchRows rows
// at a time), and data.parquet is streamed to the bucket while it is
// written. What is held is a row group of each input (its bytes, and a
// decoded page and dictionary of each column) and the output's current
// row group in parquet-go's writer, plus the output's footer metadata (a
// few tens of kilobytes per row group). TestCompactMemoryLong measures
// it.
//
// data.parquet is uploaded first (streamed, or spooled to
// opts.SpoolDir first), then bloom, then meta.json, so the
// output is visible only once whole. When meta.json is already there and
// names the same inputs (the job finished before and is retried),
// Compact returns it without writing (CompactResult.Written false); a
// retry after a failure or a crash replaces the objects that run left. A
// failure (an input that cannot be read or is not sorted, a storage
// error, ctx ending) returns an error naming the block at fault and
// writes no meta.json; data.parquet and bloom may be left, invisible, for
// a retry to replace or cleanup to delete.
func Compact(ctx context.Context, bkt objstore.Bucket, inputs []*Meta, copts CompactOptions) (*CompactResult, error) {
	ins, err := checkCompactInputs(inputs)
	if err != nil {
		return nil, fmt.Errorf("cannot compact: %w", err)
	}
	tenant := ins[0].TenantID
	ids := make([]uuid.UUID, len(ins))
	level := 0
	var traces int64
	for i, m := range ins {
		ids[i] = m.BlockID
		level = max(level, m.CompactionLevel)
		traces += m.TotalTraces
	}
	id := CompactedID(tenant, ids)
	out := tenant + "/" + id.String()

	old, err := ReadMeta(ctx, bkt, tenant, id)
	switch {
	case err == nil && slices.Equal(old.CompactedFrom, ids):
		return &CompactResult{Meta: old}, nil
	case err == nil:
		return nil, fmt.Errorf("cannot write %s: it holds a block compacted from %v, not from %v: %w", out, old.CompactedFrom, ids, ErrIDTaken)
	case bkt.IsObjNotFoundErr(err), errors.Is(err, ErrInvalidMeta):
		// Not written yet, or a write cut short: (re)write it.
	default:
		return nil, fmt.Errorf("cannot write %s: cannot check for an earlier output: %w", out, err)
	}

	mg, err := mergeInto(ctx, bkt, ins, copts, tenant, id, traces, nil, func(mg *merger, size, bloomBytes int64) *Meta {
		m := mg.newMeta(tenant, id, size, bloomBytes, CompactionOrigin)
		m.CompactionLevel, m.CompactedFrom = level+1, ids
		return m
	})
	if err != nil {
		return nil, err
	}
	return &CompactResult{Meta: mg.meta, Written: true, SpansRead: mg.read(), Duplicates: mg.dups}, nil
}

// mergeInto merges the cursors of ins into block id of tenant: data.parquet,
// then bloom, then meta.json, the meta built by meta from the merge's
// counts once data.parquet and the bloom filter are written. Rows of the
// traces drop names (drop nil: none) are left out. When every row was left
// out, or drop left none out, data.parquet is deleted, nothing more is
// written and mg.meta is nil.
func mergeInto(ctx context.Context, bkt objstore.Bucket, ins []*Meta, copts CompactOptions, tenant string, id uuid.UUID, traces int64,
	drop func([16]byte) bool, newMeta func(mg *merger, size, bloomBytes int64) *Meta) (*merger, error) {
	opts := copts.WriteOptions.withDefaults()
	out := tenant + "/" + id.String()
	curs := make([]*compactCursor, len(ins))
	for i, m := range ins {
		c, err := openCompactCursor(ctx, bkt, m)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", out, err)
		}
		curs[i] = c
	}

	dataName := objectName(tenant, id, DataName)
	mg := &merger{
		ctx:   ctx,
		curs:  curs,
		opts:  opts,
		bloom: bloom.NewWithEstimates(uint(traces), opts.BloomFalsePositive),
		seen:  map[[8]byte]struct{}{},
		drop:  drop,
	}
	size, err := mg.writeData(bkt, dataName, copts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", out, err)
	}

	var bl bytes.Buffer
	if _, err := mg.bloom.WriteTo(&bl); err != nil {
		return nil, fmt.Errorf("cannot write %s: cannot encode %s: %w", out, BloomName, err)
	}
	if mg.spans == 0 || drop != nil && mg.droppedSpans == 0 {
		// Every span was dropped, or none: there is no block to write.
		if err := bkt.Delete(ctx, dataName); err != nil && !bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("cannot delete the empty %s: %w", dataName, err)
		}
		return mg, nil
	}
	meta := newMeta(mg, size, int64(bl.Len()))
	if err := meta.Validate(); err != nil {
		return nil, fmt.Errorf("cannot write %s: internal error: %w", out, err)
	}
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", out, err)
	}
	// A data.parquet cut short by the bucket must not become visible.
	if err := meta.CheckData(ctx, bkt); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", out, err)
	}
	for _, obj := range []struct {
		name string
		data []byte
	}{{BloomName, bl.Bytes()}, {MetaName, mj}} {
		name := objectName(tenant, id, obj.name)
		if err := bkt.Upload(ctx, name, bytes.NewReader(obj.data)); err != nil {
			return nil, fmt.Errorf("cannot write %s: cannot upload %s: %w", out, name, err)
		}
	}
	mg.meta = meta
	return mg, nil
}

// writeData merges the inputs into data.parquet, uploaded as name, and
// returns its size. With spoolDir, the file is written there first and
// uploaded once whole (then removed); otherwise it is written into a pipe
// that the upload reads.
func (mg *merger) writeData(bkt objstore.Bucket, name, spoolDir string) (int64, error) {
	if spoolDir != "" {
		f, err := os.CreateTemp(spoolDir, spoolPattern)
		if err != nil {
			return 0, fmt.Errorf("cannot spool %s: %w", DataName, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		cw := &countingWriter{w: f}
		mg.pw = newPQWriter(cw, compactCodec, mg.opts.PageBytes)
		if err := mg.run(); err != nil {
			return 0, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, fmt.Errorf("cannot spool %s: %w", DataName, err)
		}
		// An *os.File: the bucket knows the size.
		if err := bkt.Upload(mg.ctx, name, f); err != nil {
			return 0, fmt.Errorf("cannot upload %s: %w", name, err)
		}
		return cw.n, nil
	}
	pr, pw := io.Pipe()
	uploaded := make(chan error, 1)
	go func() {
		err := bkt.Upload(mg.ctx, name, pr)
		pr.CloseWithError(err) // a writer still writing gets an error, not a hang
		uploaded <- err
	}()
	cw := &countingWriter{w: pw}
	mg.pw = newPQWriter(cw, compactCodec, mg.opts.PageBytes)
	err := mg.run()
	pw.CloseWithError(err) // nil: the upload reads to the end
	if upErr := <-uploaded; err == nil && upErr != nil {
		err = fmt.Errorf("cannot upload %s: %w", name, upErr)
	}
	return cw.n, err
}

// spoolPattern names the spool files of merges (CompactOptions.SpoolDir).
const spoolPattern = "compact-*.parquet"

// RemoveSpoolFiles deletes the spool files of merges in dir, those a
// process killed in a merge left (a merge removes its own when it ends),
// and returns how many it deleted. A backend worker calls it as it starts.
// A file another process of the host is still writing can go too: on
// POSIX systems the writer keeps its open file, uploads it and finds it
// gone when it removes it.
func RemoveSpoolFiles(dir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, spoolPattern))
	if err != nil {
		return 0, fmt.Errorf("cannot list the spool files in %s: %w", dir, err)
	}
	n := 0
	for _, name := range names {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("cannot remove spool file %s: %w", name, err)
		}
		n++
	}
	return n, nil
}

// checkCompactInputs checks that inputs are valid metas of FormatV1 blocks
// of one tenant, each once, and returns them sorted by block ID.
func checkCompactInputs(inputs []*Meta) ([]*Meta, error) {
	if len(inputs) == 0 {
		return nil, errors.New("no input blocks")
	}
	ins := slices.Clone(inputs)
	for i, m := range ins {
		if m == nil {
			return nil, fmt.Errorf("input %d: no meta", i)
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("cannot read block %s/%s: %w", m.TenantID, m.BlockID, err)
		}
		if m.TenantID != ins[0].TenantID {
			return nil, fmt.Errorf("blocks of several tenants: %s/%s and %s/%s", ins[0].TenantID, ins[0].BlockID, m.TenantID, m.BlockID)
		}
	}
	slices.SortFunc(ins, func(a, b *Meta) int { return compareIDs(a.BlockID, b.BlockID) })
	for i := 1; i < len(ins); i++ {
		if ins[i].BlockID == ins[i-1].BlockID {
			return nil, fmt.Errorf("block %s/%s given twice", ins[i].TenantID, ins[i].BlockID)
		}
	}
	return ins, nil
}

// merger is the state of one merge: the inputs' cursors, the output
// writer, and what the output's meta.json and bloom filter need.
type merger struct {
	ctx   context.Context
	curs  []*compactCursor
	opts  WriteOptions
	pw    *dataWriter
	bloom *bloom.BloomFilter

	// pending are rows taken from the cursors and not yet given to pw;
	// they point into the cursors' batches, so they are written before
	// any cursor reads its next batch.
	pending []pqRow
	// trace is the current trace; seen, the span IDs written for it.
	trace   [16]byte
	inTrace bool
	// drop, when set, names the traces left out (redaction); dropped
	// counts their traces and spans, dropID the last one seen.
	drop                        func([16]byte) bool
	droppedTraces, droppedSpans int64
	droppedIDs                  [][16]byte
	dropID                      [16]byte
	inDrop                      bool
	// meta is the output's meta, once written.
	meta     *Meta
	seen     map[[8]byte]struct{}
	minStart int64
	maxEnd   int64

	// The output so far: traces, spans, duplicates left out, closed row
	// groups, and the current one (first trace, rows, span bytes).
	traces, spans, dups int64
	groups              []RowGroupMeta
	groupMin            [16]byte
	groupRows           int64
	groupBytes          int64
}

func (mg *merger) run() error {
	mg.pending = make([]pqRow, 0, compactBatchRows)
	active := make([]*compactCursor, 0, len(mg.curs))
	for _, c := range mg.curs {
		ok, err := c.fill()
		if err != nil {
			return err
		}
		if ok {
			active = append(active, c)
		}
	}
	for n := 0; len(active) > 0; n++ {
		if n%compactBatchRows == 0 {
			if err := mg.ctx.Err(); err != nil {
				return err
			}
		}
		// The inputs are few (a job merges 2 to a few blocks): a linear
		// search for the smallest head costs less than a heap.
		best := 0
		for j := 1; j < len(active); j++ {
			if compareHeads(active[j].head(), active[best].head()) < 0 {
				best = j
			}
		}
		c := active[best]
		if err := mg.add(c.head()); err != nil {
			return err
		}
		if c.i++; c.i < c.n {
			continue
		}
		// The batch is used up: the rows taken from it go to the writer
		// before it is refilled.
		if err := mg.flushPending(); err != nil {
			return err
		}
		ok, err := c.fill()
		if err != nil {
			return err
		}
		if !ok {
			if err := c.finish(); err != nil {
				return err
			}
			active = slices.Delete(active, best, best+1)
		}
	}
	if mg.inTrace {
		mg.endTrace(true)
	}
	if err := mg.cutGroup(); err != nil {
		return err
	}
	if err := mg.pw.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", DataName, err)
	}
	return nil
}

// add takes row r (a cursor's head) into the output, unless its span was
// already written.
// newMeta is the meta of the block mg wrote, of size bytes of data and a
// bloom filter of bloomBytes: its times and counts, and a Source of
// origin; the caller sets what tells how it was made from its inputs.
func (mg *merger) newMeta(tenant string, id uuid.UUID, size, bloomBytes int64, origin string) *Meta {
	return &Meta{
		Format:      FormatV1,
		BlockID:     id,
		TenantID:    tenant,
		StartTime:   time.Unix(0, mg.minStart).UTC(),
		EndTime:     time.Unix(0, mg.maxEnd).UTC(),
		TotalTraces: mg.traces,
		TotalSpans:  mg.spans,
		Size:        size,
		BloomBytes:  bloomBytes,
		RowGroups:   mg.groups,
		Source:      Source{Origin: origin},
		CreatedAt:   time.Now().UTC(),
	}
}

func (mg *merger) add(r *pqRow) error {
	if mg.drop != nil && mg.drop(r.TraceID) {
		if !mg.inDrop || r.TraceID != mg.dropID {
			mg.droppedTraces++
			mg.droppedIDs = append(mg.droppedIDs, r.TraceID)
			mg.dropID, mg.inDrop = r.TraceID, true
		}
		mg.droppedSpans++
		return nil
	}
	if !mg.inTrace || r.TraceID != mg.trace {
		if mg.inTrace && mg.endTrace(false) {
			if err := mg.cutGroup(); err != nil {
				return err
			}
		}
		mg.trace, mg.inTrace = r.TraceID, true
		if len(mg.seen) > 4096 {
			mg.seen = map[[8]byte]struct{}{} // let a big trace's map go
		} else {
			clear(mg.seen)
		}
		mg.bloom.Add(r.TraceID[:])
		if mg.groupRows == 0 {
			mg.groupMin = r.TraceID
		}
	}
	if _, dup := mg.seen[r.SpanID]; dup {
		mg.dups++
		return nil
	}
	mg.seen[r.SpanID] = struct{}{}
	end := r.StartUnixNano + r.DurationNano
	if mg.spans == 0 {
		mg.minStart, mg.maxEnd = r.StartUnixNano, end
	}
	mg.minStart = min(mg.minStart, r.StartUnixNano)
	mg.maxEnd = max(mg.maxEnd, end)
	mg.spans++
	mg.groupRows++
	mg.groupBytes += int64(len(r.Span))
	mg.pending = append(mg.pending, *r)
	if len(mg.pending) == cap(mg.pending) {
		return mg.flushPending()
	}
	return nil
}

// endTrace counts the current trace, and reports whether the row group
// is due to be cut after it.
func (mg *merger) endTrace(last bool) bool {
	mg.traces++
	return !last && mg.groupBytes >= mg.opts.RowGroupBytes
}

// cutGroup writes the current row group, if it has rows.
func (mg *merger) cutGroup() error {
	if mg.groupRows == 0 {
		return nil
	}
	if err := mg.flushPending(); err != nil {
		return err
	}
	if err := mg.pw.Flush(); err != nil {
		return fmt.Errorf("cannot write %s: %w", DataName, err)
	}
	mg.groups = append(mg.groups, RowGroupMeta{
		MinTraceID: hex.EncodeToString(mg.groupMin[:]),
		MaxTraceID: hex.EncodeToString(mg.trace[:]),
		Rows:       mg.groupRows,
	})
	mg.groupRows, mg.groupBytes = 0, 0
	return nil
}

func (mg *merger) flushPending() error {
	if len(mg.pending) == 0 {
		return nil
	}
	if _, err := mg.pw.Write(mg.pending); err != nil {
		return fmt.Errorf("cannot write %s: %w", DataName, err)
	}
	clear(mg.pending) // drop the references into the input batches
	mg.pending = mg.pending[:0]
	return nil
}

// read is the number of rows read from the inputs.
func (mg *merger) read() int64 {
	var n int64
	for _, c := range mg.curs {
		n += c.rows
	}
	return n
}

// compareHeads orders rows as blocks are sorted: trace ID, then start.
func compareHeads(a, b *pqRow) int {
	return compareKeys(a.TraceID, a.StartUnixNano, b.TraceID, b.StartUnixNano)
}

func compareKeys(aID [16]byte, aStart int64, bID [16]byte, bStart int64) int {
	if c := bytes.Compare(aID[:], bID[:]); c != 0 {
		return c
	}
	return cmp.Compare(aStart, bStart)
}

// compactCursor reads one input block row by row, one row group at a
// time.
type compactCursor struct {
	meta *Meta
	name string // tenant/blockID, for errors
	file *parquet.File
	win  *windowReaderAt
	g    int // next row group to open
	rd   *parquet.GenericReader[pqRow]

	batch []pqRow
	i, n  int   // head is batch[i]; batch[:n] was read
	rows  int64 // rows read so far
	// prevID and prevStart are the key of the last row read, to check
	// the order.
	prevID    [16]byte
	prevStart int64
}

// openCompactCursor reads the footer of an input's data.parquet and
// checks it against its meta.json.
func openCompactCursor(ctx context.Context, bkt objstore.BucketReader, m *Meta) (*compactCursor, error) {
	c := &compactCursor{meta: m, name: m.TenantID + "/" + m.BlockID.String()}
	obj := &objectReaderAt{ctx: ctx, bkt: bkt, name: m.ObjectName(DataName), size: m.Size}
	c.win = &windowReaderAt{obj: obj}
	// The footer is usually within the last footerReadBytes: one read.
	tail := min(m.Size, footerReadBytes)
	if err := c.win.tail.fetch(obj, m.Size-tail, m.Size); err != nil {
		return nil, c.errorf("%w", err)
	}
	f, err := c.open()
	if err != nil {
		return nil, err
	}
	if n := len(f.RowGroups()); n != len(m.RowGroups) {
		return nil, c.errorf("%s has %d row groups, meta.json lists %d", DataName, n, len(m.RowGroups))
	}
	for i, rg := range f.RowGroups() {
		if rg.NumRows() != m.RowGroups[i].Rows {
			return nil, c.errorf("%s: row group %d has %d rows, meta.json says %d", DataName, i, rg.NumRows(), m.RowGroups[i].Rows)
		}
	}
	c.file = f
	c.win.tail = window{}
	c.batch = make([]pqRow, compactBatchRows)
	return c, nil
}

// open opens data.parquet, its footer read from the tail window.
func (c *compactCursor) open() (*parquet.File, error) {
	f, err := parquet.OpenFile(c.win, c.meta.Size,
		parquet.SkipMagicBytes(true),
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(compactReadBufferBytes),
	)
	if err != nil {
		return nil, c.errorf("cannot open %s: %w", DataName, err)
	}
	return f, nil
}

func (c *compactCursor) errorf(format string, args ...any) error {
	return fmt.Errorf("cannot read block %s: %w", c.name, fmt.Errorf(format, args...))
}

func (c *compactCursor) head() *pqRow { return &c.batch[c.i] }

// fill reads the next batch of rows, opening the next row group when the
// current one is done; false at the end of the block.
func (c *compactCursor) fill() (bool, error) {
	if err := c.win.obj.ctx.Err(); err != nil {
		return false, err
	}
	for {
		if c.rd == nil {
			if c.g == len(c.file.RowGroups()) {
				return false, nil
			}
			if err := c.openRowGroup(); err != nil {
				return false, err
			}
		}
		n, err := c.rd.Read(c.batch)
		if err != nil && err != io.EOF {
			return false, c.errorf("row group %d: %w", c.g-1, err)
		}
		if n == 0 {
			if err != io.EOF {
				return false, c.errorf("row group %d: no rows read", c.g-1)
			}
			if err := c.rd.Close(); err != nil {
				return false, c.errorf("row group %d: %w", c.g-1, err)
			}
			c.rd = nil
			continue
		}
		for j := range n {
			r := &c.batch[j]
			if c.rows > 0 && compareKeys(r.TraceID, r.StartUnixNano, c.prevID, c.prevStart) < 0 {
				return false, c.errorf("row %d is not in trace ID and start time order", c.rows)
			}
			c.prevID, c.prevStart = r.TraceID, r.StartUnixNano
			c.rows++
		}
		c.i, c.n = 0, n
		return true, nil
	}
}

// openRowGroup fetches row group g (all its column chunks, one ranged
// read) and starts reading it.
func (c *compactCursor) openRowGroup() error {
	lo, hi := int64(-1), int64(0)
	for _, col := range c.file.Metadata().RowGroups[c.g].Columns {
		md := &col.MetaData
		start := md.DataPageOffset
		if d := md.DictionaryPageOffset; d > 0 && d < start {
			start = d
		}
		if lo < 0 || start < lo {
			lo = start
		}
		hi = max(hi, start+md.TotalCompressedSize)
	}
	if lo < 0 || lo > hi || hi > c.meta.Size {
		return c.errorf("row group %d: column chunks at [%d, %d) of a %d-byte %s", c.g, lo, hi, c.meta.Size, DataName)
	}
	if err := c.win.cur.fetch(c.win.obj, lo, hi); err != nil {
		return c.errorf("row group %d: %w", c.g, err)
	}
	c.rd = parquet.NewGenericRowGroupReader[pqRow](c.file.RowGroups()[c.g])
	c.g++
	return nil
}

// finish checks that the whole block was read.
func (c *compactCursor) finish() error {
	if c.rows != c.meta.TotalSpans {
		return c.errorf("%d rows read, meta.json says %d spans", c.rows, c.meta.TotalSpans)
	}
	c.win, c.batch, c.file = nil, nil, nil
	return nil
}

// windowReaderAt reads an object through two windows fetched in advance,
// the footer and the current row group: reads within them are served
// from memory, others from the object.
type windowReaderAt struct {
	obj       *objectReaderAt
	tail, cur window
}

type window struct {
	off  int64
	data []byte
}

// fetch reads [lo, hi) of obj into w, reusing its buffer.
func (w *window) fetch(obj *objectReaderAt, lo, hi int64) error {
	n := int(hi - lo)
	if cap(w.data) < n {
		w.data = make([]byte, n)
	}
	w.off, w.data = lo, w.data[:n]
	m, err := obj.ReadAt(w.data, lo)
	if err == io.EOF && m == n {
		err = nil
	}
	if err != nil {
		w.data = w.data[:0]
	}
	return err
}

func (w *window) holds(off int64, n int) bool {
	return off >= w.off && off+int64(n) <= w.off+int64(len(w.data))
}

func (w *windowReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for _, win := range []*window{&w.cur, &w.tail} {
		if win.holds(off, len(p)) {
			return copy(p, win.data[off-win.off:]), nil
		}
	}
	return w.obj.ReadAt(p, off)
}

// windowedZstd is a Parquet zstd codec with a bounded encoder window.
type windowedZstd struct {
	level    zstd.EncoderLevel
	window   int
	encoders sync.Pool
	decoders sync.Pool
}

func (c *windowedZstd) String() string                            { return "ZSTD" }
func (c *windowedZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *windowedZstd) Encode(dst, src []byte) ([]byte, error) {
	e, _ := c.encoders.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(c.level),
			zstd.WithWindowSize(c.window),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return nil, err
		}
	}
	defer c.encoders.Put(e)
	return e.EncodeAll(src, dst[:0]), nil
}

func (c *windowedZstd) Decode(dst, src []byte) ([]byte, error) {
	d, _ := c.decoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
	}
	defer c.decoders.Put(d)
	return d.DecodeAll(src, dst[:0])
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
