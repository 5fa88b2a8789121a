package block

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/bits-and-blooms/bloom/v3"
	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
)

// Defaults of WriteOptions.
const (
	DefaultRowGroupBytes      = 8 << 20
	DefaultBloomFalsePositive = 0.01
)

// WriteOptions tune Write. Zero values take the defaults.
type WriteOptions struct {
	// RowGroupBytes is the target size of a row group, counted in bytes of
	// encoded spans (the span column, uncompressed). Row groups are cut
	// only between traces, so a trace lies in one row group.
	RowGroupBytes int64
	// BloomFalsePositive is the false-positive rate of the trace-ID bloom
	// filter.
	BloomFalsePositive float64
	// PageBytes is the target size of a data page before compression;
	// 0 means 256 KiB. Smaller pages prune finer and cost more index.
	PageBytes int
}

func (o WriteOptions) withDefaults() WriteOptions {
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBytes <= 0 {
		o.PageBytes = pageBufferBytes
	}
	if o.BloomFalsePositive <= 0 || o.BloomFalsePositive >= 1 {
		o.BloomFalsePositive = DefaultBloomFalsePositive
	}
	return o
}

// Write sorts the buffered spans by trace ID and writes data.parquet, bloom,
// then meta.json to bkt under <tenant>/<id>/. Writing the same id again
// replaces the block only when it is a rebuild of the same input (the
// stored meta.json has a Source with the same start, see Source.SameStart):
// its meta.json is deleted first, so the block is invisible while it is
// rewritten. A block of the same source that was let go (CompactedName)
// is not written again: its meta is returned. A block of other spans under
// id is never replaced: Write returns an error wrapping ErrIDTaken and
// writes nothing. The check and the write are not atomic: one writer per
// source is assumed. The buffer is not released and can take more spans.
func Write(ctx context.Context, bkt objstore.Bucket, tenant string, id uuid.UUID, src Source, buf *Buffer, opts WriteOptions) (*Meta, error) {
	if tenant == "" || strings.ContainsAny(tenant, "/\\") || tenant == "." || tenant == ".." {
		return nil, fmt.Errorf("write block: invalid tenant %q", tenant)
	}
	if buf.released {
		return nil, errors.New("write block: buffer used after Release")
	}
	opts = opts.withDefaults()
	buf.flush()
	if buf.spans == 0 {
		return nil, errors.New("write block: no spans")
	}
	p, err := newPlan(buf, opts)
	if err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	var data bytes.Buffer
	if err := writeParquet(&data, p, opts.PageBytes); err != nil {
		return nil, fmt.Errorf("write block: encode %s: %w", DataName, err)
	}
	var bl bytes.Buffer
	if _, err := p.bloom.WriteTo(&bl); err != nil {
		return nil, fmt.Errorf("write block: encode %s: %w", BloomName, err)
	}
	meta := p.meta(tenant, id, src)
	meta.Size = int64(data.Len())
	meta.BloomBytes = int64(bl.Len())
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}

	metaName := objectName(tenant, id, MetaName)
	old, err := readSource(ctx, bkt, metaName)
	if err != nil {
		return nil, fmt.Errorf("write block: cannot check the block already stored under %s/%s: %w", tenant, id, err)
	}
	if old != nil && !old.SameStart(src) {
		return nil, fmt.Errorf("write block: %s/%s holds spans from %s, not from %s: %w",
			tenant, id, *old, src, ErrIDTaken)
	}
	if old == nil {
		// A block let go (compacted into another, or past retention) is
		// not written again by a replay of its log: its spans are stored
		// in the block it was merged into, or were meant to go.
		mark, err := ReadCompactedMark(ctx, bkt, tenant, id)
		if err != nil {
			return nil, fmt.Errorf("write block: %w", err)
		}
		if mark != nil {
			if !mark.Source.SameStart(src) {
				return nil, fmt.Errorf("write block: %s/%s held spans from %s, not from %s: %w",
					tenant, id, mark.Source, src, ErrIDTaken)
			}
			return &mark.Meta, nil
		}
	}
	if err := bkt.Delete(ctx, metaName); err != nil && !bkt.IsObjNotFoundErr(err) {
		return nil, fmt.Errorf("write block: remove old %s: %w", metaName, err)
	}
	for _, obj := range []struct {
		name string
		data []byte
	}{{DataName, data.Bytes()}, {BloomName, bl.Bytes()}, {MetaName, mj}} {
		name := objectName(tenant, id, obj.name)
		if err := bkt.Upload(ctx, name, bytes.NewReader(obj.data)); err != nil {
			return nil, fmt.Errorf("write block: upload %s: %w", name, err)
		}
	}
	return meta, nil
}

