package blockscli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// writeBlock writes a block of traces traces of two spans each, in row
// groups of about rowGroupBytes.
func writeBlock(t *testing.T, bkt objstore.Bucket, tenant string, start time.Time, traces int, rowGroupBytes int64) *block.Meta {
	t.Helper()
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i := range traces {
		for j := range 2 {
			sp := ss.Spans().AppendEmpty()
			sp.SetName(strings.Repeat("x", 200))
			sp.SetTraceID(pcommon.TraceID{byte(i + 1), 7})
			sp.SetSpanID(pcommon.SpanID{byte(j + 1)})
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Second)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i+1) * time.Second)))
		}
	}
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	m, err := block.Write(context.Background(), bkt, tenant, uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: rowGroupBytes})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type fixture struct {
	config             string
	bkt                objstore.Bucket
	a, b, gone, broken *block.Meta
	t0                 time.Time
}

// setup writes, for tenant "t": two live blocks (b of several row
// groups), one let go, one whose meta.json is damaged, and the tenant
// index; and a config file naming the bucket.
func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{bkt: bkt, t0: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	f.a = writeBlock(t, bkt, "t", f.t0, 3, 0)
	f.b = writeBlock(t, bkt, "t", f.t0.Add(time.Hour), 20, 1) // a row group per trace
	f.gone = writeBlock(t, bkt, "t", f.t0.Add(2*time.Hour), 1, 0)
	if err := block.MarkCompacted(ctx, bkt, f.gone, f.t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.broken = writeBlock(t, bkt, "t", f.t0.Add(4*time.Hour), 1, 0)
	if err := bkt.Upload(ctx, f.broken.ObjectName(block.MetaName), strings.NewReader("{")); err != nil {
		t.Fatal(err)
	}
	if err := blocklist.WriteIndex(ctx, bkt, "t", &blocklist.Index{CreatedAt: f.t0, Meta: []*block.Meta{f.a, f.b}}); err != nil {
		t.Fatal(err)
	}
	f.config = filepath.Join(t.TempDir(), "weft.yaml")
	cfg := "storage:\n  trace:\n    backend: local\n    local:\n      path: " + dir + "\n"
	if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(args, &out, &errb)
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func TestList(t *testing.T) {
	f := setup(t)
	out, err := run(t, "list", "-config.file", f.config, "-tenant", "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	if !regexp.MustCompile(`^ID\s+LVL\s+START\s+END\s+SIZE\s+SPANS\s+TRACES\s+RGS\s+STATE$`).MatchString(lines[0]) {
		t.Fatalf("header %q", lines[0])
	}
	// Sorted by start time; blocks without a meta last.
	want := []*regexp.Regexp{
		row(f.a, "live"),
		row(f.b, "live"),
		row(f.gone, "let-go 2026-03-01T03:00:00Z"),
		regexp.MustCompile(`^` + f.broken.BlockID.String() + `(\s+-){7}\s+invalid$`),
	}
	for i, re := range want {
		if !re.MatchString(lines[i+1]) {
			t.Errorf("line %d: %q does not match %s", i+1, lines[i+1], re)
		}
	}
	for _, s := range []string{
		"4 blocks: 2 live, 1 let go, 1 invalid, 0 incomplete",
		f.broken.BlockID.String() + ": invalid meta.json",
		"tenant index: created 2026-03-01T00:00:00Z",
		"2 blocks, 0 let go",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if len(f.b.RowGroups) < 2 {
		t.Fatalf("block b has %d row groups, the test wants several", len(f.b.RowGroups))
	}

	out, err = run(t, "list", "-config.file", f.config, "-tenant", "t", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var l Listing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("-json: %v\n%s", err, out)
	}
	if len(l.Blocks) != 4 || l.Index == nil || l.Index.Blocks != 2 {
		t.Fatalf("-json: %d blocks, index %+v", len(l.Blocks), l.Index)
	}
	for i, m := range []*block.Meta{f.a, f.b, f.gone} {
		got := l.Blocks[i]
		if got.ID != m.BlockID || got.Meta == nil || got.Meta.TotalSpans != m.TotalSpans || got.Meta.Size != m.Size || len(got.Meta.RowGroups) != len(m.RowGroups) {
			t.Errorf("-json block %d: %+v, want %s", i, got, m.BlockID)
		}
	}
	if l.Blocks[2].State != LetGo || l.Blocks[2].CompactedTime == nil || !l.Blocks[2].CompactedTime.Equal(f.t0.Add(3*time.Hour)) {
		t.Errorf("-json let-go block: %+v", l.Blocks[2])
	}
	if l.Blocks[3].State != Invalid || l.Blocks[3].Error == "" {
		t.Errorf("-json invalid block: %+v", l.Blocks[3])
	}
}

// row matches the line of a block with a meta.
func row(m *block.Meta, state string) *regexp.Regexp {
	return regexp.MustCompile(`^` + m.BlockID.String() + `\s+0\s+` + regexp.QuoteMeta(m.StartTime.UTC().Format(time.RFC3339)) +
		`\s+` + regexp.QuoteMeta(m.EndTime.UTC().Format(time.RFC3339)) + `\s+` + regexp.QuoteMeta(humanBytes(m.Size)) +
		`\s+` + itoa(m.TotalSpans) + `\s+` + itoa(m.TotalTraces) + `\s+` + itoa(int64(len(m.RowGroups))) + `\s+` + regexp.QuoteMeta(state) + `$`)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestShow(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	out, err := run(t, "show", "-config.file", f.config, "-tenant", "t", f.b.BlockID.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
	for _, s := range []string{"block ", f.b.BlockID.String(), "state ", "live", "spans ", itoa(f.b.TotalSpans),
		"row groups (" + itoa(int64(len(f.b.RowGroups))) + "):"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	for i, rg := range f.b.RowGroups {
		re := regexp.MustCompile(`(?m)^` + itoa(int64(i)) + `\s+` + rg.MinTraceID + `\s+` + rg.MaxTraceID + `\s+` + itoa(rg.Rows) + `$`)
		if !re.MatchString(out) {
			t.Errorf("row group %d (%s-%s) not shown", i, rg.MinTraceID, rg.MaxTraceID)
		}
	}
	for _, name := range []string{block.DataName, block.BloomName, block.MetaName} {
		attrs, err := f.bkt.Attributes(ctx, f.b.ObjectName(name))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^\s*` + itoa(attrs.Size) + `\s+` + regexp.QuoteMeta(name) + `\s*$`).MatchString(out) {
			t.Errorf("object %s of %d bytes not shown", name, attrs.Size)
		}
	}

	out, err = run(t, "show", "-config.file", f.config, "-tenant", "t", "-json", f.gone.BlockID.String())
	if err != nil {
		t.Fatal(err)
	}
	var b Block
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if b.State != LetGo || b.Meta == nil || b.Meta.BlockID != f.gone.BlockID || len(b.Files) != 3 {
		t.Fatalf("-json let-go block: %+v", b)
	}
}

func TestErrors(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "needs a command"},
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"list", "-config.file", f.config}, "-tenant is required"},
		{[]string{"show", "-config.file", f.config, "-tenant", "t"}, "needs one block ID"},
		{[]string{"show", "-config.file", f.config, "-tenant", "t", "nope"}, `"nope" is not a block ID`},
		{[]string{"show", "-config.file", f.config, "-tenant", "t", uuid.NewString()}, "is not in this bucket"},
		{[]string{"list", "-config.file", f.config, "-tenant", "other"}, `tenant "other" has no blocks`},
		{[]string{"list", "-config.file", filepath.Join(t.TempDir(), "none.yaml"), "-tenant", "t"}, "cannot read the config file"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	// A local path that does not exist is not created.
	cfg := filepath.Join(t.TempDir(), "weft.yaml")
	missing := filepath.Join(t.TempDir(), "missing")
	if err := os.WriteFile(cfg, []byte("storage:\n  trace:\n    local:\n      path: "+missing+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "list", "-config.file", cfg, "-tenant", "t"); err == nil || !strings.Contains(err.Error(), "storage.trace.local.path") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the missing path was created")
	}
}
