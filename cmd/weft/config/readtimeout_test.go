package config

import (
	"strings"
	"testing"
	"time"
)

// storage.trace.read_timeout decodes, defaults to 5s and refuses a
// negative value with its key.
func TestStorageReadTimeout(t *testing.T) {
	if d := Default().Storage.Trace.ReadTimeout; d != 5*time.Second {
		t.Fatalf("default read_timeout %s, want 5s", d)
	}
	c, _, err := Load("weft.yaml", []byte("storage:\n  trace:\n    backend: local\n    read_timeout: 750ms\n"), false)
	if err != nil || c.Storage.Trace.ReadTimeout != 750*time.Millisecond {
		t.Fatalf("read_timeout: %v, %v", c.Storage.Trace.ReadTimeout, err)
	}
	_, _, err = Load("weft.yaml", []byte("storage:\n  trace:\n    read_timeout: -1s\n"), false)
	if err == nil || !strings.Contains(err.Error(), "storage.trace.read_timeout: must not be negative") {
		t.Fatalf("err = %v", err)
	}
}
