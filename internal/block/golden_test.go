package block

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
)

// The golden block pins the format: a small block written by this package
// and committed under testdata/golden, with the TracesData it holds as
// OTLP/JSON. TestGolden reads it with the current code. If it fails, the
// code no longer reads FormatV1 blocks as written: fix the code, or, for a
// deliberate incompatible change, introduce a new format version (see
// docs/block-format.md) and keep a reader for this one.
//
// Regenerate (only when the format version changes):
//
//	go test ./internal/block -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden block under testdata/golden")

const (
	goldenDir      = "testdata/golden"
	goldenTenant   = "golden"
	goldenExpected = "expected.json"
)

var goldenID = uuid.MustParse("6f1d0000-0000-4000-8000-000000000001")

// goldenInput is the content of the golden block.
func goldenInput() []ptrace.Traces {
	return []ptrace.Traces{
		spangen.Generate(spangen.Options{Seed: 2026, Traces: 6, SpansPerTrace: 5, Services: 3,
			Start: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}),
		richTraces(),
	}
}

func writeGolden(t *testing.T) {
	if err := os.RemoveAll(filepath.Join(goldenDir, goldenTenant)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bkt, err := filesystem.NewBucket(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	buf := NewBuffer(nil)
	defer buf.Release()
	for _, td := range goldenInput() {
		addTraces(t, buf, td)
	}
	// Two row groups, to pin the row-group layout too.
	meta, err := Write(ctx, bkt, goldenTenant, goldenID, Source{Partition: 1, FirstOffset: 100, LastOffset: 107}, buf, WriteOptions{RowGroupBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	all, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, err := (&ptrace.JSONMarshaler{}).MarshalTraces(unmarshal(t, all))
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, js, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	if err := os.WriteFile(filepath.Join(goldenDir, goldenExpected), pretty.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote golden block %s/%s: %d spans, %d row groups, %d bytes", goldenTenant, goldenID, meta.TotalSpans, len(meta.RowGroups), meta.Size)
}

func TestGolden(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	fs, err := filesystem.NewBucket(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	bkt := &spyBucket{Bucket: fs}
	js, err := os.ReadFile(filepath.Join(goldenDir, goldenExpected))
	if err != nil {
		t.Fatalf("%v (generate with -update)", err)
	}
	expected, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(js)
	if err != nil {
		t.Fatal(err)
	}
	want := spanRecords(t, expected)

	// The expected traces are what was written: the golden input.
	input := map[[16]byte][]string{}
	for _, td := range goldenInput() {
		for id, recs := range spanRecords(t, td) {
			input[id] = append(input[id], recs...)
		}
	}
	if len(input) != len(want) {
		t.Fatalf("%s holds %d traces, the golden input %d", goldenExpected, len(want), len(input))
	}
	for id, recs := range input {
		slices.Sort(recs)
		if !slices.Equal(recs, want[id]) {
			t.Fatalf("trace %x of %s differs from the golden input", id, goldenExpected)
		}
	}

	tenants, err := ListTenants(ctx, bkt)
	if err != nil || !slices.Equal(tenants, []string{goldenTenant}) {
		t.Fatalf("tenants %v, %v", tenants, err)
	}
	metas, err := ListBlocks(ctx, bkt, goldenTenant)
	if err != nil || len(metas) != 1 {
		t.Fatalf("blocks %v, %v", metas, err)
	}
	m := metas[0]
	if m.Format != FormatV1 || m.BlockID != goldenID || m.TotalTraces != int64(len(want)) || m.TotalSpans != int64(expected.SpanCount()) ||
		len(m.RowGroups) < 2 || m.Source != (Source{Partition: 1, FirstOffset: 100, LastOffset: 107}) {
		t.Fatalf("golden meta %+v", m)
	}
	r, err := Open(ctx, bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	findsEveryTrace(t, r, want, "golden block")
	all, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := spanRecords(t, unmarshal(t, all))
	for id := range want {
		if !slices.Equal(got[id], want[id]) {
			t.Fatalf("ReadAll: trace %x differs from %s", id, goldenExpected)
		}
	}

	// The current writer still writes this format: same Parquet schema
	// (columns, types, encodings) as the golden file.
	golden, _, err := r.loadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nb := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	for _, td := range goldenInput() {
		addTraces(t, buf, td)
	}
	nm, err := Write(ctx, nb, goldenTenant, goldenID, m.Source, buf, WriteOptions{RowGroupBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	nr, _ := Open(ctx, nb, nm)
	current, _, err := nr.loadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, c := schemaOf(golden), schemaOf(current); g != c {
		t.Fatalf("the writer's schema changed: a new format version is needed.\ngolden:\n%s\ncurrent:\n%s", g, c)
	}
	if !slices.Equal(nm.RowGroups, m.RowGroups) || nm.TotalSpans != m.TotalSpans || !nm.StartTime.Equal(m.StartTime) || !nm.EndTime.Equal(m.EndTime) {
		t.Fatalf("the writer's layout changed:\ngolden  %+v\ncurrent %+v", m, nm)
	}
}

// schemaOf describes a file's columns: schema, then each leaf column's
// encodings and codec as the first row group has them.
func schemaOf(f *parquet.File) string {
	var b bytes.Buffer
	b.WriteString(f.Schema().String())
	b.WriteByte('\n')
	for _, c := range f.Metadata().RowGroups[0].Columns {
		md := c.MetaData
		encs := slices.Clone(md.Encoding)
		slices.Sort(encs)
		b.WriteString(filepath.Join(md.PathInSchema...))
		for _, e := range encs {
			b.WriteString(" " + e.String())
		}
		b.WriteString(" " + md.Codec.String() + "\n")
	}
	return b.String()
}
