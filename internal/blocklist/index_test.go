package blocklist

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/block"
)

func fsBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// writer returns a list that writes the tenant indexes of bkt.
func writer(bkt objstore.Bucket, allow func() bool) *List {
	l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	l.WriteIndexes(bkt, allow)
	return l
}

// reader returns a list that reads the tenant indexes of bkt, and its
// metrics registry.
func reader(bkt objstore.BucketReader, fallback bool, stale time.Duration) (*List, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	l := New(bkt, time.Hour, reg, nil)
	l.ReadIndexes(fallback, stale)
	return l, reg
}

func always() bool { return true }

func sortedIDs(metas ...*block.Meta) []uuid.UUID {
	var out []uuid.UUID
	for _, m := range metas {
		out = append(out, m.BlockID)
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func poll(t *testing.T, l *List) {
	t.Helper()
	if err := l.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A reader that has a tenant's index polls it with one GET of the index
// and one listing of the bucket's top level: no listing of the tenant, no
// meta.json read. The index holds the blocks, the blocks let go with their
// time, and the unreadable blocks with why.
func TestIndexWrittenAndRead(t *testing.T) {
	ctx := context.Background()
	bkt := fsBucket(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := write(t, bkt, "t", t0)
	b := write(t, bkt, "t", t0.Add(time.Hour))
	gone := write(t, bkt, "t", t0.Add(2*time.Hour))
	if err := block.MarkCompacted(ctx, bkt, gone, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	bad := write(t, bkt, "t", t0.Add(4*time.Hour))
	if err := bkt.Upload(ctx, bad.ObjectName(block.MetaName), bytes.NewReader([]byte("{"))); err != nil {
		t.Fatal(err)
	}

	w := writer(bkt, always)
	poll(t, w)
	idx, err := ReadIndex(ctx, bkt, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortedIDs(idx.Meta...), sortedIDs(a, b); !slices.Equal(got, want) {
		t.Fatalf("index meta: %v, want %v", got, want)
	}
	if len(idx.Compacted) != 1 || idx.Compacted[0].BlockID != gone.BlockID || !idx.Compacted[0].CompactedTime.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("index compacted: %+v, want block %s let go at %s", idx.Compacted, gone.BlockID, t0.Add(3*time.Hour))
	}
	if len(idx.Unreadable) != 1 || idx.Unreadable[0].BlockID != bad.BlockID {
		t.Fatalf("index unreadable: %+v, want block %s", idx.Unreadable, bad.BlockID)
	}

	cb := newOps(bkt)
	r, reg := reader(cb, true, time.Hour)
	poll(t, r)
	if got, want := ids(r, "t"), sortedIDs(a, b); !slices.Equal(got, want) {
		t.Fatalf("reader blocks: %v, want %v", got, want)
	}
	if cb.listed("t/") {
		t.Fatalf("the reader listed the tenant: %v", cb.listings)
	}
	if n := cb.read(block.MetaName); n != 0 {
		t.Fatalf("the reader read %d meta.json", n)
	}
	if n := cb.requests(); n != 2 {
		t.Fatalf("the reader made %d requests (%v), want 2: the top-level listing and the index", n, cb.calls)
	}
	if got := r.Unreadable("t"); len(got) != 1 || got[0] != bad.BlockID || r.UnreadableReason("t", bad.BlockID) == "" {
		t.Fatalf("reader unreadable: %v", got)
	}
	if v := testutil.ToFloat64(r.im.reads.WithLabelValues("t")); v != 1 {
		t.Fatalf("index reads %v, want 1", v)
	}
	if n, err := testutil.GatherAndCount(reg, "weft_blocklist_tenant_index_fallbacks_total"); err != nil || n != 0 {
		t.Fatalf("fallbacks: %d series, %v", n, err)
	}
	if v := testutil.ToFloat64(r.length.WithLabelValues("t")); v != 2 {
		t.Fatalf("tempodb_blocklist_length %v, want 2", v)
	}

	// A block this process writes after the index was made stays in its
	// list, though the index does not have it.
	c := write(t, bkt, "t", t0.Add(5*time.Hour))
	r.Add(c)
	poll(t, r)
	if got, want := ids(r, "t"), sortedIDs(a, b, c); !slices.Equal(got, want) {
		t.Fatalf("after Add: %v, want %v", got, want)
	}
	// The repaired block comes back through the next index.
	if err := bkt.Delete(ctx, bad.ObjectName(block.MetaName)); err != nil {
		t.Fatal(err)
	}
	poll(t, w)
	poll(t, r)
	if got, want := ids(r, "t"), sortedIDs(a, b, c); !slices.Equal(got, want) || len(r.Unreadable("t")) != 0 {
		t.Fatalf("after the bad block is removed: %v, unreadable %v", got, r.Unreadable("t"))
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A reader lists a tenant whose index is missing, damaged or stale, and
// finds its blocks; without fallback the poll of that tenant fails.
func TestIndexFallback(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, reason string
		index        func(t *testing.T, bkt objstore.Bucket, m *block.Meta) // writes the index, nil: none
	}{
		{"missing", "missing", nil},
		{"not gzip", "invalid", func(t *testing.T, bkt objstore.Bucket, _ *block.Meta) {
			if err := bkt.Upload(ctx, IndexObject("t"), bytes.NewReader([]byte(`{"created_at":"2026-03-01T00:00:00Z","meta":[]}`))); err != nil {
				t.Fatal(err)
			}
		}},
		{"bad JSON", "invalid", func(t *testing.T, bkt objstore.Bucket, _ *block.Meta) {
			if err := bkt.Upload(ctx, IndexObject("t"), bytes.NewReader(gz(t, []byte(`{"created_at":`)))); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta failing Validate", "invalid", func(t *testing.T, bkt objstore.Bucket, m *block.Meta) {
			broken := *m
			broken.TotalSpans = 0
			if err := WriteIndex(ctx, bkt, "t", &Index{CreatedAt: time.Now(), Meta: []*block.Meta{&broken}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"stale", "stale", func(t *testing.T, bkt objstore.Bucket, _ *block.Meta) {
			// Valid, but two hours old and empty: used, it would hide the blocks.
			if err := WriteIndex(ctx, bkt, "t", &Index{CreatedAt: time.Now().Add(-2 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := fsBucket(t)
			a := write(t, bkt, "t", t0)
			b := write(t, bkt, "t", t0.Add(time.Hour))
			if tc.index != nil {
				tc.index(t, bkt, a)
			}
			cb := newOps(bkt)
			r, _ := reader(cb, true, time.Hour)
			poll(t, r)
			if got, want := ids(r, "t"), sortedIDs(a, b); !slices.Equal(got, want) {
				t.Fatalf("blocks %v, want %v", got, want)
			}
			if !cb.listed("t/") {
				t.Fatal("the tenant was not listed")
			}
			if v := testutil.ToFloat64(r.im.fallbacks.WithLabelValues("t", tc.reason)); v != 1 {
				t.Fatalf("fallbacks{reason=%q} %v, want 1", tc.reason, v)
			}
			if v := testutil.ToFloat64(r.im.reads.WithLabelValues("t")); v != 0 {
				t.Fatalf("index reads %v, want 0", v)
			}

			// Without fallback: the tenant's poll fails, nothing listed.
			cb.reset()
			r2, _ := reader(cb, false, time.Hour)
			if err := r2.Poll(ctx); err == nil {
				t.Fatal("poll without fallback succeeded")
			} else {
				t.Log(err)
			}
			if cb.listed("t/") || r2.Count("t") != 0 {
				t.Fatalf("without fallback: listed %v, %d blocks", cb.listings, r2.Count("t"))
			}
		})
	}
}

// A compaction seen through the index: the reader serves the inputs until
// an index has the output, then the output alone; never both.
func TestIndexCompactionSwap(t *testing.T) {
	ctx := context.Background()
	bkt := fsBucket(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := write(t, bkt, "t", t0)
	b := write(t, bkt, "t", t0.Add(time.Minute))
	w := writer(bkt, always)
	poll(t, w)
	r, _ := reader(bkt, false, time.Hour) // no fallback: the index alone
	poll(t, r)
	check := func(when string, want ...*block.Meta) {
		t.Helper()
		if got := ids(r, "t"); !slices.Equal(got, sortedIDs(want...)) {
			t.Fatalf("%s: reader serves %v, want %v", when, got, sortedIDs(want...))
		}
	}
	check("before", a, b)

	res, err := block.Compact(ctx, bkt, []*block.Meta{a, b}, block.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Meta
	poll(t, r)
	check("output written, index not yet", a, b)
	poll(t, w) // the output is listed, the inputs hidden
	poll(t, r)
	check("output in the index, inputs not let go", out)
	for _, m := range []*block.Meta{a, b} {
		if err := block.MarkCompacted(ctx, bkt, m, t0); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, w)
	poll(t, r)
	check("inputs let go", out)
	idx, err := ReadIndex(ctx, bkt, "t")
	if err != nil {
		t.Fatal(err)
	}
	var let []*block.Meta
	for _, c := range idx.Compacted {
		let = append(let, &c.Meta)
	}
	if got := sortedIDs(let...); !slices.Equal(got, sortedIDs(a, b)) {
		t.Fatalf("index compacted %v, want the inputs %v", got, sortedIDs(a, b))
	}
}

// Only the scheduler holding the lock writes the indexes: of two
// schedulers on one bucket, the waiting one's list writes none until it
// takes the lock over.
func TestIndexOnlyLockHolderWrites(t *testing.T) {
	ctx := context.Background()
	bkt := fsBucket(t)
	write(t, bkt, "t", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	exists := func() bool {
		ok, err := bkt.Exists(ctx, IndexObject("t"))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	newSched := func(owner string) (*scheduler.Scheduler, *scheduler.Lock) {
		s := scheduler.New(bkt, noBlocks{}, nil, scheduler.Settings{JobTimeout: time.Second, Lease: time.Minute}, nil, nil)
		return s, scheduler.NewLock(bkt, owner, 3*time.Second)
	}
	sa, la := newSched("a")
	sb, lb := newSched("b")
	ctxA, stopA := context.WithCancel(ctx)
	doneA := make(chan struct{})
	go func() { defer close(doneA); sa.Run(ctxA, la, time.Hour, time.Hour) }()
	defer func() { stopA(); <-doneA }()
	waitFor(t, 10*time.Second, "scheduler a runs", sa.Active)
	ctxB, stopB := context.WithCancel(ctx)
	doneB := make(chan struct{})
	go func() { defer close(doneB); sb.Run(ctxB, lb, time.Hour, time.Hour) }()
	defer func() { stopB(); <-doneB }()

	wa, wb := writer(bkt, sa.Active), writer(bkt, sb.Active)
	poll(t, wb)
	if sb.Active() || exists() {
		t.Fatalf("the waiting scheduler's list wrote the index (b active: %v)", sb.Active())
	}
	poll(t, wa)
	if !exists() {
		t.Fatal("the lock holder's list did not write the index")
	}

	// a stops (gives the lock up); b takes over and writes.
	stopA()
	<-doneA
	if err := bkt.Delete(ctx, IndexObject("t")); err != nil {
		t.Fatal(err)
	}
	poll(t, wa)
	if exists() {
		t.Fatal("a stopped scheduler's list wrote the index")
	}
	waitFor(t, 15*time.Second, "scheduler b takes over", sb.Active)
	poll(t, wb)
	if !exists() {
		t.Fatal("the new lock holder's list did not write the index")
	}
}

type noBlocks struct{}

func (noBlocks) Tenants() []string { return nil }

func (noBlocks) Compactable(string) []compaction.Block { return nil }

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A block rewritten under the same ID reaches the reader through the
// index: its entry is replaced (the reader reopened).
func TestIndexRewrite(t *testing.T) {
	bkt := fsBucket(t)
	m := write(t, bkt, "t", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	w := writer(bkt, always)
	poll(t, w)
	r, _ := reader(bkt, false, time.Hour)
	poll(t, r)
	again := *m
	again.CreatedAt = m.CreatedAt.Add(time.Minute)
	b, err := json.Marshal(&again)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, m.ObjectName(block.MetaName), b)
	poll(t, w)
	poll(t, r)
	if e := r.Get("t", m.BlockID); e == nil || !e.Meta.CreatedAt.Equal(again.CreatedAt) {
		t.Fatalf("reader's entry %+v, want the rewritten meta (createdAt %s)", e, again.CreatedAt)
	}
	if v := testutil.ToFloat64(r.rewritten); v != 1 {
		t.Fatalf("blocks reopened %v, want 1", v)
	}
}

// An index that cannot be used is logged when that starts and when it
// ends, not at every poll.
func TestIndexLogsChangesOnly(t *testing.T) {
	bkt := fsBucket(t)
	write(t, bkt, "t", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	upload(t, bkt, IndexObject("t"), []byte("not gzip"))
	var logs bytes.Buffer
	r := New(bkt, time.Hour, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	r.ReadIndexes(true, time.Hour)
	for range 3 {
		poll(t, r)
	}
	if n := strings.Count(logs.String(), "tenant index cannot be used"); n != 1 {
		t.Fatalf("%d warnings in three polls, want 1:\n%s", n, logs.String())
	}
	poll(t, writer(bkt, always))
	poll(t, r)
	poll(t, r)
	if n := strings.Count(logs.String(), "tenant index is used again"); n != 1 {
		t.Fatalf("%d lines saying the index is used again, want 1:\n%s", n, logs.String())
	}
}
