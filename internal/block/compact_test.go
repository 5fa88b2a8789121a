package block

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
)

// spanKey identifies a span: what Compact deduplicates on.
type spanKey struct {
	trace [16]byte
	span  [8]byte
}

// rawRec is a span's raw columns as a block gives them back.
type rawRec struct{ span, resource, scope string }

// rawSpans returns the spans of a TracesData message by key, with their
// raw bytes, and how many spans it holds (more than the keys when a span
// is there twice).
func rawSpans(t testing.TB, data []byte) (map[spanKey]rawRec, int) {
	t.Helper()
	b := parse(t, data)
	out := map[spanKey]rawRec{}
	n := 0
	for _, res := range b.Resources {
		for _, sc := range res.Scopes {
			for _, sp := range sc.Spans {
				var k spanKey
				copy(k.trace[:], sp.TraceID)
				copy(k.span[:], sp.SpanID)
				out[k] = rawRec{string(sp.Raw), string(res.Header), string(sc.Header)}
				n++
			}
		}
	}
	return out, n
}

// compactRowGroupBytes makes blocks of several row groups from little data.
const compactRowGroupBytes = 4 << 10

// writeInput writes one block of tenant t from parts, each sent as one
// Add call.
func writeInput(t testing.TB, bkt objstore.Bucket, offset int64, parts ...ptrace.Traces) *Meta {
	t.Helper()
	buf := NewBuffer(nil)
	defer buf.Release()
	for _, p := range parts {
		addTraces(t, buf, p)
	}
	m, err := Write(ctx, bkt, "t", uuid.New(), Source{Origin: "test", FirstOffset: offset, LastOffset: offset}, buf,
		WriteOptions{RowGroupBytes: compactRowGroupBytes})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// compactFixture is three blocks of tenant t with every case a merge
// meets: traces in one block only, traces whose spans are spread over the
// three, traces stored whole in two blocks (a redelivery), single spans
// repeated in another block and within one block, and one span stored
// twice with different contents.
type compactFixture struct {
	bkt    *spyBucket
	inputs []*Meta
	// conflict is the span stored with two contents (in inputs 0 and 1).
	conflict spanKey
}

func newCompactFixture(t testing.TB) *compactFixture {
	t.Helper()
	bkt := newBucket(t)
	base := spangen.Generate(spangen.Options{Seed: 1, Traces: 40, SpansPerTrace: 6, Services: 3})
	split := splitBySpan(spangen.Generate(spangen.Options{Seed: 2, Traces: 30, SpansPerTrace: 9, Services: 3,
		Start: time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)}))
	dup := spangen.Generate(spangen.Options{Seed: 3, Traces: 20, SpansPerTrace: 5, Services: 2,
		Start: time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)})
	baseSpans := splitBySpan(base)

	parts := make([][]ptrace.Traces, 3)
	parts[0] = append(parts[0], base)
	for i, s := range split {
		parts[i%3] = append(parts[i%3], s)
	}
	parts[0] = append(parts[0], split[0]) // twice in one block
	parts[1] = append(parts[1], dup, richTraces())
	parts[2] = append(parts[2], dup, richTraces())
	for i := 0; i < len(baseSpans); i += 7 {
		parts[2] = append(parts[2], baseSpans[i])
	}
	// The same span with another name: the copy in the input of the
	// smaller block ID is kept (same start time).
	changed := ptrace.NewTraces()
	baseSpans[3].CopyTo(changed)
	sp := changed.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.SetName("changed")
	parts[1] = append(parts[1], changed)

	f := &compactFixture{bkt: bkt}
	for i, p := range parts {
		f.inputs = append(f.inputs, writeInput(t, bkt, int64(i), p...))
	}
	f.conflict = spanKey{trace: sp.TraceID(), span: sp.SpanID()}
	return f
}

