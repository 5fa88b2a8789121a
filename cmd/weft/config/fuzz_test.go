package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary config files to Load: it must not panic, every
// error must name the file, and a file it accepts must load the same way
// twice (decoding has no hidden state).
func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile("testdata/tempo-monolithic.yaml"); err == nil {
		f.Add(string(b), false)
	}
	f.Add("server:\n  http_listen_port: 3200\n", false)
	f.Add("server:\n  http_listen_prot: 1\n", false)
	f.Add("target: ${WEFT_TARGET:-all}\n", true)
	f.Add("overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: -1\n", false)
	f.Add("storage:\n  trace:\n    backend: s3\n    s3: {bucket: b, endpoint: 127.0.0.1:9000}\n", false)
	f.Add("live_store:\n  window: 1s\nblock_builder:\n  max_block_duration: 1m\n", false)
	f.Add("<<: *x", false)
	// Tempo 2.x keys, which Load rewrites before decoding.
	if files, err := filepath.Glob("testdata/tempo2/*.yaml"); err == nil {
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(string(b), false)
			}
		}
	}
	f.Add("auth_enabled: true\nmultitenancy_enabled: false\n", false)
	f.Add("compactor:\n  compaction: &c {block_retention: 1h}\nbackend_worker: {compaction: *c}\n", false)
	f.Add("overrides: {max_traces_per_user: 1, defaults: null, block_retention: x}\n", false)
	f.Add("overrides:\n  metrics_generator_processors: [local-blocks]\n  defaults: 3\n", false)
	f.Fuzz(func(t *testing.T, data string, expandEnv bool) {
		cfg, _, err := Load("weft.yaml", []byte(data), expandEnv)
		if err != nil {
			if !strings.Contains(err.Error(), "weft.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		again, _, err := Load("weft.yaml", []byte(data), expandEnv)
		if err != nil {
			t.Fatalf("second Load failed: %v", err)
		}
		if cfg.Target != again.Target || cfg.Server != again.Server || cfg.LiveStore != again.LiveStore {
			t.Fatalf("two loads differ: %+v, %+v", cfg.Server, again.Server)
		}
	})
}
