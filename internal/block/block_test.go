package block

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	pqcompress "github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/bits-and-blooms/bloom/v3"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
)

var ctx = context.Background()

// fixture is a written block and what was sent to it.
type fixture struct {
	bkt  *spyBucket
	meta *Meta
	want map[pcommon.TraceID][]string
}

// writeFixture sends spangen batches (several Add calls), the rich trace,
// and one trace spread over one Add call per span, and writes a block.
func writeFixture(t *testing.T, traces int, opts WriteOptions) *fixture {
	t.Helper()
	bkt := newBucket(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	buf := NewBuffer(mem)
	want := map[pcommon.TraceID][]string{}
	for i := range 4 {
		td := spangen.Generate(spangen.Options{Seed: uint64(10 + i), Traces: traces / 4, SpansPerTrace: 8, Services: 4,
			Start: time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)})
		mergeRecords(want, spanRecords(t, td))
		addTraces(t, buf, td)
	}
	rich := richTraces()
	mergeRecords(want, spanRecords(t, rich))
	addTraces(t, buf, rich)
	split := spangen.Generate(spangen.Options{Seed: 99, Traces: 1, SpansPerTrace: 12, Services: 3})
	mergeRecords(want, spanRecords(t, split))
	for _, one := range splitBySpan(split) {
		addTraces(t, buf, one)
	}
	meta, err := Write(ctx, bkt, "tenant-a", uuid.New(), Source{Partition: 3, FirstOffset: 10, LastOffset: 20}, buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	buf.Release()
	mem.AssertSize(t, 0)
	return &fixture{bkt: bkt, meta: meta, want: want}
}

func (f *fixture) open(t *testing.T) *Reader {
	t.Helper()
	r, err := Open(ctx, f.bkt, f.meta)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	f := writeFixture(t, 200, WriteOptions{})
	r := f.open(t)
	defer r.Close()
	findsEveryTrace(t, r, f.want, "round trip")
	all, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := spanRecords(t, unmarshal(t, all))
	if len(got) != len(f.want) {
		t.Fatalf("ReadAll: %d traces, want %d", len(got), len(f.want))
	}
	for id, w := range f.want {
		if !slices.Equal(got[id], w) {
			t.Fatalf("ReadAll: trace %x differs", id)
		}
	}
}

func TestTraceResultGroupsByResourceAndScope(t *testing.T) {
	f := writeFixture(t, 8, WriteOptions{})
	r := f.open(t)
	data, err := r.FindTraceByID(ctx, richTraces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
	if err != nil || data == nil {
		t.Fatalf("%v, %v", data, err)
	}
	td := unmarshal(t, data)
	// 2 resources with 2 scopes each, and the bare resource: spans are
	// regrouped as they were sent even though rows are sorted by time.
	if n := td.ResourceSpans().Len(); n != 3 {
		t.Fatalf("%d ResourceSpans, want 3", n)
	}
	// Groups come in order of first appearance in the trace's rows, which
	// are sorted by start time: the bare span starts first.
	for i, want := range []int{1, 2, 2} {
		if n := td.ResourceSpans().At(i).ScopeSpans().Len(); n != want {
			t.Fatalf("resource %d: %d scopes, want %d", i, n, want)
		}
	}
}

func TestRowsSortedAndRowGroups(t *testing.T) {
	f := writeFixture(t, 400, WriteOptions{RowGroupBytes: 64 << 10})
	if len(f.meta.RowGroups) < 4 {
		t.Fatalf("%d row groups, want several", len(f.meta.RowGroups))
	}
	pf := openParquet(t, f)
	type key struct {
		tid   string
		start int64
	}
	var prev key
	rows := 0
	for g, rg := range pf.RowGroups() {
		rd := parquet.NewGenericRowGroupReader[pqRow](rg)
		buf := make([]pqRow, 100)
		var first, last string
		for {
			n, err := rd.Read(buf)
			for _, row := range buf[:n] {
				k := key{hex.EncodeToString(row.TraceID[:]), row.StartUnixNano}
				if k.tid < prev.tid || k.tid == prev.tid && k.start < prev.start {
					t.Fatalf("row %d (%v) sorts before row %d (%v)", rows, k, rows-1, prev)
				}
				if first == "" {
					first = k.tid
				}
				last, prev = k.tid, k
				rows++
			}
			if err != nil {
				break
			}
		}
		rd.Close()
		m := f.meta.RowGroups[g]
		if m.MinTraceID != first || m.MaxTraceID != last || m.Rows != rg.NumRows() {
			t.Fatalf("row group %d: meta %+v, file %s..%s %d rows", g, m, first, last, rg.NumRows())
		}
		if g > 0 && f.meta.RowGroups[g-1].MaxTraceID >= first {
			t.Fatalf("row group %d starts inside the trace that ends row group %d", g, g-1)
		}
	}
	if int64(rows) != f.meta.TotalSpans {
		t.Fatalf("%d rows, meta says %d spans", rows, f.meta.TotalSpans)
	}
}

func openParquet(t *testing.T, f *fixture) *parquet.File {
	t.Helper()
	r := f.open(t)
	pf, _, err := r.loadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

func TestMeta(t *testing.T) {
	f := writeFixture(t, 100, WriteOptions{})
	m := f.meta
	var spans int64
	minStart, maxEnd := uint64(1<<63), uint64(0)
	for _, recs := range f.want {
		for _, rec := range recs {
			sp := unmarshal(t, []byte(rec)).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			spans++
			minStart = min(minStart, uint64(sp.StartTimestamp()))
			maxEnd = max(maxEnd, uint64(sp.EndTimestamp()))
		}
	}
	if m.Format != FormatV1 || m.TenantID != "tenant-a" || m.TotalTraces != int64(len(f.want)) || m.TotalSpans != spans {
		t.Fatalf("meta %+v; want %d traces, %d spans", m, len(f.want), spans)
	}
	if m.StartTime != time.Unix(0, int64(minStart)).UTC() || m.EndTime != time.Unix(0, int64(maxEnd)).UTC() {
		t.Fatalf("times %v..%v, want %v..%v", m.StartTime, m.EndTime, time.Unix(0, int64(minStart)).UTC(), time.Unix(0, int64(maxEnd)).UTC())
	}
	if m.Source != (Source{Partition: 3, FirstOffset: 10, LastOffset: 20}) || time.Since(m.CreatedAt) > time.Minute {
		t.Fatalf("source %+v, created %v", m.Source, m.CreatedAt)
	}
	var rows int64
	for _, rg := range m.RowGroups {
		rows += rg.Rows
	}
	if len(m.RowGroups) != 1 || rows != spans {
		t.Fatalf("row groups %+v", m.RowGroups)
	}
	for name, want := range map[string]int64{DataName: m.Size, BloomName: m.BloomBytes} {
		attrs, err := f.bkt.Attributes(ctx, m.ObjectName(name))
		if err != nil || attrs.Size != want || want == 0 {
			t.Fatalf("%s: %+v, %v; meta says %d bytes", name, attrs, err, want)
		}
	}
	// The stored meta.json is what Write returned.
	stored, err := ReadMeta(ctx, f.bkt, m.TenantID, m.BlockID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.CreatedAt.Equal(m.CreatedAt) {
		stored.CreatedAt = m.CreatedAt
	}
	if !metaEqual(stored, m) {
		t.Fatalf("stored meta %+v\nreturned %+v", stored, m)
	}
	// meta.json is uploaded last.
	wantOrder := []string{m.ObjectName(DataName), m.ObjectName(BloomName), m.ObjectName(MetaName)}
	if !slices.Equal(f.bkt.uploads, wantOrder) {
		t.Fatalf("uploads %v, want %v", f.bkt.uploads, wantOrder)
	}
}

func metaEqual(a, b *Meta) bool {
	return a.Format == b.Format && a.BlockID == b.BlockID && a.TenantID == b.TenantID &&
		a.StartTime.Equal(b.StartTime) && a.EndTime.Equal(b.EndTime) && a.TotalTraces == b.TotalTraces &&
		a.TotalSpans == b.TotalSpans && a.Size == b.Size && a.BloomBytes == b.BloomBytes &&
		slices.Equal(a.RowGroups, b.RowGroups) && a.Source == b.Source && a.CreatedAt.Equal(b.CreatedAt) &&
		a.CompactionLevel == b.CompactionLevel && slices.Equal(a.CompactedFrom, b.CompactedFrom)
}

func TestWriteSameIDReplaces(t *testing.T) {
	bkt := newBucket(t)
	id := uuid.New()
	write := func(seed uint64, traces int) (*Meta, ptrace.Traces) {
		td := spangen.Generate(spangen.Options{Seed: seed, Traces: traces, SpansPerTrace: 5})
		buf := NewBuffer(nil)
		defer buf.Release()
		addTraces(t, buf, td)
		m, err := Write(ctx, bkt, "t1", id, Source{}, buf, WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m, td
	}
	_, first := write(1, 30)
	m2, second := write(2, 7)
	got, err := ReadMeta(ctx, bkt, "t1", id)
	if err != nil || got.TotalTraces != 7 || got.Size != m2.Size {
		t.Fatalf("meta after rewrite: %+v, %v", got, err)
	}
	metas, err := ListBlocks(ctx, bkt, "t1")
	if err != nil || len(metas) != 1 {
		t.Fatalf("ListBlocks: %d blocks, %v", len(metas), err)
	}
	r, err := Open(ctx, bkt, got)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := r.FindTraceByID(ctx, first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()); err != nil || data != nil {
		t.Fatalf("trace of the replaced block still found: %v", err)
	}
	if data, err := r.FindTraceByID(ctx, second.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()); err != nil || data == nil {
		t.Fatalf("trace of the new block not found: %v", err)
	}
}

func TestBufferKeepsSpansAfterWrite(t *testing.T) {
	bkt := newBucket(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	buf := NewBuffer(mem)
	if buf.Bytes() != 0 || buf.Spans() != 0 {
		t.Fatalf("new buffer: %d bytes, %d spans", buf.Bytes(), buf.Spans())
	}
	if _, err := Write(ctx, bkt, "t", uuid.New(), Source{}, buf, WriteOptions{}); err == nil {
		t.Fatal("empty buffer written")
	}
	a := spangen.Generate(spangen.Options{Seed: 1, Traces: 10, SpansPerTrace: 3})
	addTraces(t, buf, a)
	before := buf.Bytes()
	if before <= 0 || buf.Spans() != 30 {
		t.Fatalf("after Add: %d bytes, %d spans", before, buf.Spans())
	}
	m1, err := Write(ctx, bkt, "t", uuid.New(), Source{}, buf, WriteOptions{})
	if err != nil || m1.TotalSpans != 30 {
		t.Fatalf("%+v, %v", m1, err)
	}
	b := spangen.Generate(spangen.Options{Seed: 2, Traces: 5, SpansPerTrace: 3})
	addTraces(t, buf, b)
	if buf.Bytes() <= before {
		t.Fatalf("Bytes did not grow: %d -> %d", before, buf.Bytes())
	}
	m2, err := Write(ctx, bkt, "t", uuid.New(), Source{}, buf, WriteOptions{})
	if err != nil || m2.TotalSpans != 45 || m2.TotalTraces != 15 {
		t.Fatalf("%+v, %v", m2, err)
	}
	buf.Release()
	mem.AssertSize(t, 0)
	if buf.Bytes() != 0 {
		t.Fatalf("released buffer holds %d bytes", buf.Bytes())
	}
	if err := buf.Add(parse(t, spangen.Marshal(a))); err == nil {
		t.Fatal("Add after Release accepted")
	}
}

func TestAddRefusesBadSpansWhole(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(ptrace.Span)
		want string
	}{
		{"empty trace id", func(sp ptrace.Span) { sp.SetTraceID(pcommon.TraceID{}) }, "trace ID must be 16 bytes"},
		{"empty span id", func(sp ptrace.Span) { sp.SetSpanID(pcommon.SpanID{}) }, "span ID must be 8 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := spangen.Generate(spangen.Options{Seed: 1, Traces: 3, SpansPerTrace: 3, Services: 1})
			tc.edit(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(5))
			buf := NewBuffer(nil)
			defer buf.Release()
			err := buf.Add(parse(t, spangen.Marshal(td)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "spans[5]") {
				t.Fatalf("err = %v", err)
			}
			if buf.Spans() != 0 {
				t.Fatalf("%d spans kept from a refused batch", buf.Spans())
			}
		})
	}
}

// loadBloom reads a block's bloom filter the way the reader does.
func loadBloom(t *testing.T, f *fixture) *bloom.BloomFilter {
	t.Helper()
	r := f.open(t)
	bf, err := r.loadBloom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bf
}

func TestAbsentTrace(t *testing.T) {
	f := writeFixture(t, 200, WriteOptions{})
	bf := loadBloom(t, f)
	rng := rand.New(rand.NewPCG(1, 2))
	var negative, falsePositive [16]byte
	for foundNeg, foundFP := false, false; !foundNeg || !foundFP; {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], rng.Uint64())
		binary.BigEndian.PutUint64(id[8:], rng.Uint64())
		if _, sent := f.want[id]; sent {
			continue
		}
		if bf.Test(id[:]) {
			falsePositive, foundFP = id, true
		} else {
			negative, foundNeg = id, true
		}
	}
	r := f.open(t)
	f.bkt.reads()
	data, err := r.FindTraceByID(ctx, negative)
	if err != nil || data != nil {
		t.Fatalf("absent trace: %v, %v", data, err)
	}
	gets, ranges := f.bkt.reads()
	if !slices.Equal(gets, []string{f.meta.ObjectName(BloomName)}) || len(ranges) != 0 {
		t.Fatalf("a lookup the bloom filter rules out read %v and %d ranges", gets, len(ranges))
	}
	if data, err := r.FindTraceByID(ctx, negative); err != nil || data != nil {
		t.Fatalf("second lookup: %v, %v", data, err)
	}
	if gets, ranges := f.bkt.reads(); len(gets)+len(ranges) != 0 {
		t.Fatalf("the bloom filter is not cached: %v %v", gets, ranges)
	}
	// A false positive of the bloom filter reads the file and finds nothing.
	if data, err := r.FindTraceByID(ctx, falsePositive); err != nil || data != nil {
		t.Fatalf("false positive: %v, %v", data, err)
	}
}

// chunkExtent is the byte range of a column chunk in data.parquet.
func chunkExtent(pf *parquet.File, g, col int) [2]int64 {
	md := pf.Metadata().RowGroups[g].Columns[col].MetaData
	start := md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
		start = md.DictionaryPageOffset
	}
	return [2]int64{start, start + md.TotalCompressedSize}
}

// covered tells whether every byte of r lies in one of the extents.
func covered(r readRange, exts [][2]int64) bool {
	for pos := r.off; pos < r.off+r.len; {
		i := slices.IndexFunc(exts, func(e [2]int64) bool { return pos >= e[0] && pos < e[1] })
		if i < 0 {
			return false
		}
		pos = exts[i][1]
	}
	return true
}

func overlaps(r readRange, ext [2]int64) bool { return r.off < ext[1] && r.off+r.len > ext[0] }

func TestMultiRowGroupLookupReadsOneRowGroup(t *testing.T) {
	f := writeFixture(t, 400, WriteOptions{RowGroupBytes: 48 << 10})
	if len(f.meta.RowGroups) < 5 {
		t.Fatalf("%d row groups, want several", len(f.meta.RowGroups))
	}
	r := f.open(t)
	pf, cols, err := r.loadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for g, rg := range f.meta.RowGroups {
		for _, hexID := range []string{rg.MinTraceID, rg.MaxTraceID} {
			var id [16]byte
			hex.Decode(id[:], []byte(hexID))
			f.bkt.reads()
			data, err := r.FindTraceByID(ctx, id)
			if err != nil || data == nil {
				t.Fatalf("row group %d: trace %s: %v", g, hexID, err)
			}
			if got := spanRecords(t, unmarshal(t, data)); !slices.Equal(got[id], f.want[id]) {
				t.Fatalf("row group %d: trace %s differs", g, hexID)
			}
			_, ranges := f.bkt.reads()
			for _, rr := range ranges {
				for og := range f.meta.RowGroups {
					for col := range pf.Metadata().RowGroups[og].Columns {
						if og != g && overlaps(rr, chunkExtent(pf, og, col)) {
							t.Fatalf("lookup in row group %d read [%d,+%d) of row group %d", g, rr.off, rr.len, og)
						}
					}
				}
				// Only the columns the lookup needs: trace_id and the raw
				// columns (and page indexes, which lie after the data).
				var allowed [][2]int64
				for _, col := range []int{cols.traceID, cols.span, cols.resource, cols.scope} {
					allowed = append(allowed, chunkExtent(pf, g, col))
				}
				pageIndexes := chunkExtent(pf, len(f.meta.RowGroups)-1, len(pf.Metadata().RowGroups[0].Columns)-1)[1]
				if rr.off < pageIndexes && !covered(rr, allowed) {
					t.Fatalf("lookup in row group %d read [%d,+%d), outside the columns it needs", g, rr.off, rr.len)
				}
			}
		}
	}
}

func TestLookupReadsFewPages(t *testing.T) {
	// One big row group: the page indexes must keep a lookup to a few pages.
	f := writeFixture(t, 4000, WriteOptions{RowGroupBytes: 1 << 30})
	r := f.open(t)
	pf, cols, err := r.loadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spanChunk := chunkExtent(pf, 0, cols.span)
	ids := traceIDs(f.want)
	id := ids[len(ids)/2]
	if data, err := r.FindTraceByID(ctx, id); err != nil || data == nil { // warm the page indexes
		t.Fatal(err)
	}
	f.bkt.reads()
	if data, err := r.FindTraceByID(ctx, ids[len(ids)/2+1]); err != nil || data == nil {
		t.Fatal(err)
	}
	gets, ranges := f.bkt.reads()
	read := rangeBytes(ranges)
	spanSize := spanChunk[1] - spanChunk[0]
	t.Logf("file %d bytes, span column %d bytes, lookup read %d bytes in %d ranges", f.meta.Size, spanSize, read, len(ranges))
	if len(gets) != 0 || read*8 > spanSize || len(ranges) > 6 {
		t.Fatalf("lookup read %d bytes in %d ranges (and %v); the span column is %d bytes", read, len(ranges), gets, spanSize)
	}
}

func TestListTenantsAndBlocks(t *testing.T) {
	bkt := newBucket(t)
	write := func(tenant string, seed uint64, start time.Time) *Meta {
		buf := NewBuffer(nil)
		defer buf.Release()
		addTraces(t, buf, spangen.Generate(spangen.Options{Seed: seed, Traces: 3, SpansPerTrace: 2, Start: start}))
		m, err := Write(ctx, bkt, tenant, uuid.New(), Source{}, buf, WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	a2 := write("a", 1, t0.Add(time.Hour))
	a1 := write("a", 2, t0)
	write("b", 3, t0)
	// Blocks being written (no meta.json yet) and stray objects.
	for _, name := range []string{
		"a/" + uuid.NewString() + "/" + DataName,
		"c/" + uuid.NewString() + "/" + DataName,
		"c/" + uuid.NewString() + "/" + BloomName,
		"a/not-a-block/" + MetaName,
		"stray.json",
	} {
		if err := bkt.Upload(ctx, name, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	tenants, err := ListTenants(ctx, bkt)
	if err != nil || !slices.Equal(tenants, []string{"a", "b"}) {
		t.Fatalf("tenants %v, %v", tenants, err)
	}
	metas, err := ListBlocks(ctx, bkt, "a")
	if err != nil || len(metas) != 2 || metas[0].BlockID != a1.BlockID || metas[1].BlockID != a2.BlockID {
		t.Fatalf("blocks of a: %v, %v", metas, err)
	}
	if metas, err := ListBlocks(ctx, bkt, "c"); err != nil || len(metas) != 0 {
		t.Fatalf("blocks of c: %v, %v", metas, err)
	}
	if metas, err := ListBlocks(ctx, bkt, "nobody"); err != nil || len(metas) != 0 {
		t.Fatalf("blocks of an unknown tenant: %v, %v", metas, err)
	}
	if _, err := ReadMeta(ctx, bkt, "a", uuid.New()); err == nil || !bkt.IsObjNotFoundErr(err) {
		t.Fatalf("ReadMeta of an absent block: %v", err)
	}
}

func TestOpenRefusesUnknownFormat(t *testing.T) {
	m := &Meta{Format: "weft-parquet-v2", TenantID: "t", BlockID: uuid.New()}
	_, err := Open(ctx, newBucket(t), m)
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), `"weft-parquet-v2"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteRefusesBadTenant(t *testing.T) {
	buf := NewBuffer(nil)
	defer buf.Release()
	addTraces(t, buf, spangen.Generate(spangen.Options{Seed: 1, Traces: 1, SpansPerTrace: 1}))
	for _, tenant := range []string{"", "a/b", "..", "."} {
		if _, err := Write(ctx, newBucket(t), tenant, uuid.New(), Source{}, buf, WriteOptions{}); err == nil {
			t.Errorf("tenant %q accepted", tenant)
		}
	}
}

// TestSearchColumns checks the columns other than the raw ones, which
// search reads: dedicated columns, generic attribute lists, event names.
func TestSearchColumns(t *testing.T) {
	f := writeFixture(t, 8, WriteOptions{})
	pf := openParquet(t, f)
	rd := parquet.NewGenericReader[pqRow](pf)
	rows := make([]pqRow, pf.NumRows())
	if n, _ := rd.Read(rows); n != len(rows) {
		t.Fatalf("read %d of %d rows", n, len(rows))
	}
	rich := richTraces()
	richTID := rich.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	attrs := func(as []pqAttr) map[string]pqAttr {
		m := map[string]pqAttr{}
		for _, a := range as {
			m[a.Key] = a
		}
		return m
	}
	var checked int
	for _, row := range rows {
		if row.TraceID != richTID || row.SpanID != (pcommon.SpanID{8, 7, 6, 5, 4, 3, 0, 0}) {
			continue
		}
		checked++
		str := func(p *string) string {
			if p == nil {
				return "<null>"
			}
			return *p
		}
		if row.Name != "rich span <&>" || row.Kind != int32(ptrace.SpanKindConsumer) || row.StatusCode != 1 || row.StatusMessage != "fine" ||
			len(row.ParentSpanID) != 0 || row.DurationNano != 1_000_000_000 || row.StartUnixNano != 1_767_225_600_000_000_000 {
			t.Errorf("span columns: %+v", row)
		}
		if str(row.ServiceName) != "rich" || str(row.ResK8sClusterName) != "prod-eu" || str(row.ResK8sContainerName) != "app" ||
			row.ResK8sPodName != nil || row.ResK8sNamespaceName != nil {
			t.Errorf("resource columns: %s %s %s", str(row.ServiceName), str(row.ResK8sClusterName), str(row.ResK8sPodName))
		}
		if str(row.HTTPRequestMethod) != "POST" || row.HTTPStatusCode == nil || *row.HTTPStatusCode != 201 ||
			row.HTTPResponseStatusCode != nil || str(row.URLPath) != "" || row.HTTPRoute != nil {
			t.Errorf("dedicated span columns: %s %v %s", str(row.HTTPRequestMethod), row.HTTPStatusCode, str(row.URLPath))
		}
		sa := attrs(row.SpanAttrs)
		want := map[string]pqAttr{
			"http.response.status_code": {"http.response.status_code", "201", 1},
			"str":                       {"str", "a \"quoted\" <string>", 1},
			"bool":                      {"bool", "true", 2},
			"int":                       {"int", "-42", 3},
			"double":                    {"double", "3.25", 4},
			"nan":                       {"nan", "NaN", 4},
			"array":                     {"array", `["x<y",7,0.5]`, 5},
			"map":                       {"map", `{"inner":{"n":1},"z":"last"}`, 6},
			"bytes":                     {"bytes", "AAEC+g==", 7},
			"empty":                     {"empty", "", 0},
		}
		if len(sa) != len(want) {
			t.Errorf("span_attrs %v", row.SpanAttrs)
		}
		for k, w := range want {
			if sa[k] != w {
				t.Errorf("span_attrs[%s] = %+v, want %+v", k, sa[k], w)
			}
		}
		ra := attrs(row.ResourceAttrs)
		if len(ra) != 2 || ra["process.pid"] != (pqAttr{"process.pid", "4242", 3}) ||
			ra["process.command_args"] != (pqAttr{"process.command_args", `["app","--flag"]`, 5}) {
			t.Errorf("resource_attrs %v", row.ResourceAttrs)
		}
		if !slices.Equal(row.EventNames, []string{"ev1", "ev2"}) {
			t.Errorf("event_names %v", row.EventNames)
		}
	}
	// The resource whose service.name is an int: generic, no service_name.
	for _, row := range rows {
		if row.TraceID == richTID && row.SpanID == (pcommon.SpanID{8, 7, 6, 5, 4, 3, 1, 0}) {
			checked++
			if row.ServiceName != nil || attrs(row.ResourceAttrs)["service.name"] != (pqAttr{"service.name", "7", 3}) {
				t.Errorf("int service.name: %v %v", row.ServiceName, row.ResourceAttrs)
			}
		}
		if bytes.Equal(row.SpanID[:], []byte{1, 0, 0, 0, 0, 0, 0, 0}) {
			checked++
			if row.ServiceName != nil || len(row.ResourceAttrs) != 0 || len(row.SpanAttrs) != 0 || row.Name != "" {
				t.Errorf("bare span: %+v", row)
			}
		}
	}
	if checked != 3 {
		t.Fatalf("checked %d rows, want 3", checked)
	}
}

// TestPqarrowFileReadable writes the fixture's buffer with the pqarrow
// writer (kept for BenchmarkWrite) and reads it back with the Reader: the
// format does not depend on the writer.
func TestPqarrowFileReadable(t *testing.T) {
	bkt := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	td := spangen.Generate(spangen.Options{Seed: 5, Traces: 300, SpansPerTrace: 6})
	addTraces(t, buf, td)
	addTraces(t, buf, richTraces())
	want := spanRecords(t, td)
	mergeRecords(want, spanRecords(t, richTraces()))
	buf.flush()
	p, err := newPlan(buf, WriteOptions{RowGroupBytes: 64 << 10}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	if err := writeParquetArrow(&data, p, memory.DefaultAllocator, pqcompress.Codecs.Zstd); err != nil {
		t.Fatal(err)
	}
	meta := p.meta("t", uuid.New(), Source{})
	meta.Size = int64(data.Len())
	var bl bytes.Buffer
	p.bloom.WriteTo(&bl)
	for name, b := range map[string][]byte{DataName: data.Bytes(), BloomName: bl.Bytes()} {
		if err := bkt.Upload(ctx, meta.ObjectName(name), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(ctx, bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	findsEveryTrace(t, r, want, "pqarrow-written block")
}

func TestConcurrentLookups(t *testing.T) {
	f := writeFixture(t, 200, WriteOptions{RowGroupBytes: 32 << 10})
	r := f.open(t) // cold: bloom, footer and page indexes load under contention
	ids := traceIDs(f.want)
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < len(ids); i += 8 {
				data, err := r.FindTraceByID(ctx, ids[i])
				if err == nil && data == nil {
					err = errors.New("trace not found")
				}
				if err == nil && !slices.Equal(spanRecords(t, unmarshal(t, data))[ids[i]], f.want[ids[i]]) {
					err = errors.New("trace differs")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A block ID that comes back for other spans (a Kafka topic recreated, its
// offsets starting again) must never replace the stored block; a rebuild
// of the same input (same origin and first record, after a crash) must,
// and so must a meta.json cut short by a crash.
func TestWriteNeverReplacesABlockOfOtherSpans(t *testing.T) {
	bkt := newBucket(t)
	id := uuid.New()
	write := func(seed uint64, src Source) (ptrace.Traces, error) {
		td := spangen.Generate(spangen.Options{Seed: seed, Traces: 10, SpansPerTrace: 3})
		buf := NewBuffer(nil)
		defer buf.Release()
		addTraces(t, buf, td)
		_, err := Write(ctx, bkt, "t1", id, src, buf, WriteOptions{})
		return td, err
	}
	firstTrace := func(td ptrace.Traces) pcommon.TraceID {
		return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	}
	finds := func(td ptrace.Traces) bool {
		t.Helper()
		m, err := ReadMeta(ctx, bkt, "t1", id)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, bkt, m)
		if err != nil {
			t.Fatal(err)
		}
		data, err := r.FindTraceByID(ctx, firstTrace(td))
		if err != nil {
			t.Fatal(err)
		}
		return data != nil
	}

	stored, err := write(1, Source{Origin: "kafka/topic/rec-a", Partition: 2, FirstOffset: 0, LastOffset: 9})
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []Source{
		{Origin: "kafka/topic/rec-b", Partition: 2, FirstOffset: 0, LastOffset: 9}, // recreated topic
		{Origin: "kafka/topic/rec-a", Partition: 3, FirstOffset: 0, LastOffset: 9},
		{Origin: "kafka/topic/rec-a", Partition: 2, FirstOffset: 1, LastOffset: 9},
	} {
		other, err := write(2, src)
		if !errors.Is(err, ErrIDTaken) {
			t.Fatalf("writing spans from %s under a taken ID: err %v, want ErrIDTaken", src, err)
		}
		if !finds(stored) || finds(other) {
			t.Fatalf("after refusing spans from %s the stored block changed", src)
		}
	}

	// A rebuild after a crash: same start, another end.
	rebuilt, err := write(3, Source{Origin: "kafka/topic/rec-a", Partition: 2, FirstOffset: 0, LastOffset: 12})
	if err != nil {
		t.Fatalf("rebuild of the same input refused: %v", err)
	}
	if !finds(rebuilt) || finds(stored) {
		t.Fatal("the rebuild did not replace the block")
	}

	// A meta.json cut short by a crash is replaced by the rebuild.
	if err := bkt.Upload(ctx, objectName("t1", id, MetaName), strings.NewReader(`{"format":`)); err != nil {
		t.Fatal(err)
	}
	again, err := write(4, Source{Origin: "kafka/topic/rec-a", Partition: 2, FirstOffset: 0, LastOffset: 12})
	if err != nil || !finds(again) {
		t.Fatalf("a torn meta.json was not replaced: %v", err)
	}
}
