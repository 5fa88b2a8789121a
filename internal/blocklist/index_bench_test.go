package blocklist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
)

// benchBlocks is the number of blocks of the poll benchmarks' tenant.
const benchBlocks = 10_000

// benchMeta is a valid meta of block i of tenant: one row group, a
// data.parquet of 16 bytes (only meta.json and the size of data.parquet
// are read by a poll).
func benchMeta(tenant string, i int) *block.Meta {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return &block.Meta{
		Format: block.FormatV1, BlockID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", tenant, i)), TenantID: tenant,
		StartTime: start, EndTime: start.Add(time.Minute), TotalTraces: 100, TotalSpans: 1000, Size: 16, BloomBytes: 16,
		RowGroups: []block.RowGroupMeta{{MinTraceID: strings.Repeat("0", 32), MaxTraceID: strings.Repeat("f", 32), Rows: 1000}},
		Source:    block.Source{Origin: "bench", Partition: 0, FirstOffset: int64(i) * 10, LastOffset: int64(i)*10 + 9},
		CreatedAt: start.Add(2 * time.Minute),
	}
}

// fillBucket writes n blocks' meta.json and data.parquet, 32 at a time.
func fillBucket(b *testing.B, bkt objstore.Bucket, tenant string, n int) {
	b.Helper()
	ctx := context.Background()
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m := benchMeta(tenant, i)
			j, _ := json.Marshal(m)
			err := bkt.Upload(ctx, m.ObjectName(block.DataName), bytes.NewReader(make([]byte, m.Size)))
			if err == nil {
				err = bkt.Upload(ctx, m.ObjectName(block.MetaName), bytes.NewReader(j))
			}
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// BenchmarkPoll measures a poll of a tenant of 10,000 blocks, over the
// filesystem bucket and over MinIO on loopback (skipped without the minio
// binary): by listing (cold: a new process reads every meta.json; warm: a
// process that knows the blocks lists the tenant only), by reading the
// tenant index (cold and warm), and the poll of the index's writer (a
// warm listing, then the index written). Besides ns/op it reports the
// bucket calls, the objects read, the keys listed (an S3 LIST request
// returns up to 1,000) and the bytes read per poll.
func BenchmarkPoll(b *testing.B) {
	b.Run("fs", func(b *testing.B) {
		bkt, err := filesystem.NewBucket(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		benchPoll(b, bkt)
	})
	b.Run("minio", func(b *testing.B) {
		if !haveMinio() {
			b.Skip("no minio binary (make tools, or " + s3test.EnvMinioBin + ")")
		}
		cfg := s3test.Start(b)
		bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendS3, S3: cfg}, prometheus.NewRegistry(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bkt.Close() })
		benchPoll(b, bkt)
	})
}

func benchPoll(b *testing.B, bkt objstore.Bucket) {
	ctx := context.Background()
	const tenant = "bench"
	fillBucket(b, bkt, tenant, benchBlocks)
	w := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	w.WriteIndexes(bkt, func() bool { return true })
	w.stampSlack = 0 // the blocks are seconds old: do not read them again
	if err := w.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	attrs, err := bkt.Attributes(ctx, IndexObject(tenant))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("index of %d blocks: %d bytes gzipped", benchBlocks, attrs.Size)

	run := func(name string, newList func(objstore.BucketReader) *List, warm bool) {
		b.Run(name, func(b *testing.B) {
			ob := newOps(bkt)
			var l *List
			if warm {
				l = newList(ob)
				if err := l.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			ob.reset()
			b.ResetTimer()
			for range b.N {
				if !warm {
					b.StopTimer()
					l = newList(ob)
					b.StartTimer()
				}
				if err := l.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := l.Count(tenant); n != benchBlocks {
				b.Fatalf("%d blocks, want %d", n, benchBlocks)
			}
			ob.mu.Lock()
			defer ob.mu.Unlock()
			calls := 0
			for _, v := range ob.calls {
				calls += v
			}
			n := float64(b.N)
			b.ReportMetric(float64(calls)/n, "calls/op")
			b.ReportMetric(float64(len(ob.gets))/n, "objects-read/op")
			b.ReportMetric(float64(ob.keys.Load())/n, "keys-listed/op")
			b.ReportMetric(float64(ob.bytes.Load())/n, "bytes-read/op")
		})
	}
	listing := func(bkt objstore.BucketReader) *List {
		l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
		l.stampSlack = 0
		return l
	}
	index := func(bkt objstore.BucketReader) *List {
		l := New(bkt, time.Hour, prometheus.NewRegistry(), nil)
		l.ReadIndexes(false, 0) // no fallback: the poll fails if it cannot use the index
		l.index.staleAfter = 24 * time.Hour
		return l
	}
	run("listing/cold", listing, false)
	run("listing/warm", listing, true)
	run("index/cold", index, false)
	run("index/warm", index, true)
	run("writer/warm", func(ob objstore.BucketReader) *List {
		l := New(ob, time.Hour, prometheus.NewRegistry(), nil)
		l.WriteIndexes(bkt, func() bool { return true })
		l.stampSlack = 0
		return l
	}, true)
}

// haveMinio reports whether s3test finds a minio binary.
func haveMinio() bool {
	if bin := os.Getenv(s3test.EnvMinioBin); bin != "" {
		_, err := os.Stat(bin)
		return err == nil
	}
	dir := os.Getenv("GOBIN")
	if dir == "" {
		if out, err := exec.Command("go", "env", "GOBIN").Output(); err == nil {
			dir = strings.TrimSpace(string(out))
		}
	}
	if dir == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			gopath = build.Default.GOPATH
		}
		dir = filepath.Join(filepath.SplitList(gopath)[0], "bin")
	}
	_, err := os.Stat(filepath.Join(dir, "minio"))
	return err == nil
}