// StoredSource returns the Source of the block stored as tenant/id, nil
// when there is none or its meta.json is not whole JSON (a write cut
// short, which a rebuild replaces).
func StoredSource(ctx context.Context, bkt objstore.BucketReader, tenant string, id uuid.UUID) (*Source, error) {
	return readSource(ctx, bkt, objectName(tenant, id, MetaName))
}

// readSource returns the Source in the meta.json called name, nil when
// there is none or it is not whole JSON (a write cut short: no block is
// listed through it, and the rebuild replaces it).
func readSource(ctx context.Context, bkt objstore.BucketReader, name string) (*Source, error) {
	var m Meta
	if ok, err := readJSON(ctx, bkt, name, &m); !ok || err != nil {
		return nil, err
	}
	return &m.Source, nil
}

// readJSON decodes the object called name into v. It reports false, with
// no error, when there is no such object or it is not whole JSON (a write
// cut short).
func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) (bool, error) {
	// Exists first: a Get of a missing object counts as a failed operation
	// in weft_objstore_bucket_operation_failures_total.
	if ok, err := bkt.Exists(ctx, name); err != nil || !ok {
		if err != nil {
			return false, fmt.Errorf("cannot check %s: %w", name, err)
		}
		return false, nil
	}
	rc, err := bkt.Get(ctx, name)
	if bkt.IsObjNotFoundErr(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read %s: %w", name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		return false, fmt.Errorf("cannot read %s: %w", name, err)
	}
	return json.Unmarshal(buf.Bytes(), v) == nil, nil
}

// plan is a buffer's content ready to be written: the rows in block order,
// cut into row groups, and what meta.json and the bloom filter need.
type plan struct {
	chunks   []*chunkView
	rows     []rowRef
	groups   []int // end of each row group in rows
	traces   int64
	minStart int64
	maxEnd   int64
	bloom    *bloom.BloomFilter
}

// rowRef is one span in sort order: trace ID (as two big-endian halves, so
// integer order is byte order), start time, then arrival order.
type rowRef struct {
	hi, lo uint64
	start  int64
	chunk  int32
	row    int32
}

func compareRows(a, b rowRef) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 {
		return c
	}
	if c := cmp.Compare(a.start, b.start); c != 0 {
		return c
	}
	if c := cmp.Compare(a.chunk, b.chunk); c != 0 {
		return c
	}
	return cmp.Compare(a.row, b.row)
}

func newPlan(buf *Buffer, opts WriteOptions) (*plan, error) {
	p := &plan{rows: make([]rowRef, 0, buf.spans)}
	for ci, rec := range buf.chunks {
		cv, err := newChunkView(rec, buf.resources)
		if err != nil {
			return nil, err
		}
		p.chunks = append(p.chunks, cv)
		for i := range int(rec.NumRows()) {
			tid := cv.traceID.Value(i)
			p.rows = append(p.rows, rowRef{
				hi:    binary.BigEndian.Uint64(tid[:8]),
				lo:    binary.BigEndian.Uint64(tid[8:]),
				start: cv.start.Value(i),
				chunk: int32(ci),
				row:   int32(i),
			})
		}
	}
	slices.SortFunc(p.rows, compareRows)

	p.minStart, p.maxEnd = p.rows[0].start, p.rows[0].start
	var spanBytes int64
	for i, r := range p.rows {
		cv := p.chunks[r.chunk]
		p.minStart = min(p.minStart, r.start)
		p.maxEnd = max(p.maxEnd, r.start+cv.duration.Value(int(r.row)))
		spanBytes += int64(len(cv.span.Value(int(r.row))))
		last := i+1 == len(p.rows)
		if last || p.rows[i+1].hi != r.hi || p.rows[i+1].lo != r.lo {
			p.traces++
			if last || spanBytes >= opts.RowGroupBytes {
				p.groups = append(p.groups, i+1)
				spanBytes = 0
			}
		}
	}
	p.bloom = bloom.NewWithEstimates(uint(p.traces), opts.BloomFalsePositive)
	for i, r := range p.rows {
		if i == 0 || p.rows[i-1].hi != r.hi || p.rows[i-1].lo != r.lo {
			p.bloom.Add(p.traceID(r))
		}
	}
	return p, nil
}

