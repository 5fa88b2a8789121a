package blocklist

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/storage"
)

func spanCount(t *testing.T, data []byte) int {
	t.Helper()
	if len(data) == 0 {
		return 0
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
	if err != nil {
		t.Fatal(err)
	}
	return td.SpanCount()
}

// TestRewrittenBlockIsReopened is issue 12 item 5: a querier kept its
// cached reader of a block rewritten under the same ID, and reads of it
// failed ("invalid magic footer") until a restart. Now a poll notices the
// new meta.json (its last-modified time in the listing) and replaces the
// entry, and a read through a stale entry rereads the meta and retries.
func TestRewrittenBlockIsReopened(t *testing.T) {
	ctx := context.Background()
	bkt := localBucket(t)
	id := uuid.New()
	old := writeSpans(t, bkt, "t", id, 1, 2)
	reg := prometheus.NewRegistry()
	l := New(bkt, time.Hour, reg, nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	find := func(r *block.Reader) ([]byte, error) { return r.FindTraceByID(ctx, [16]byte{1}) }
	stale := l.Get("t", id)
	if data, err := Read(ctx, l, bkt, stale, find); err != nil || spanCount(t, data) != 2 {
		t.Fatalf("before the rewrite: %d spans, %v", spanCount(t, data), err)
	}

	time.Sleep(10 * time.Millisecond)
	m := writeSpans(t, bkt, "t", id, 1, 40)
	if m.Size == old.Size {
		t.Fatal("the rewritten block has the same size")
	}
	// The stale entry's reader fails; Read rereads the meta and retries.
	if _, err := stale.Reader(ctx, bkt); err != nil {
		t.Fatal(err)
	}
	stale.close() // drop the cached footer: the next read opens data.parquet again with the old size
	if _, err := find(must(stale.Reader(ctx, bkt))); err == nil {
		t.Fatal("reading a rewritten block with its old meta did not fail; the test shows nothing")
	}
	if data, err := Read(ctx, l, bkt, stale, find); err != nil || spanCount(t, data) != 40 {
		t.Fatalf("Read through the stale entry: %d spans, %v", spanCount(t, data), err)
	}
	if e := l.Get("t", id); e == stale || e.Meta.Size != m.Size {
		t.Fatal("Read did not replace the stale entry")
	}

	// Without a failed read: the next poll notices the rewrite.
	time.Sleep(10 * time.Millisecond)
	m2 := writeSpans(t, bkt, "t", id, 1, 7)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	e := l.Get("t", id)
	if e == nil || !e.Meta.CreatedAt.Equal(m2.CreatedAt) {
		t.Fatal("the poll kept the old meta of a rewritten block")
	}
	if data, err := find(must(e.Reader(ctx, bkt))); err != nil || spanCount(t, data) != 7 {
		t.Fatalf("after the poll: %d spans, %v", spanCount(t, data), err)
	}
	if v := testutil.ToFloat64(l.rewritten); v != 2 {
		t.Fatalf("weft_blocklist_blocks_reopened_total = %v, want 2", v)
	}
	// An unchanged block is not read again.
	before := l.Get("t", id)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Get("t", id) != before {
		t.Fatal("a poll replaced an unchanged entry")
	}
}

// TestPollDropsBlockBeingRewritten: a rewrite deletes meta.json first, so
// a poll in the middle of it leaves the block out, as a process starting
// then would.
func TestPollDropsBlockBeingRewritten(t *testing.T) {
	ctx := context.Background()
	bkt := localBucket(t)
	m := writeSpans(t, bkt, "t", uuid.New(), 1, 2)
	l := New(bkt, time.Hour, nil, nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Delete(ctx, m.ObjectName(block.MetaName)); err != nil {
		t.Fatal(err)
	}
	writeSpans(t, bkt, "t", uuid.New(), 2, 2) // keeps the tenant listed
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Get("t", m.BlockID) != nil {
		t.Fatal("a block without meta.json is still listed")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// slowListBucket lets a test run code while a poll's listing of a tenant is
// in progress.
type slowListBucket struct {
	objstore.Bucket
	during func()
}

func (b *slowListBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	err := b.Bucket.IterWithAttributes(ctx, dir, f, opts...)
	if b.during != nil && dir != "" {
		b.during()
	}
	return err
}

// TestPollKeepsBlocksAddedDuringIt: a block this process uploads while a
// poll is listing (Add comes after the upload) is not in that listing; the
// poll must not remove it, or its spans, already dropped from the
// live-store, would 404 until the next poll.
func TestPollKeepsBlocksAddedDuringIt(t *testing.T) {
	ctx := context.Background()
	inner := localBucket(t)
	bkt := &slowListBucket{Bucket: inner}
	writeSpans(t, inner, "t", uuid.New(), 1, 2)
	l := New(bkt, time.Hour, nil, nil)
	var added *block.Meta
	bkt.during = func() {
		if added == nil {
			added = writeSpans(t, inner, "t", uuid.New(), 2, 2)
			l.Add(added)
		}
	}
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Get("t", added.BlockID) == nil {
		t.Fatal("the poll removed a block added while it was listing")
	}
}

// countingBucket counts the requests a poll makes.
type countingBucket struct {
	objstore.Bucket
	mu                 sync.Mutex
	gets, attrs, lists int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	b.gets++
	b.mu.Unlock()
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	b.mu.Lock()
	b.attrs++
	b.mu.Unlock()
	return b.Bucket.Attributes(ctx, name)
}

func (b *countingBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	b.mu.Lock()
	b.lists++
	b.mu.Unlock()
	return b.Bucket.IterWithAttributes(ctx, dir, f, opts...)
}

func (b *countingBucket) take() (gets, attrs, lists int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gets, attrs, lists = b.gets, b.attrs, b.lists
	b.gets, b.attrs, b.lists = 0, 0, 0
	return
}

// TestPollCost: a poll reads the meta.json (one GET, one HEAD) of new
// blocks only; a poll of unchanged blocks makes no GET and no HEAD, only
// the listing.
func TestPollCost(t *testing.T) {
	ctx := context.Background()
	inner := localBucket(t)
	bkt := &countingBucket{Bucket: inner}
	for i := range 5 {
		writeSpans(t, inner, "t", uuid.New(), byte(i+1), 2)
	}
	l := New(bkt, time.Hour, nil, nil)
	l.stampSlack = 0 // the blocks are old (see TestPollRereadsRecentBlocksOnce)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if gets, attrs, _ := bkt.take(); gets != 5 || attrs != 5 {
		t.Fatalf("first poll: %d GETs, %d HEADs; want 5 and 5", gets, attrs)
	}
	for range 3 {
		if err := l.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if gets, attrs, lists := bkt.take(); gets != 0 || attrs != 0 || lists != 3 {
		t.Fatalf("3 polls of unchanged blocks: %d GETs, %d HEADs, %d recursive listings; want 0, 0, 3", gets, attrs, lists)
	}
	// A block this process added is read once more, for its stamp.
	l.Add(writeSpans(t, inner, "t", uuid.New(), 9, 2))
	_ = l.Poll(ctx)
	_ = l.Poll(ctx)
	if gets, _, _ := bkt.take(); gets != 1 {
		t.Fatalf("a block added by this process: %d GETs over 2 polls, want 1", gets)
	}
}

// TestPollRereadsRecentBlocksOnce: S3 gives last-modified times in whole
// seconds, so a rewrite in the same second as the write the list read
// keeps the listed time. A meta.json read within stampSlack of its time is
// therefore read once more at a later poll, which sees the rewrite.
func TestPollRereadsRecentBlocksOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inner, err := storage.NewBucket(storage.Config{Backend: storage.BackendLocal, Local: storage.LocalConfig{Path: dir}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bkt := &countingBucket{Bucket: inner}
	id := uuid.New()
	old := writeSpans(t, inner, "t", id, 1, 2)
	metaPath := filepath.Join(dir, "t", id.String(), block.MetaName)
	st, err := os.Stat(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	l := New(bkt, time.Hour, nil, nil)
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	// Rewritten within the same second: the listing shows the same time.
	m := writeSpans(t, inner, "t", id, 1, 9)
	if err := os.Chtimes(metaPath, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	bkt.take()
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if e := l.Get("t", id); e == nil || !e.Meta.CreatedAt.Equal(m.CreatedAt) || e.Meta.CreatedAt.Equal(old.CreatedAt) {
		t.Fatal("a rewrite within the listed time's second was missed")
	}
	// Once read long enough after its time, it is not read again.
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(metaPath, past, past); err != nil {
		t.Fatal(err)
	}
	_ = l.Poll(ctx) // new stamp: read
	bkt.take()
	for range 3 {
		_ = l.Poll(ctx)
	}
	if gets, _, _ := bkt.take(); gets != 0 {
		t.Fatalf("%d GETs for an old unchanged block", gets)
	}
}

// slowGetBucket runs during before the GET of a meta.json returns.
type slowGetBucket struct {
	objstore.Bucket
	during func()
}

func (b *slowGetBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := b.Bucket.Get(ctx, name)
	if b.during != nil {
		b.during()
	}
	return rc, err
}

// TestPollKeepsNewerAdd: a block this process rewrites and adds while a
// poll is reading its old meta.json keeps the new meta.
func TestPollKeepsNewerAdd(t *testing.T) {
	ctx := context.Background()
	inner := localBucket(t)
	bkt := &slowGetBucket{Bucket: inner}
	id := uuid.New()
	writeSpans(t, inner, "t", id, 1, 2)
	l := New(bkt, time.Hour, nil, nil)
	var added *block.Meta
	bkt.during = func() {
		if added == nil {
			time.Sleep(5 * time.Millisecond)
			added = writeSpans(t, inner, "t", id, 1, 5)
			l.Add(added)
		}
	}
	if err := l.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if e := l.Get("t", id); e == nil || !e.Meta.CreatedAt.Equal(added.CreatedAt) {
		t.Fatal("the poll replaced a newer entry with the meta it had read before")
	}
}
