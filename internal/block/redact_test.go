package block

import (
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
)

// secretTrace is one trace of two spans whose span attribute secret is
// value, with trace ID id.
func secretTrace(id [16]byte, value string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vault")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range 2 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID([8]byte{byte(i + 1), 9})
		sp.SetName("open")
		sp.SetStartTimestamp(pcommon.Timestamp(1e18 + 1e9*uint64(i)))
		sp.SetEndTimestamp(pcommon.Timestamp(1e18 + 1e9*uint64(i) + 5e8))
		sp.Attributes().PutStr("secret", value)
	}
	return td
}

// Rewriting a block without some traces: every other span reads back with
// its bytes, the dropped traces are gone from FindTraceByID, Scan and tag
// values, the output replaces the input in the block list, a retry gives
// the same block, and a block without the traces is not rewritten.
func TestRedact(t *testing.T) {
	bkt := newBucket(t)
	secret := [16]byte{0x7f, 1, 2, 3}
	gen := spangen.Generate(spangen.Options{Seed: 5, Traces: 40, SpansPerTrace: 6, Services: 3})
	in := writeInput(t, bkt, 0, gen, secretTrace(secret, "s3cr3t"), richTraces())
	before, _ := rawSpans(t, readAll(t, bkt, in))
	traces := byTrace(before)
	// The secret trace and two others.
	drop := [][16]byte{secret}
	for id := range traces {
		if len(drop) == 3 {
			break
		}
		if id != secret {
			drop = append(drop, id)
		}
	}
	var dropSpans int64
	want := maps.Clone(before)
	for _, id := range drop {
		dropSpans += int64(len(traces[id]))
		for k := range traces[id] {
			delete(want, k)
		}
	}
	opts := RedactOptions{CompactOptions: CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}}, Request: "r1", Set: "s"}

	dry := opts
	dry.DryRun = true
	res, err := Redact(ctx, bkt, in, drop, dry)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written || res.Meta != nil || res.TracesRemoved != 3 || res.SpansRemoved != dropSpans {
		t.Fatalf("dry run: %+v, want 3 traces and %d spans counted, nothing written", res, dropSpans)
	}
	if metas, _ := ListBlocks(ctx, bkt, "t"); len(metas) != 1 {
		t.Fatalf("dry run: %d blocks listed, want the input alone", len(metas))
	}

	res, err = Redact(ctx, bkt, in, drop, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	if !res.Written || m == nil || res.TracesRemoved != 3 || res.SpansRemoved != dropSpans {
		t.Fatalf("redact: %+v, want a block written without 3 traces and %d spans", res, dropSpans)
	}
	if m.BlockID != RedactedID("t", in.BlockID, "r1", "s") || m.CompactionLevel != in.CompactionLevel ||
		len(m.CompactedFrom) != 1 || m.CompactedFrom[0] != in.BlockID || m.Redaction == nil || m.Redaction.Request != "r1" ||
		m.TotalSpans != in.TotalSpans-dropSpans || m.TotalTraces != in.TotalTraces-3 || m.Source.Origin != RedactionOrigin {
		t.Fatalf("redacted meta %+v (redaction %+v)", m, m.Redaction)
	}
	read, err := ReadMeta(ctx, bkt, "t", m.BlockID)
	if err != nil {
		t.Fatalf("the redacted block's meta.json does not read back: %v", err)
	}
	if !metaEqual(read, m) {
		t.Fatalf("meta.json %+v, returned %+v", read, m)
	}
	got, _ := rawSpans(t, readAll(t, bkt, m))
	diffSpans(t, "redacted block", got, want)
	checkSortedRows(t, bkt, m)

	r, err := Open(ctx, bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, id := range drop {
		if data, err := r.FindTraceByID(ctx, id); err != nil || data != nil {
			t.Fatalf("trace %x: found (%d bytes, %v) after it was redacted", id, len(data), err)
		}
	}
	for id := range byTrace(want) {
		data, err := r.FindTraceByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		spans, _ := rawSpans(t, data)
		diffSpans(t, "trace by ID", spans, byTrace(want)[id])
	}
	seen := 0
	if _, err := r.Scan(ctx, ScanRequest{}, func(id [16]byte, data []byte) error {
		seen++
		for _, d := range drop {
			if id == d {
				t.Errorf("Scan hands over redacted trace %x", id)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != len(byTrace(want)) {
		t.Fatalf("Scan: %d traces, want %d", seen, len(byTrace(want)))
	}
	if vs, _, err := r.TagValues(ctx, TagScopeSpan, "secret"); err != nil || len(vs) != 0 {
		t.Fatalf("tag values of secret after redaction: %v, %v; want none", vs, err)
	}
	if vs, _, _ := mustOpen(t, bkt, in).TagValues(ctx, TagScopeSpan, "secret"); len(vs) != 1 {
		t.Fatalf("the input's tag values of secret: %v, want one (the test would prove nothing)", vs)
	}

	// A retry after it finished writes nothing and gives the same block.
	again, err := Redact(ctx, bkt, in, drop, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Written || again.Meta == nil || again.Meta.BlockID != m.BlockID || !again.Meta.CreatedAt.Equal(m.CreatedAt) ||
		again.SpansRemoved != dropSpans {
		t.Fatalf("retry: %+v, want block %s untouched with its counts", again, m.BlockID)
	}
	// Another request is another block.
	if RedactedID("t", in.BlockID, "r2", "s") == m.BlockID || RedactedID("t", in.BlockID, "r1", "s2") == m.BlockID {
		t.Fatal("RedactedID ignores the request or the set")
	}

	// Traces the block does not hold: nothing written.
	absent := [][16]byte{{0xff, 0xee}, {0x01}}
	before2 := objectCount(t, bkt)
	none, err := Redact(ctx, bkt, in, absent, RedactOptions{CompactOptions: opts.CompactOptions, Request: "r3", Set: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if none.Written || none.Meta != nil || none.Matched || none.SpansRemoved != 0 {
		t.Fatalf("no matching trace: %+v, want nothing done", none)
	}
	if n := objectCount(t, bkt); n != before2 {
		t.Fatalf("no matching trace: %d objects, were %d", n, before2)
	}

	// A block holding nothing but the traces: no output.
	only := writeInput(t, bkt, 7, secretTrace(secret, "x"))
	all, err := Redact(ctx, bkt, only, [][16]byte{secret}, RedactOptions{CompactOptions: opts.CompactOptions, Request: "r4", Set: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if !all.Emptied || all.Meta != nil || all.SpansRemoved != 2 {
		t.Fatalf("a block of the trace alone: %+v, want it emptied, no output", all)
	}
	if ok, _ := bkt.Exists(ctx, objectName("t", RedactedID("t", only.BlockID, "r4", "s"), DataName)); ok {
		t.Fatal("an emptied block left its data.parquet")
	}
}

func mustOpen(t *testing.T, bkt *spyBucket, m *Meta) *Reader {
	t.Helper()
	r, err := Open(ctx, bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func objectCount(t *testing.T, bkt *spyBucket) int {
	t.Helper()
	n := 0
	if err := bkt.Iter(ctx, "", func(string) error { n++; return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	return n
}

// A redacted block's meta must name exactly one input.
func TestMetaRedactionFields(t *testing.T) {
	m := &Meta{Format: FormatV1, BlockID: uuid.New(), TenantID: "t", StartTime: time.Unix(1, 0), EndTime: time.Unix(2, 0),
		TotalTraces: 1, TotalSpans: 1, Size: 100, BloomBytes: 1, RowGroups: []RowGroupMeta{{MinTraceID: "00000000000000000000000000000001", MaxTraceID: "00000000000000000000000000000001", Rows: 1}},
		Redaction: &Redaction{Request: "r"}, CompactedFrom: []uuid.UUID{uuid.New()}}
	if err := m.Validate(); err != nil {
		t.Fatalf("a redacted block of level 0: %v", err)
	}
	m.CompactedFrom = append(m.CompactedFrom, uuid.New())
	if err := m.Validate(); err == nil {
		t.Fatal("a redacted block of two inputs is valid")
	}
	m.CompactedFrom, m.Redaction = m.CompactedFrom[:1], nil
	if err := m.Validate(); err == nil {
		t.Fatal("a level-0 block with an input and no redaction is valid")
	}
}

// BenchmarkRedact rewrites a block of 25,000 spans (2,500 traces) without
// 10 of its traces, on a filesystem bucket; spans/s counts the spans of
// the input. Per core:
//
//	go test ./internal/block -run '^$' -bench 'BenchmarkRedact$' -benchtime 5x -cpu 1
func BenchmarkRedact(b *testing.B) {
	bkt := newBucket(b)
	in := writeSpangenBlock(b, bkt, seedRange(1000, 25)...)
	all, _ := rawSpans(b, readAll(b, bkt, in))
	var drop [][16]byte
	for id := range byTrace(all) {
		if len(drop) == 10 {
			break
		}
		drop = append(drop, id)
	}
	var res *RedactResult
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if res, err = Redact(ctx, bkt, in, drop, RedactOptions{Request: "bench", Set: "s"}); err != nil {
			b.Fatal(err)
		}
		if !res.Written || res.TracesRemoved != 10 {
			b.Fatalf("%+v", res)
		}
		if err := bkt.Delete(ctx, res.Meta.ObjectName(MetaName)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(in.TotalSpans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}