func (p *plan) traceID(r rowRef) []byte {
	return p.chunks[r.chunk].traceID.Value(int(r.row))
}

func (p *plan) meta(tenant string, id uuid.UUID, src Source) *Meta {
	m := &Meta{
		Format:      FormatV1,
		BlockID:     id,
		TenantID:    tenant,
		StartTime:   time.Unix(0, p.minStart).UTC(),
		EndTime:     time.Unix(0, p.maxEnd).UTC(),
		TotalTraces: p.traces,
		TotalSpans:  int64(len(p.rows)),
		Source:      src,
		CreatedAt:   time.Now().UTC(),
	}
	lo := 0
	for _, hi := range p.groups {
		m.RowGroups = append(m.RowGroups, RowGroupMeta{
			MinTraceID: hex.EncodeToString(p.traceID(p.rows[lo])),
			MaxTraceID: hex.EncodeToString(p.traceID(p.rows[hi-1])),
			Rows:       int64(hi - lo),
		})
		lo = hi
	}
	return m
}

// chunkView gives typed access to the arrays of one buffered record batch.
type chunkView struct {
	rec             arrow.RecordBatch
	traceID, spanID *array.FixedSizeBinary
	parent          *array.Binary
	start, duration *array.Int64
	name, statusMsg dictStrings
	kind, status    *array.Int32
	dedStr          [len(spanDedicated)]dictStrings
	dedInt          [len(spanDedicated)]*array.Int64
	attrs           *array.List
	attrKey         *array.String
	attrValue       *array.String
	attrType        *array.Int32
	events          *array.List
	eventName       *array.String
	span            *array.Binary
	resource, scope dictBytes
	resInfo         []*resourceInfo // by index in the resource dictionary
}

type dictStrings struct {
	idx  *array.Dictionary
	vals *array.String
}

func (d dictStrings) value(i int) string { return d.vals.Value(d.idx.GetValueIndex(i)) }

type dictBytes struct {
	idx  *array.Dictionary
	vals *array.Binary
}

func (d dictBytes) value(i int) []byte { return d.vals.Value(d.idx.GetValueIndex(i)) }

func newChunkView(rec arrow.RecordBatch, resources map[string]*resourceInfo) (*chunkView, error) {
	col := rec.Column
	strs := func(i int) dictStrings {
		d := col(i).(*array.Dictionary)
		return dictStrings{idx: d, vals: d.Dictionary().(*array.String)}
	}
	bins := func(i int) dictBytes {
		d := col(i).(*array.Dictionary)
		return dictBytes{idx: d, vals: d.Dictionary().(*array.Binary)}
	}
	cv := &chunkView{
		rec:       rec,
		traceID:   col(bTraceID).(*array.FixedSizeBinary),
		spanID:    col(bSpanID).(*array.FixedSizeBinary),
		parent:    col(bParentSpanID).(*array.Binary),
		start:     col(bStart).(*array.Int64),
		duration:  col(bDuration).(*array.Int64),
		name:      strs(bName),
		kind:      col(bKind).(*array.Int32),
		status:    col(bStatusCode).(*array.Int32),
		statusMsg: strs(bStatusMessage),
		attrs:     col(bSpanAttrs).(*array.List),
		events:    col(bEventNames).(*array.List),
		span:      col(bSpan).(*array.Binary),
		resource:  bins(bResource),
		scope:     bins(bScope),
	}
	for i, d := range spanDedicated {
		if d.isInt {
			cv.dedInt[i] = col(bSpanDedicated + i).(*array.Int64)
		} else {
			cv.dedStr[i] = strs(bSpanDedicated + i)
		}
	}
	st := cv.attrs.ListValues().(*array.Struct)
	cv.attrKey = st.Field(0).(*array.String)
	cv.attrValue = st.Field(1).(*array.String)
	cv.attrType = st.Field(2).(*array.Int32)
	cv.eventName = cv.events.ListValues().(*array.String)
	dict := cv.resource.vals
	cv.resInfo = make([]*resourceInfo, dict.Len())
	for i := range cv.resInfo {
		ri, ok := resources[string(dict.Value(i))]
		if !ok {
			return nil, errors.New("internal error: resource without derived columns")
		}
		cv.resInfo[i] = ri
	}
	return cv, nil
}

func (cv *chunkView) resourceInfo(row int) *resourceInfo {
	return cv.resInfo[cv.resource.idx.GetValueIndex(row)]
}