// want is the spans the output must hold: the union of the inputs' spans,
// the first copy in block-ID order kept.
func (f *compactFixture) want(t testing.TB) (map[spanKey]rawRec, int) {
	t.Helper()
	ins := slices.Clone(f.inputs)
	slices.SortFunc(ins, func(a, b *Meta) int { return compareIDs(a.BlockID, b.BlockID) })
	want := map[spanKey]rawRec{}
	stored := 0
	for _, m := range ins {
		got, n := rawSpans(t, readAll(t, f.bkt, m))
		stored += n
		for k, v := range got {
			if _, ok := want[k]; !ok {
				want[k] = v
			}
		}
	}
	return want, stored
}

func readAll(t testing.TB, bkt objstore.BucketReader, m *Meta) []byte {
	t.Helper()
	r, err := Open(ctx, bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func byTrace(spans map[spanKey]rawRec) map[[16]byte]map[spanKey]rawRec {
	out := map[[16]byte]map[spanKey]rawRec{}
	for k, v := range spans {
		if out[k.trace] == nil {
			out[k.trace] = map[spanKey]rawRec{}
		}
		out[k.trace][k] = v
	}
	return out
}

// Merging three blocks gives back exactly the union of their spans, each
// once with its bytes, by ReadAll, by FindTraceByID and by Scan; rows are
// sorted and each trace lies in one row group.
func TestCompactMergesExactly(t *testing.T) {
	f := newCompactFixture(t)
	want, stored := f.want(t)
	traces := byTrace(want)

	res, err := Compact(ctx, f.bkt, f.inputs, CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	if !res.Written {
		t.Fatal("the first compaction says it wrote nothing")
	}
	var uploads []string
	for _, u := range f.bkt.uploads {
		if strings.HasPrefix(u, "t/"+m.BlockID.String()+"/") {
			uploads = append(uploads, u)
		}
	}
	if wantOrder := []string{m.ObjectName(DataName), m.ObjectName(BloomName), m.ObjectName(MetaName)}; !slices.Equal(uploads, wantOrder) {
		t.Fatalf("uploads %v, want %v", uploads, wantOrder)
	}

	// meta.json: what ReadMeta reads back, with counts of the union.
	stored2, err := ReadMeta(ctx, f.bkt, "t", m.BlockID)
	if err != nil {
		t.Fatal(err)
	}
	if stored2.TotalSpans != m.TotalSpans || stored2.CompactionLevel != 1 || len(stored2.CompactedFrom) != 3 {
		t.Fatalf("stored meta.json: %+v", stored2)
	}
	var ids []uuid.UUID
	start, end := f.inputs[0].StartTime, f.inputs[0].EndTime
	for _, in := range f.inputs {
		ids = append(ids, in.BlockID)
		start, end = minTime(start, in.StartTime), maxTime(end, in.EndTime)
	}
	slices.SortFunc(ids, compareIDs)
	switch {
	case m.BlockID != CompactedID("t", ids):
		t.Errorf("block ID %s, CompactedID gives %s", m.BlockID, CompactedID("t", ids))
	case !slices.Equal(m.CompactedFrom, ids):
		t.Errorf("compactedFrom %v, want %v", m.CompactedFrom, ids)
	case m.CompactionLevel != 1:
		t.Errorf("compaction level %d, want 1", m.CompactionLevel)
	case m.TotalSpans != int64(len(want)):
		t.Errorf("totalSpans %d, want %d", m.TotalSpans, len(want))
	case m.TotalTraces != int64(len(traces)):
		t.Errorf("totalTraces %d, want %d", m.TotalTraces, len(traces))
	case !m.StartTime.Equal(start) || !m.EndTime.Equal(end):
		t.Errorf("time range %s-%s, want %s-%s", m.StartTime, m.EndTime, start, end)
	case m.Source != Source{Origin: CompactionOrigin}:
		t.Errorf("source %+v", m.Source)
	case res.SpansRead != int64(stored) || res.Duplicates != int64(stored-len(want)) || res.Duplicates == 0:
		t.Errorf("%d spans read, %d duplicates; the inputs store %d spans, %d distinct", res.SpansRead, res.Duplicates, stored, len(want))
	}
	if len(m.RowGroups) < 3 {
		t.Fatalf("%d row groups: the test wants several", len(m.RowGroups))
	}
	// The bloom filter is sized for the inputs' traces (at least the
	// output's), at the default false-positive rate.
	bf := &bloom.BloomFilter{}
	if _, err := bf.ReadFrom(bytes.NewReader(getObject(t, f.bkt, m.ObjectName(BloomName)))); err != nil {
		t.Fatal(err)
	}
	if want := bloom.NewWithEstimates(uint(m.TotalTraces), DefaultBloomFalsePositive); bf.Cap() < want.Cap() || bf.K() < want.K() {
		t.Errorf("bloom filter of %d bits, %d hashes; %d traces need %d bits, %d hashes", bf.Cap(), bf.K(), m.TotalTraces, want.Cap(), want.K())
	}

	// ReadAll: every span once, byte for byte.
	data := readAll(t, f.bkt, m)
	got, n := rawSpans(t, data)
	if n != len(got) {
		t.Errorf("ReadAll gives %d spans for %d distinct ones", n, len(got))
	}
	diffSpans(t, "ReadAll", got, want)
	if got[f.conflict].span != want[f.conflict].span {
		t.Error("the span stored with two contents: the copy kept is not the one of the smaller block ID")
	}
	unmarshal(t, data) // pdata reads it

	// FindTraceByID: each trace whole, alone.
	r, err := Open(ctx, f.bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for id, spans := range traces {
		data, err := r.FindTraceByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, n := rawSpans(t, data)
		if n != len(got) {
			t.Fatalf("trace %x: %d spans for %d distinct ones", id, n, len(got))
		}
		diffSpans(t, "FindTraceByID", got, spans)
	}

	// Scan with a predicate: the traces some input finds, each whole.
	req := ScanRequest{Selection: spanpred.Selection{Pred: serviceAndSlower{"service-1", int64(300 * time.Millisecond)}}}
	wantScan := map[[16]byte]bool{}
	for _, in := range f.inputs {
		ri, err := Open(ctx, f.bkt, in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ri.Scan(ctx, req, func(id [16]byte, _ []byte) error { wantScan[id] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(wantScan) == 0 || len(wantScan) == len(traces) {
		t.Fatalf("the predicate selects %d traces of %d: the test wants some", len(wantScan), len(traces))
	}
	gotScan := map[[16]byte]bool{}
	if _, err := r.Scan(ctx, req, func(id [16]byte, data []byte) error {
		if gotScan[id] {
			t.Errorf("Scan gives trace %x twice", id)
		}
		gotScan[id] = true
		got, _ := rawSpans(t, data)
		diffSpans(t, "Scan", got, traces[id])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(gotScan, wantScan) {
		t.Errorf("Scan finds %d traces, the inputs %d", len(gotScan), len(wantScan))
	}

	// data.parquet: sorted by trace ID then start, a trace in one row group.
	checkSortedRows(t, f.bkt, m)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// diffSpans fails unless got and want hold the same spans, byte for byte.
func diffSpans(t testing.TB, what string, got, want map[spanKey]rawRec) {
	t.Helper()
	missing, extra, changed := 0, 0, 0
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing++
		case g != w:
			changed++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	if missing+extra+changed > 0 {
		t.Fatalf("%s: %d spans missing, %d extra, %d with other bytes (of %d)", what, missing, extra, changed, len(want))
	}
}

// checkSortedRows reads data.parquet with parquet-go and checks the order
// of its rows and that no trace is cut over two row groups.
func checkSortedRows(t testing.TB, bkt objstore.BucketReader, m *Meta) {
	t.Helper()
	rc, err := bkt.Get(ctx, m.ObjectName(DataName))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	group := map[[16]byte]int{}
	var prev *pqRow
	rows := make([]pqRow, 100)
	for g, rg := range pf.RowGroups() {
		rd := parquet.NewGenericRowGroupReader[pqRow](rg)
		for {
			n, err := rd.Read(rows)
			for i := range rows[:n] {
				r := rows[i]
				// Compared here, not with the merge's own comparison.
				if prev != nil && (bytes.Compare(r.TraceID[:], prev.TraceID[:]) < 0 ||
					r.TraceID == prev.TraceID && r.StartUnixNano < prev.StartUnixNano) {
					t.Fatalf("row group %d: trace %x start %d after trace %x start %d", g, r.TraceID, r.StartUnixNano, prev.TraceID, prev.StartUnixNano)
				}
				if h, ok := group[r.TraceID]; ok && h != g {
					t.Fatalf("trace %x in row groups %d and %d", r.TraceID, h, g)
				}
				group[r.TraceID] = g
				prev = &r
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A retried job writes the same block: a retry after the job finished
// returns it untouched, one after a crash before meta.json replaces what
// the crash left with the same bytes; there is never a second output.
func TestCompactRetry(t *testing.T) {
	f := newCompactFixture(t)
	opts := CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}}
	first, err := Compact(ctx, f.bkt, f.inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := first.Meta
	data := getObject(t, f.bkt, m.ObjectName(DataName))
	bl := getObject(t, f.bkt, m.ObjectName(BloomName))

	// Retried after it finished, inputs in another order.
	rev := slices.Clone(f.inputs)
	slices.Reverse(rev)
	again, err := Compact(ctx, f.bkt, rev, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Written || again.Meta.BlockID != m.BlockID || !again.Meta.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("retry of a finished job: written %v, block %s created %s; want the block %s created %s untouched",
			again.Written, again.Meta.BlockID, again.Meta.CreatedAt, m.BlockID, m.CreatedAt)
	}

	// Retried after a crash that left a partial data.parquet, no bloom and
	// no meta.json.
	for _, name := range []string{MetaName, BloomName} {
		if err := f.bkt.Delete(ctx, m.ObjectName(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.bkt.Upload(ctx, m.ObjectName(DataName), bytes.NewReader(data[:len(data)/3])); err != nil {
		t.Fatal(err)
	}
	redo, err := Compact(ctx, f.bkt, f.inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !redo.Written || redo.Meta.BlockID != m.BlockID {
		t.Fatalf("retry after a crash: written %v, block %s; want %s rewritten", redo.Written, redo.Meta.BlockID, m.BlockID)
	}
	if !bytes.Equal(getObject(t, f.bkt, m.ObjectName(DataName)), data) || !bytes.Equal(getObject(t, f.bkt, m.ObjectName(BloomName)), bl) {
		t.Fatal("retry after a crash: data.parquet or bloom differs from the first run's")
	}
	a, b := *m, *redo.Meta
	a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
	if !metaEqual(&a, &b) {
		t.Fatalf("retry after a crash: meta %+v, first run %+v", b, a)
	}
	metas, err := ListBlocks(ctx, f.bkt, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != len(f.inputs)+1 {
		t.Fatalf("%d blocks listed, want the %d inputs and one output", len(metas), len(f.inputs))
	}

	// The output merged with a new block is of level 2.
	more := writeInput(t, f.bkt, 9, spangen.Generate(spangen.Options{Seed: 4, Traces: 5, SpansPerTrace: 3}))
	l2, err := Compact(ctx, f.bkt, []*Meta{m, more}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Meta.CompactionLevel != 2 || l2.Meta.TotalSpans != m.TotalSpans+more.TotalSpans {
		t.Fatalf("level %d with %d spans, want level 2 with %d", l2.Meta.CompactionLevel, l2.Meta.TotalSpans, m.TotalSpans+more.TotalSpans)
	}
}

func getObject(t testing.TB, bkt objstore.BucketReader, name string) []byte {
	t.Helper()
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An input that cannot be read fails the job with an error naming the
// block, and no meta.json is written.
func TestCompactBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, bkt objstore.Bucket, m *Meta)
	}{
		{"data.parquet missing", func(t *testing.T, bkt objstore.Bucket, m *Meta) {
			if err := bkt.Delete(ctx, m.ObjectName(DataName)); err != nil {
				t.Fatal(err)
			}
		}},
		{"a row group garbled", func(t *testing.T, bkt objstore.Bucket, m *Meta) {
			data := getObject(t, bkt, m.ObjectName(DataName))
			// Zeroes over the middle of the file: the footer reads, a
			// row group past the first does not.
			clear(data[len(data)/2 : len(data)/2+2048])
			if err := bkt.Upload(ctx, m.ObjectName(DataName), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}},
		{"fewer rows than meta.json says", func(t *testing.T, bkt objstore.Bucket, m *Meta) {
			m.TotalSpans++
			m.RowGroups[0].Rows++
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCompactFixture(t)
			bad := f.inputs[1]
			tc.damage(t, f.bkt, bad)
			_, err := Compact(ctx, f.bkt, f.inputs, CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}})
			if err == nil || !strings.Contains(err.Error(), "cannot read block t/"+bad.BlockID.String()) {
				t.Fatalf("Compact: %v; want an error naming block t/%s", err, bad.BlockID)
			}
			noOutput(t, f)
		})
	}
}

// noOutput checks that the fixture's compaction left no meta.json.
func noOutput(t *testing.T, f *compactFixture) {
	t.Helper()
	var ids []uuid.UUID
	for _, in := range f.inputs {
		ids = append(ids, in.BlockID)
	}
	id := CompactedID("t", ids)
	if ok, err := f.bkt.Exists(ctx, objectName("t", id, MetaName)); err != nil || ok {
		t.Fatalf("meta.json of the output: exists %v, %v", ok, err)
	}
	metas, err := ListBlocks(ctx, f.bkt, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != len(f.inputs) {
		t.Fatalf("%d blocks listed, want the %d inputs", len(metas), len(f.inputs))
	}
}

// cancelBucket cancels a context at the n-th ranged read.
type cancelBucket struct {
	objstore.Bucket
	n      atomic.Int32
	at     int32
	cancel context.CancelFunc
}

func (b *cancelBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if b.n.Add(1) == b.at {
		b.cancel()
	}
	return b.Bucket.GetRange(context.WithoutCancel(ctx), name, off, length)
}

// Cancelling the context stops the merge: Compact returns the context's
// error and writes no meta.json.
func TestCompactCancel(t *testing.T) {
	f := newCompactFixture(t)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The bucket ignores cancellation: the merge itself must notice it.
	// The 8th ranged read is past the footers, in the row groups.
	bkt := &cancelBucket{Bucket: f.bkt, at: 8, cancel: cancel}
	_, err := Compact(cctx, bkt, f.inputs, CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Compact: %v; want context.Canceled", err)
	}
	if n := bkt.n.Load(); n > 8+int32(len(f.inputs)) {
		t.Errorf("%d ranged reads: the merge went on after the cancellation", n)
	}
	noOutput(t, f)
}

// Compact refuses inputs of several tenants, the same block twice, and
// no block at all.
func TestCompactRefusesInputs(t *testing.T) {
	f := newCompactFixture(t)
	other := *f.inputs[1]
	other.TenantID = "u"
	for _, tc := range []struct {
		name   string
		inputs []*Meta
		want   string
	}{
		{"none", nil, "no input blocks"},
		{"twice", []*Meta{f.inputs[0], f.inputs[0]}, "given twice"},
		{"tenants", []*Meta{f.inputs[0], &other}, "several tenants"},
	} {
		if _, err := Compact(ctx, f.bkt, tc.inputs, CompactOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}

// An old meta.json (no compaction fields) reads as level 0; Validate
// refuses inconsistent compaction fields.
func TestMetaCompactionFields(t *testing.T) {
	f := newCompactFixture(t)
	m := *f.inputs[0]
	if m.CompactionLevel != 0 || m.CompactedFrom != nil {
		t.Fatalf("a block-builder block: level %d, compacted from %v", m.CompactionLevel, m.CompactedFrom)
	}
	raw := getObject(t, f.bkt, m.ObjectName(MetaName))
	if bytes.Contains(raw, []byte("compaction")) || bytes.Contains(raw, []byte("compactedFrom")) {
		t.Fatalf("a level-0 meta.json names compaction fields: %s", raw)
	}
	a, b := uuid.MustParse("00000000-0000-4000-8000-000000000001"), uuid.MustParse("00000000-0000-4000-8000-000000000002")
	for _, tc := range []struct {
		name  string
		level int
		from  []uuid.UUID
		want  string
	}{
		{"negative", -1, nil, "compactionLevel: -1"},
		{"inputs at level 0", 0, []uuid.UUID{a}, "compaction level 0"},
		{"no inputs", 1, nil, "empty in a block of compaction level 1"},
		{"unsorted", 1, []uuid.UUID{b, a}, "is not after"},
		{"itself", 1, []uuid.UUID{m.BlockID}, "is not another block"},
	} {
		c := m
		c.CompactionLevel, c.CompactedFrom = tc.level, tc.from
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	c := m
	c.CompactionLevel, c.CompactedFrom = 3, []uuid.UUID{a, b}
	if err := c.Validate(); err != nil {
		t.Errorf("a valid compacted meta: %v", err)
	}
}

// CompactedID depends on the tenant and the set of inputs, not on their
// order.
func TestCompactedID(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	id := CompactedID("t", []uuid.UUID{a, b, c})
	if id.Version() != 5 {
		t.Errorf("version %d, want 5", id.Version())
	}
	if CompactedID("t", []uuid.UUID{c, a, b}) != id || CompactedID("t", []uuid.UUID{b, c, a}) != id {
		t.Error("the ID depends on the order of the inputs")
	}
	for _, other := range []uuid.UUID{CompactedID("u", []uuid.UUID{a, b, c}), CompactedID("t", []uuid.UUID{a, b}), CompactedID("t", []uuid.UUID{a, b, uuid.New()})} {
		if other == id {
			t.Error("another tenant or other inputs give the same ID")
		}
	}
}

// sizeBucket records, for each upload, whether the bucket could know the
// object's size in advance (as the S3 client asks).
type sizeBucket struct {
	objstore.Bucket
	sized map[string]bool
}

func (b *sizeBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	_, err := objstore.TryToGetSize(r)
	b.sized[name] = err == nil
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// With SpoolDir, data.parquet is written to a local file and uploaded
// with its size known; the block is the same as a streamed one, and the
// file is removed, after a failure too.
func TestCompactSpool(t *testing.T) {
	f := newCompactFixture(t)
	bkt := &sizeBucket{Bucket: f.bkt, sized: map[string]bool{}}
	opts := CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: compactRowGroupBytes}}
	streamed, err := Compact(ctx, bkt, f.inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	dataName := streamed.Meta.ObjectName(DataName)
	if bkt.sized[dataName] {
		t.Fatal("a streamed data.parquet had a known size")
	}
	want := getObject(t, f.bkt, dataName)
	for _, name := range []string{MetaName, BloomName, DataName} {
		if err := f.bkt.Delete(ctx, streamed.Meta.ObjectName(name)); err != nil {
			t.Fatal(err)
		}
	}
	opts.SpoolDir = t.TempDir()
	spooled, err := Compact(ctx, bkt, f.inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bkt.sized[dataName] {
		t.Error("the spooled data.parquet was uploaded without its size")
	}
	if got := getObject(t, f.bkt, dataName); !bytes.Equal(got, want) || spooled.Meta.Size != int64(len(want)) {
		t.Errorf("spooled data.parquet: %d bytes (meta.json: %d), streamed: %d; equal %v", len(got), spooled.Meta.Size, len(want), bytes.Equal(got, want))
	}
	if left, _ := os.ReadDir(opts.SpoolDir); len(left) != 0 {
		t.Errorf("%d files left in the spool directory", len(left))
	}

	// A failed merge leaves no file either.
	if err := f.bkt.Delete(ctx, f.inputs[2].ObjectName(DataName)); err != nil {
		t.Fatal(err)
	}
	more := writeInput(t, f.bkt, 9, spangen.Generate(spangen.Options{Seed: 4, Traces: 5, SpansPerTrace: 3}))
	if _, err := Compact(ctx, bkt, []*Meta{f.inputs[2], more}, opts); err == nil {
		t.Fatal("a compaction of a block without data.parquet succeeded")
	}
	if left, _ := os.ReadDir(opts.SpoolDir); len(left) != 0 {
		t.Errorf("%d files left in the spool directory after a failure", len(left))
	}
}
