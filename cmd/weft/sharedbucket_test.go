package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block/blocktest"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
)

// fileHashes maps every file under dir (path relative to dir) to the
// SHA-256 of its content.
func fileHashes(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// metricTotal sums the values of every /metrics sample of name.
func metricTotal(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	total := 0.0
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		total += v
	}
	return total
}

// pushRange pushes the traces first..last, sleeping pause between pushes,
// and returns their IDs; every push must be acknowledged.
func pushRange(t *testing.T, otlpHTTP string, first, last uint64, pause time.Duration) ([][16]byte, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	var ids [][16]byte
	for seq := first; seq <= last; seq++ {
		tid, body := traceRequest(seq)
		if !pushAcked(client, otlpHTTP, body) {
			return ids, fmt.Errorf("push %d to %s not acknowledged", seq, otlpHTTP)
		}
		ids = append(ids, tid)
		time.Sleep(pause)
	}
	return ids, nil
}

// checkSpansOnce checks that the blocks in bkt hold exactly the spans of
// ids, each once, and returns the number of blocks.
func checkSpansOnce(t *testing.T, bkt objstore.BucketReader, ids [][16]byte) int {
	t.Helper()
	counts, blocks := blocktest.SpanCounts(t, bkt)
	for key, n := range counts {
		if n != 1 {
			t.Fatalf("span %s is stored %d times", key, n)
		}
	}
	if len(counts) != len(ids)*spansPerTrace {
		t.Fatalf("blocks hold %d distinct spans, want %d (%d acknowledged traces)", len(counts), len(ids)*spansPerTrace, len(ids))
	}
	for _, id := range ids {
		for i := 0; i < spansPerTrace; i++ {
			key := fmt.Sprintf("single-tenant/%x/%016x", id, id2seq(id)<<8|uint64(i+1))
			if counts[key] != 1 {
				t.Fatalf("acknowledged span %s is stored %d times", key, counts[key])
			}
		}
	}
	return blocks
}

// id2seq is the seq traceRequest made the trace ID from.
func id2seq(id [16]byte) uint64 {
	return binary.BigEndian.Uint64(id[:8]) &^ 0xfeed0000_00000000
}

// Delete the WAL of a weft whose blocks are uploaded and start it again
// with an empty WAL: the new WAL's blocks take new IDs, so every block
// stored before is still there byte for byte, and every acknowledged span
// of both runs is stored exactly once and served.
func TestDeletedWALKeepsBlocks(t *testing.T) {
	ps := newPorts(t)
	data := t.TempDir()
	blocksDir := filepath.Join(data, "blocks")
	cfg := writeFile(t, "weft.yaml", durableConfig(ps, data))

	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	before, err := pushRange(t, loopback(ps.otlpHTTP), 1, 150, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	stored := fileHashes(t, blocksDir)
	blocksBefore := 0
	for name := range stored {
		if filepath.Base(name) == "meta.json" {
			blocksBefore++
		}
	}
	if blocksBefore == 0 {
		t.Fatal("no block was uploaded before the WAL was deleted")
	}
	if err := os.RemoveAll(filepath.Join(data, "wal")); err != nil {
		t.Fatal(err)
	}

	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	after, err := pushRange(t, loopback(ps.otlpHTTP), 151, 300, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The new WAL's first block is cut at once (max_block_duration 1s):
	// wait for the last trace to be in a block, then check every trace.
	all := append(append([][16]byte(nil), before...), after...)
	for _, id := range all {
		if n, _ := traceSpans(t, loopback(ps.http), id); n != spansPerTrace {
			t.Fatalf("trace %x has %d spans after the WAL was deleted, want %d", id, n, spansPerTrace)
		}
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	now := fileHashes(t, blocksDir)
	for name, sum := range stored {
		got, ok := now[name]
		if !ok {
			t.Fatalf("%s was stored before the WAL was deleted and is gone", name)
		}
		if got != sum {
			t.Fatalf("%s was stored before the WAL was deleted and was rewritten", name)
		}
	}
	if len(now) <= len(stored) {
		t.Fatalf("the second run added no block (%d files before, %d after)", len(stored), len(now))
	}
	bkt, err := filesystem.NewBucket(blocksDir)
	if err != nil {
		t.Fatal(err)
	}
	blocks := checkSpansOnce(t, bkt, all)
	t.Logf("%d blocks before the WAL was deleted, %d after the second run", blocksBefore, blocks)
}

// Two monolithic weft processes, each with its own WAL, push concurrently
// into one bucket (a local directory, then a MinIO bucket): no block of one
// replaces a block of the other, every acknowledged span of both is stored
// exactly once, and each process serves the other's traces once its
// block-list poll has seen them.
func TestTwoProcessesShareBucket(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		shared := t.TempDir()
		config := func(ps ports, data string) string {
			cfg := strings.Replace(durableConfig(ps, data), "path: "+data+"/blocks\n", "path: "+shared+"\n", 1)
			return strings.Replace(cfg, "    backend: local\n", "    backend: local\n    blocklist_poll: 500ms\n", 1)
		}
		bkt, err := filesystem.NewBucket(shared)
		if err != nil {
			t.Fatal(err)
		}
		twoProcessesShareBucket(t, config, bkt)
	})
	t.Run("s3", func(t *testing.T) {
		s3 := s3test.Start(t)
		config := func(ps ports, data string) string { return s3Config(ps, data, s3, s3.Endpoint) }
		bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendS3, S3: s3}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		twoProcessesShareBucket(t, config, bkt)
	})
}

