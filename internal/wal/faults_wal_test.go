package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/tmpfstest"
)

// faultWriter fails writes with ENOSPC while full is set, after writing
// half of what it was given (a short write, as a file system that fills up
// in the middle of a write does).
type faultWriter struct {
	mu   sync.Mutex
	f    *os.File
	full bool
}

func (fw *faultWriter) Write(p []byte) (int, error) {
	fw.mu.Lock()
	full := fw.full
	fw.mu.Unlock()
	if !full {
		return fw.f.Write(p)
	}
	n, _ := fw.f.Write(p[:len(p)/2])
	return n, &os.PathError{Op: "write", Path: fw.f.Name(), Err: syscall.ENOSPC}
}

func (fw *faultWriter) set(full bool) {
	fw.mu.Lock()
	fw.full = full
	fw.mu.Unlock()
}

// injectFaults makes w write through a faultWriter.
func injectFaults(w *WAL) *faultWriter {
	fw := &faultWriter{}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wrap = func(f *os.File) io.Writer { fw.mu.Lock(); fw.f = f; fw.mu.Unlock(); return fw }
	w.w.Reset(w.sink(w.f))
	return fw
}

func rec(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100+i) }

// A write error fails the records not yet durable, and only those; the log
// says it is failing, takes writes again once they succeed, and a replay
// finds exactly the records whose Append succeeded, at the offsets it
// returned.
func TestWriteErrorIsNotPermanent(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 8<<10)
	fw := injectFaults(w)
	want := map[int64][]byte{}
	i := 0
	appendOK := func() {
		t.Helper()
		off, err := w.Append("t", 0, rec(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want[off] = rec(i)
		i++
	}
	for range 30 {
		appendOK()
	}
	for w.segSize < 2<<10 || w.segSize > 6<<10 { // room for two more in the segment
		appendOK()
	}
	fw.set(true)
	// Two writers whose records share one failed flush: both fail.
	t1, err1 := w.Write("t", 0, rec(100))
	t2, err2 := w.Write("t", 0, rec(101))
	if err1 != nil || err2 != nil {
		t.Fatalf("writes into the buffer: %v, %v", err1, err2)
	}
	if err := w.Sync(t1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync on a full disk: %v, want ENOSPC", err)
	}
	if err := w.Sync(t2); err == nil {
		t.Fatal("the second record of a failed flush is reported durable")
	}
	if w.Failing() == nil || w.Failures() != 1 {
		t.Fatalf("Failing() = %v, Failures() = %d after one failure", w.Failing(), w.Failures())
	}
	for range 5 { // refused fast, or failing again after a retry
		if _, err := w.Append("t", 0, rec(102)); err == nil {
			t.Fatal("append succeeded on a full disk")
		}
		time.Sleep(minRetry / 3)
	}
	fw.set(false)
	if w.Failing() == nil {
		t.Fatal("Failing() cleared before any write succeeded")
	}
	time.Sleep(minRetry)
	for range 30 {
		appendOK()
	}
	if w.Failing() != nil {
		t.Fatalf("Failing() = %v after writes succeed again", w.Failing())
	}
	// A ticket of a generation that ended is still answered right.
	if err := w.Sync(t1); err == nil {
		t.Fatal("a lost record is reported durable after the recovery")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, got := replayAll(t, dir, 8<<10)
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want the %d acknowledged", len(got), len(want))
	}
	for _, r := range got {
		if !bytes.Equal(r.Data, want[r.Offset]) {
			t.Fatalf("record at offset %d holds %d bytes, not what was appended there", r.Offset, len(r.Data))
		}
	}
}

// Close on a failing log keeps every acknowledged record and succeeds: what
// it cuts off was never acknowledged.
func TestCloseWhileFailing(t *testing.T) {
	dir := t.TempDir()
	w, _ := replayAll(t, dir, 0)
	fw := injectFaults(w)
	for i := range 10 {
		if _, err := w.Append("t", 0, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	fw.set(true)
	if _, err := w.Append("t", 0, rec(10)); err == nil {
		t.Fatal("append succeeded on a full disk")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close of a failing log: %v", err)
	}
	_, got := replayAll(t, dir, 0)
	if len(got) != 10 {
		t.Fatalf("replayed %d records, want 10", len(got))
	}
}

// The same on a real full file system: a tmpfs filled up, then freed.
func TestDiskFullThenFreed(t *testing.T) {
	dir := tmpfstest.Mount(t, 256<<10)
	w, _ := replayAll(t, dir, 64<<10)
	n := 0
	for ; n < 20; n++ {
		if _, err := w.Append("t", 0, rec(n)); err != nil {
			t.Fatal(err)
		}
	}
	free := tmpfstest.Fill(t, dir)
	failed := 0
	for i := 0; i < 200; i++ { // 4 KiB and more past the free space
		if _, err := w.Append("t", 0, bytes.Repeat([]byte("x"), 1000)); err != nil {
			failed++
			if !errors.Is(err, syscall.ENOSPC) && failed == 1 {
				t.Fatalf("first failure: %v, want ENOSPC", err)
			}
			continue
		}
		n++
	}
	if failed == 0 {
		t.Fatal("no append failed on a full tmpfs")
	}
	free()
	var err error
	for try := 0; try < 50; try++ {
		if _, err = w.Append("t", 0, rec(1)); err == nil {
			break
		}
		time.Sleep(minRetry / 2)
	}
	if err != nil {
		t.Fatalf("append after the space was freed: %v", err)
	}
	n++
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, got := replayAll(t, dir, 64<<10)
	if len(got) != n {
		t.Fatalf("replayed %d records, want the %d acknowledged", len(got), n)
	}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
	fmt.Fprint(io.Discard, n)
}
