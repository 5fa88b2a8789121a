package blockbuilder

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// BenchmarkConsume: one message of 2,000 spans into the block-builder with
// its write-ahead log (append, fsync, Arrow buffer), blocks cut at 64 MiB
// and uploaded to a local directory in the background.
func BenchmarkConsume(b *testing.B) {
	dir := b.TempDir()
	bkt, err := filesystem.NewBucket(filepath.Join(dir, "blocks"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.WAL.Path = filepath.Join(dir, "wal")
	cfg.MaxBlockDuration = time.Hour
	cfg.MaxBufferedBytes = 8 << 30
	bld := New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, cfg, bkt, Hooks{})
	if err := bld.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = bld.Shutdown(ctx)
	}()
	const n = 32
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = spangen.Marshal(spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 200, SpansPerTrace: 10, Services: 5}))
	}
	b.SetBytes(int64(len(payloads[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := message.NewMessage(watermill.NewUUID(), payloads[i%n])
		m.Metadata.Set(pipelines.MetaTenant, "t")
		m.Metadata.Set(pipelines.MetaPartition, "0")
		if err := bld.Consume(m); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/span")
}
