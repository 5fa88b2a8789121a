package blocklist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/storage"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// localBucket is weft's local backend, as a process uses it.
func localBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendLocal, Local: storage.LocalConfig{Path: t.TempDir()}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// writeSpans writes a block of id holding spans spans of trace traceID.
func writeSpans(t *testing.T, bkt objstore.Bucket, tenant string, id uuid.UUID, traceID byte, spans int) *block.Meta {
	t.Helper()
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{traceID})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1), 1})
		sp.SetName(strings.Repeat("x", 100))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
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
	meta, err := block.Write(context.Background(), bkt, tenant, id, block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func upload(t *testing.T, bkt objstore.Bucket, name string, data []byte) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func ids(l *List, tenant string) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range l.Blocks(tenant, time.Time{}, time.Time{}) {
		out = append(out, e.Meta.BlockID)
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func sorted(in ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// logCount counts the log lines whose message contains a string.
type logCount struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCount) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	c.lines = append(c.lines, line)
	return nil
}
func (c *logCount) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCount) WithGroup(string) slog.Handler      { return c }
func (c *logCount) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestPollSkipsUnreadableBlocks is issue 12 item 3: one corrupt or empty
// meta.json hid every block of its tenant (the poll stopped at it, so new
// blocks were never added). Now that block alone is left out, counted in
// weft_blocklist_unreadable_blocks, logged once, and read again on every
// poll so that a repaired meta.json brings it back.
func TestPollSkipsUnreadableBlocks(t *testing.T) {
	ctx := context.Background()
	bkt := localBucket(t)
	good := writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	corrupt := writeSpans(t, bkt, "t", uuid.New(), 2, 2)
	empty := writeSpans(t, bkt, "t", uuid.New(), 3, 2)
	other := writeSpans(t, bkt, "u", uuid.New(), 4, 2)
	rc, err := bkt.Get(ctx, corrupt.ObjectName(block.MetaName))
	if err != nil {
		t.Fatal(err)
	}
	corruptJSON, _ := io.ReadAll(rc)
	_ = rc.Close()
	upload(t, bkt, corrupt.ObjectName(block.MetaName), corruptJSON[:len(corruptJSON)/2])
	upload(t, bkt, empty.ObjectName(block.MetaName), nil)

	logs := &logCount{}
	reg := prometheus.NewRegistry()
	l := New(bkt, time.Hour, reg, slog.New(logs))
	if err := l.Poll(ctx); err != nil {
		t.Fatalf("a poll with unreadable blocks failed: %v", err)
	}
	if got := ids(l, "t"); !slices.Equal(got, []uuid.UUID{good.BlockID}) {
		t.Fatalf("blocks of t %v, want only the good one %v", got, good.BlockID)
	}
	if got := ids(l, "u"); !slices.Equal(got, []uuid.UUID{other.BlockID}) {
		t.Fatalf("blocks of u %v", got)
	}
	if got := l.Unreadable("t"); !slices.Equal(got, sorted(corrupt.BlockID, empty.BlockID)) {
		t.Fatalf("unreadable %v", got)
	}
	if v := testutil.ToFloat64(l.unreadableG.WithLabelValues("t")); v != 2 {
		t.Fatalf("weft_blocklist_unreadable_blocks{tenant=t} = %v, want 2", v)
	}
	if err := l.Available(); err != nil {
		t.Fatalf("Available: %v", err)
	}

	// A new block of the tenant is added although the others still fail.
	added := writeSpans(t, bkt, "t", uuid.New(), 5, 2)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(l, "t"); !slices.Equal(got, sorted(good.BlockID, added.BlockID)) {
		t.Fatalf("after a new block: %v", got)
	}
	// Logged once per block, not per poll.
	if n := logs.count("block left out"); n != 2 {
		t.Fatalf("%d log lines for 2 unreadable blocks over 2 polls: %q", n, logs.lines)
	}
	if logs.count(empty.BlockID.String()) != 1 || logs.count("the object is empty") != 1 {
		t.Fatalf("the log does not say why: %q", logs.lines)
	}

	// Repaired: back in the list, out of the metric.
	upload(t, bkt, corrupt.ObjectName(block.MetaName), corruptJSON)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(l, "t"); !slices.Equal(got, sorted(good.BlockID, added.BlockID, corrupt.BlockID)) {
		t.Fatalf("after the repair: %v", got)
	}
	if v := testutil.ToFloat64(l.unreadableG.WithLabelValues("t")); v != 1 {
		t.Fatalf("unreadable after the repair = %v, want 1", v)
	}
	// Removed: forgotten.
	for _, name := range []string{block.DataName, block.BloomName, block.MetaName} {
		if err := bkt.Delete(ctx, empty.ObjectName(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(l.unreadableG.WithLabelValues("t")); v != 0 || len(l.Unreadable("t")) != 0 {
		t.Fatalf("unreadable after removing the block = %v", v)
	}
}

// TestPollSkipsInvalidMeta is issue 12 item 15: a meta.json that decodes
// but whose values are wrong (no row groups: traces 404 silently; a size
// that is not data.parquet's: tag values 500) is left out and counted like
// an unreadable one.
func TestPollSkipsInvalidMeta(t *testing.T) {
	ctx := context.Background()
	bkt := localBucket(t)
	good := writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	damage := map[string]func(m *block.Meta){
		"no row groups":     func(m *block.Meta) { m.RowGroups = nil },
		"size":              func(m *block.Meta) { m.Size += 1000 },
		"another tenant":    func(m *block.Meta) { m.TenantID = "u" },
		"another format":    func(m *block.Meta) { m.Format = "weft-parquet-v9" },
		"rows do not match": func(m *block.Meta) { m.RowGroups[0].Rows = 7 },
	}
	// A bloomBytes that is not the bloom's size does not leave the block
	// out: the block is read without its bloom (block.Reader).
	bloomOff := writeSpans(t, bkt, "t", uuid.New(), 3, 2)
	bloomOff.BloomBytes--
	if data, err := json.Marshal(bloomOff); err != nil {
		t.Fatal(err)
	} else {
		upload(t, bkt, "t/"+bloomOff.BlockID.String()+"/"+block.MetaName, data)
	}
	var bad []uuid.UUID
	for i, f := range damage {
		_ = i
		m := writeSpans(t, bkt, "t", uuid.New(), 2, 2)
		f(m)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		upload(t, bkt, "t/"+m.BlockID.String()+"/"+block.MetaName, data)
		bad = append(bad, m.BlockID)
	}
	reg := prometheus.NewRegistry()
	l := New(bkt, time.Hour, reg, nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatalf("poll: %v", err)
	}
	if got := ids(l, "t"); !slices.Equal(got, sorted(good.BlockID, bloomOff.BlockID)) {
		t.Fatalf("blocks %v, want only %v and %v", got, good.BlockID, bloomOff.BlockID)
	}
	if got := l.Unreadable("t"); !slices.Equal(got, sorted(bad...)) {
		t.Fatalf("unreadable %v, want %v", got, sorted(bad...))
	}
	if v := testutil.ToFloat64(l.unreadableG.WithLabelValues("t")); v != float64(len(bad)) {
		t.Fatalf("weft_blocklist_unreadable_blocks = %v, want %d", v, len(bad))
	}
	// Fetch (a querier's job for a block it has not polled) refuses it too.
	if e, err := New(bkt, time.Hour, nil, nil).Fetch(ctx, "t", bad[0]); e != nil || !errors.Is(err, block.ErrInvalidMeta) {
		t.Fatalf("Fetch of an invalid block: %v, %v", e, err)
	}
}

// faultyBucket fails the reads of the objects fail selects, as a storage
// outage does.
type faultyBucket struct {
	objstore.Bucket
	mu   sync.Mutex
	fail func(name string) bool
}

var errOutage = errors.New("connection refused")

func (b *faultyBucket) fails(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail != nil && b.fail(name)
}

func (b *faultyBucket) set(fail func(name string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = fail
}

func (b *faultyBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.fails(name) {
		return nil, errOutage
	}
	return b.Bucket.Get(ctx, name)
}

func (b *faultyBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if b.fails(dir) {
		return errOutage
	}
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

func (b *faultyBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	if b.fails(dir) {
		return errOutage
	}
	return b.Bucket.IterWithAttributes(ctx, dir, f, opts...)
}

// TestPollStorageErrorKeepsTheList: a storage error reading one meta.json
// neither drops the blocks the list has nor stops the tenant's other new
// blocks; the block is read again on the next poll.
func TestPollStorageErrorKeepsTheList(t *testing.T) {
	ctx := context.Background()
	bkt := &faultyBucket{Bucket: localBucket(t)}
	a := writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	b := writeSpans(t, bkt, "t", uuid.New(), 2, 2)
	c := writeSpans(t, bkt, "t", uuid.New(), 3, 2)
	bkt.set(func(name string) bool { return strings.Contains(name, b.BlockID.String()) })
	err := l.Poll(ctx)
	if !errors.Is(err, errOutage) || !strings.Contains(err.Error(), b.BlockID.String()) {
		t.Fatalf("poll = %v, want the storage error naming the block", err)
	}
	if got := ids(l, "t"); !slices.Equal(got, sorted(a.BlockID, c.BlockID)) {
		t.Fatalf("blocks %v, want a and c", got)
	}
	if len(l.Unreadable("t")) != 0 {
		t.Fatal("a storage error counted as an unreadable block")
	}
	bkt.set(nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(l, "t"); !slices.Equal(got, sorted(a.BlockID, b.BlockID, c.BlockID)) {
		t.Fatalf("after the outage: %v", got)
	}
}

// TestAvailable is issue 12 item 9: until a poll succeeds, and when the
// last success is too old, the list says the blocks are not known, with
// the storage error; weft_blocklist_last_successful_poll_timestamp_seconds
// tells when it last succeeded.
func TestAvailable(t *testing.T) {
	ctx := context.Background()
	bkt := &faultyBucket{Bucket: localBucket(t)}
	writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := l.Available(); err == nil || !strings.Contains(err.Error(), "not been polled") {
		t.Fatalf("before a poll: %v", err)
	}
	bkt.set(func(string) bool { return true })
	if err := l.Poll(ctx); err == nil {
		t.Fatal("poll of a failing bucket succeeded")
	}
	for _, err := range []error{l.Available(), l.Polled()} {
		if !errors.Is(err, errOutage) || !strings.Contains(err.Error(), "no poll") {
			t.Fatalf("after a failed poll: %v", err)
		}
	}
	if v := testutil.ToFloat64(l.lastSuccessTS); v != 0 {
		t.Fatalf("last successful poll = %v before any", v)
	}
	bkt.set(nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Available(); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(l.lastSuccessTS); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Fatalf("last successful poll = %v", v)
	}
	// Stale: polls fail for longer than staleAfter.
	bkt.set(func(string) bool { return true })
	l.staleAfter = time.Millisecond
	_ = l.Poll(ctx)
	time.Sleep(5 * time.Millisecond)
	if err := l.Available(); !errors.Is(err, errOutage) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("stale list: %v", err)
	}
	if err := l.Polled(); err != nil {
		t.Fatalf("Polled after a success: %v", err)
	}
	if l.Count("t") != 1 {
		t.Fatal("a failed poll dropped the list")
	}
}

// TestPollForgetsRemovedTenant is issue 13 item 9: when every block of a
// tenant is removed from the store, the list forgets them at the next poll.
func TestPollForgetsRemovedTenant(t *testing.T) {
	ctx := context.Background()
	bkt := localBucket(t)
	a := writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	b := writeSpans(t, bkt, "t", uuid.New(), 2, 2)
	keep := writeSpans(t, bkt, "u", uuid.New(), 3, 2)
	reg := prometheus.NewRegistry()
	l := New(bkt, time.Hour, reg, nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Count("t") != 2 {
		t.Fatalf("%d blocks", l.Count("t"))
	}
	for _, m := range []*block.Meta{a, b} {
		for _, name := range []string{block.MetaName, block.DataName, block.BloomName} {
			if err := bkt.Delete(ctx, m.ObjectName(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Count("t") != 0 || len(l.Blocks("t", time.Time{}, time.Time{})) != 0 || l.Get("t", a.BlockID) != nil {
		t.Fatal("the removed blocks are still listed")
	}
	if n := testutil.CollectAndCount(l.blocks); n != 1 {
		t.Fatalf("weft_blocklist_blocks has %d series, want only u's", n)
	}
	if l.Get("u", keep.BlockID) == nil {
		t.Fatal("the other tenant's block is gone")
	}
}