func twoProcessesShareBucket(t *testing.T, config func(ps ports, dataDir string) string, bkt objstore.BucketReader) {
	type instance struct {
		ps  ports
		p   *proc
		ids [][16]byte
		err error
	}
	var in [2]*instance
	for i := range in {
		ps := newPorts(t)
		// The test compares the blocks the block-builders wrote with what
		// the bucket holds: the backend does not compact them here.
		cfg := writeFile(t, "weft.yaml", config(ps, t.TempDir())+noCompaction)
		in[i] = &instance{ps: ps, p: startWeft(t, nil, "-config.file="+cfg)}
	}
	for _, x := range in {
		x.p.waitReady(t, loopback(x.ps.http))
	}
	// Both push at once, across several block cuts (max_block_duration 1s).
	var wg sync.WaitGroup
	for i, x := range in {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := uint64(i)*100000 + 1
			x.ids, x.err = pushRange(t, loopback(x.ps.otlpHTTP), first, first+249, 8*time.Millisecond)
		}()
	}
	wg.Wait()
	for _, x := range in {
		if x.err != nil {
			t.Fatal(x.err)
		}
	}
	// Each serves the other's traces from the blocks, once its poll saw
	// them (its own live-store does not hold them).
	for i, x := range in {
		other := in[1-i]
		last := other.ids[len(other.ids)-1]
		waitUntil(t, 10*time.Second, func() bool {
			n, _ := traceSpans(t, loopback(x.ps.http), last)
			return n == spansPerTrace
		})
		for _, id := range other.ids {
			if n, _ := traceSpans(t, loopback(x.ps.http), id); n != spansPerTrace {
				t.Fatalf("process %d serves the other's trace %x with %d spans, want %d", i, id, n, spansPerTrace)
			}
		}
	}
	// Every span is in a block now: what each process says it uploaded
	// is what the bucket holds, so no block replaced another.
	flushed := 0.0
	for i, x := range in {
		if n := metricTotal(t, loopback(x.ps.http), "weft_block_builder_block_id_collisions_total"); n != 0 {
			t.Fatalf("process %d counted %v block ID collisions", i, n)
		}
		flushed += metricTotal(t, loopback(x.ps.http), "weft_block_builder_blocks_flushed_total")
	}
	for i, x := range in {
		if code := x.p.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("process %d: exit code %d", i, code)
		}
	}
	blocks := checkSpansOnce(t, bkt, append(append([][16]byte(nil), in[0].ids...), in[1].ids...))
	if float64(blocks) != flushed {
		t.Fatalf("the bucket holds %d blocks, the two processes uploaded %v", blocks, flushed)
	}
	t.Logf("%d blocks from two processes", blocks)
}
