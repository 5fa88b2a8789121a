// Package tmpfstest gives tests a small tmpfs to fill up: a real disk-full
// fault (ENOSPC) for code that writes files, without a mock.
package tmpfstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory and
// unmounts it when the test ends. It skips the test, saying why, where
// mounting is refused (not root, no CAP_SYS_ADMIN, a sandbox).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill up (needs root and CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("cannot unmount the test tmpfs %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file in dir until the file system is full and returns a
// function that deletes it again.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("cannot create the filler: %v", err)
	}
	chunk := make([]byte, 4096)
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatalf("%s did not fill up after 4 GiB", dir)
		}
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// The last partial page may still be free: fill it byte by byte.
	for i := 0; i < 4096; i++ {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
	f.Close()
	return func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("cannot delete the filler: %v", err)
		}
	}
}
