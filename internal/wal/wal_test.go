package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func replayAll(t *testing.T, dir string, segBytes int64) (*WAL, []Record) {
	t.Helper()
	var got []Record
	w, err := Open(dir, segBytes, func(r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, got
}

func TestAppendReplay(t *testing.T) {
	dir := t.TempDir()
	w, got := replayAll(t, dir, 1<<10)
	if len(got) != 0 {
		t.Fatalf("new WAL replayed %d records", len(got))
	}
	for i := 0; i < 100; i++ {
		off, err := w.Append(fmt.Sprintf("tenant-%d", i%3), int32(i%2), bytes.Repeat([]byte{byte(i)}, 50))
		if err != nil {
			t.Fatal(err)
		}
		if off != int64(i) {
			t.Fatalf("offset %d, want %d", off, i)
		}
	}
	if w.Segments() < 3 {
		t.Fatalf("1 KiB segments: only %d segments for ~6 KiB", w.Segments())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, got = replayAll(t, dir, 1<<10)
	if len(got) != 100 {
		t.Fatalf("replayed %d records, want 100", len(got))
	}
	for i, r := range got {
		if r.Offset != int64(i) || r.Tenant != fmt.Sprintf("tenant-%d", i%3) || r.Partition != int32(i%2) || !bytes.Equal(r.Data, bytes.Repeat([]byte{byte(i)}, 50)) {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
	// Appends continue after the replayed records.
	if off, err := w.Append("t", 0, []byte("x")); err != nil || off != 100 {
		t.Fatalf("append after replay: offset %d, %v", off, err)
	}
	w.Close()
	_, got = replayAll(t, dir, 1<<10)
	if len(got) != 101 {
		t.Fatalf("second replay: %d records", len(got))
	}
}

// A record cut short by a crash is dropped and cut off; the records before
// it survive, and appends continue cleanly.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 0)
	for i := 0; i < 5; i++ {
		if _, err := w.Append("t", 0, []byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	last := segs[len(segs)-1]
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r'}) // header of 200 bytes, 3 present
	f.Close()

	w, got := replayAll(t, dir, 0)
	if len(got) != 5 {
		t.Fatalf("replayed %d records, want 5", len(got))
	}
	if off, err := w.Append("t", 0, []byte("after")); err != nil || off != 5 {
		t.Fatalf("append: %d %v", off, err)
	}
	w.Close()
	_, got = replayAll(t, dir, 0)
	if len(got) != 6 || string(got[5].Data) != "after" {
		t.Fatalf("after torn tail: %d records", len(got))
	}
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 200)
	for i := 0; i < 20; i++ {
		if _, err := w.Append("t", 0, bytes.Repeat([]byte("x"), 50)); err != nil {
			t.Fatal(err)
		}
	}
	before := w.Segments()
	if err := w.Release(10); err != nil {
		t.Fatal(err)
	}
	if w.Segments() >= before {
		t.Fatalf("Release(10) kept all %d segments", before)
	}
	w.Close()
	_, got := replayAll(t, dir, 200)
	if len(got) == 0 || got[0].Offset > 10 || got[len(got)-1].Offset != 19 {
		t.Fatalf("after release: first %d last %d", got[0].Offset, got[len(got)-1].Offset)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Offset != got[i-1].Offset+1 {
			t.Fatalf("gap in offsets after release")
		}
	}
}

// Concurrent appends get distinct offsets and all survive.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 4<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				off, err := w.Append("t", int32(g), []byte(fmt.Sprintf("%d-%d", g, i)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[off] = true
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	w.Close()
	if len(seen) != 400 {
		t.Fatalf("%d distinct offsets, want 400", len(seen))
	}
	_, got := replayAll(t, dir, 4<<10)
	if len(got) != 400 {
		t.Fatalf("replayed %d, want 400", len(got))
	}
}

func BenchmarkAppend(b *testing.B) {
	w, err := Open(b.TempDir(), 0, func(Record) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := bytes.Repeat([]byte("x"), 64<<10)
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.Append("t", 0, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Two logs cannot share a directory; the epoch survives restarts and a new
// directory gets a new one.
func TestLockAndEpoch(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 0)
	if _, err := Open(dir, 0, func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "wal.path") {
		t.Fatalf("second open of a locked WAL: %v", err)
	}
	epoch := w.Epoch()
	w.Close()
	w, _ = replayAll(t, dir, 0)
	if w.Epoch() != epoch || len(epoch) != 32 {
		t.Fatalf("epoch %q after restart, want %q", w.Epoch(), epoch)
	}
	w.Close()
	other, _ := replayAll(t, t.TempDir(), 0)
	defer other.Close()
	if other.Epoch() == epoch {
		t.Fatal("a new WAL reused an epoch")
	}
}
