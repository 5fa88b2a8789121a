package blockbuilder

import (
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

type fixture struct {
	dir string
	bkt objstore.Bucket
	cfg Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(filepath.Join(dir, "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.WAL.Path = filepath.Join(dir, "wal")
	cfg.WAL.SegmentBytes = 64 << 10
	cfg.MaxBlockDuration = time.Hour
	return &fixture{dir: dir, bkt: bkt, cfg: cfg}
}

func (f *fixture) start(t *testing.T, hooks Hooks) *Builder {
	t.Helper()
	if err := f.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.cfg, f.bkt, hooks)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

func stop(t *testing.T, b *Builder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func push(t *testing.T, b *Builder, tenant string, seed uint64) ptrace.Traces {
	t.Helper()
	td := spangen.Generate(spangen.Options{Seed: seed, Traces: 20, SpansPerTrace: 5})
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	m.Metadata.Set(pipelines.MetaPartition, "0")
	if err := b.Consume(m); err != nil {
		t.Fatal(err)
	}
	return td
}

// stored counts every span over every block of the bucket.
func stored(t *testing.T, bkt objstore.Bucket) (map[string]int, int) {
	t.Helper()
	return blocktest.SpanCounts(t, bkt)
}

func expect(t *testing.T, counts map[string]int, tenant string, tds ...ptrace.Traces) {
	t.Helper()
	want := 0
	for _, td := range tds {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			spans := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
			for k := 0; k < spans.Len(); k++ {
				tid, sid := spans.At(k).TraceID(), spans.At(k).SpanID()
				key := tenant + "/" + hex.EncodeToString(tid[:]) + "/" + hex.EncodeToString(sid[:])
				if counts[key] != 1 {
					t.Fatalf("span %s stored %d times, want once", key, counts[key])
				}
				want++
			}
		}
	}
	n := 0
	for k, c := range counts {
		if strings.HasPrefix(k, tenant+"/") {
			n += c
		}
	}
	if n != want {
		t.Fatalf("tenant %s: %d spans stored, want %d", tenant, n, want)
	}
}

func TestShutdownUploadsEverythingPerTenant(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var metas []*block.Meta
	b := f.start(t, Hooks{OnBlock: func(m *block.Meta) { mu.Lock(); metas = append(metas, m); mu.Unlock() }})
	a1 := push(t, b, "a", 1)
	b1 := push(t, b, "b", 2)
	a2 := push(t, b, "a", 3)
	stop(t, b)
	counts, blocks := stored(t, f.bkt)
	expect(t, counts, "a", a1, a2)
	expect(t, counts, "b", b1)
	if blocks != 2 || len(metas) != 2 {
		t.Fatalf("%d blocks, %d reported, want one per tenant", blocks, len(metas))
	}
	for _, m := range metas {
		if m.BlockID != BlockID(b.log.Epoch(), m.TenantID, 0, m.Source.FirstOffset) {
			t.Fatalf("block %s is not named after its first offset %d", m.BlockID, m.Source.FirstOffset)
		}
	}
	if got := testutil.ToFloat64(b.m.blocks.WithLabelValues("a")); got != 1 {
		t.Fatalf("blocks flushed metric = %v", got)
	}
}

func TestCutBySizeAndByAge(t *testing.T) {
	f := newFixture(t)
	f.cfg.MaxBlockBytes = 64 << 10
	f.cfg.MaxBlockDuration = 300 * time.Millisecond
	got := make(chan *block.Meta, 100)
	b := f.start(t, Hooks{OnBlock: func(m *block.Meta) { got <- m }})
	defer stop(t, b)
	var tds []ptrace.Traces
	for seed := uint64(1); seed <= 10; seed++ {
		tds = append(tds, push(t, b, "t", seed))
	}
	// Size cuts happen during the pushes; the rest is cut by age.
	deadline := time.After(10 * time.Second)
	spans := int64(0)
	for spans < 10*100 {
		select {
		case m := <-got:
			spans += m.TotalSpans
		case <-deadline:
			t.Fatalf("only %d of 1000 spans uploaded", spans)
		}
	}
	counts, blocks := stored(t, f.bkt)
	expect(t, counts, "t", tds...)
	if blocks < 3 {
		t.Fatalf("%d blocks for ~10 pushes over a 64 KiB limit, want several", blocks)
	}
}

// A crash (no Shutdown) loses nothing that Consume acknowledged: the WAL is
// replayed and uploaded on the next start.
func TestReplayAfterCrash(t *testing.T) {
	f := newFixture(t)
	b := f.start(t, Hooks{})
	td1 := push(t, b, "t", 1)
	td2 := push(t, b, "t", 2)
	crash(b)
	b2 := f.start(t, Hooks{})
	stop(t, b2)
	counts, _ := stored(t, f.bkt)
	expect(t, counts, "t", td1, td2)
}

// An upload whose checkpoint was lost is redone under the same block ID:
// the block is replaced, not duplicated.
func TestLostCheckpointReplacesTheBlock(t *testing.T) {
	f := newFixture(t)
	b := f.start(t, Hooks{})
	td := push(t, b, "t", 1)
	stop(t, b)
	if err := os.Remove(filepath.Join(f.cfg.WAL.Path, checkpointName)); err != nil {
		t.Fatal(err)
	}
	b = f.start(t, Hooks{})
	stop(t, b)
	counts, blocks := stored(t, f.bkt)
	expect(t, counts, "t", td)
	if blocks != 1 {
		t.Fatalf("%d blocks after the replay, want the one block replaced", blocks)
	}
}

// gatedBucket holds uploads until released.
type gatedBucket struct {
	objstore.Bucket
	gate chan struct{}
}

func (g *gatedBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Bucket.Upload(ctx, name, r, opts...)
}

func TestBackPressureWhenUploadsFallBehind(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	f.bkt = &gatedBucket{Bucket: f.bkt, gate: gate}
	f.cfg.MaxBlockBytes = 32 << 10
	f.cfg.MaxBufferedBytes = 64 << 10
	f.cfg.BackPressureTimeout = 100 * time.Millisecond
	b := f.start(t, Hooks{})
	var err error
	for seed := uint64(1); seed < 100 && err == nil; seed++ {
		td := spangen.Generate(spangen.Options{Seed: seed, Traces: 20, SpansPerTrace: 5})
		m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
		m.Metadata.Set(pipelines.MetaTenant, "t")
		err = b.Consume(m)
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "block_builder.max_buffered_bytes") {
		t.Fatalf("err = %v, want Unavailable naming the limit", err)
	}
	close(gate) // the store catches up
	push(t, b, "t", 1000)
	stop(t, b)
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	err := c.Validate()
	for _, w := range []string{"max_block_bytes", "max_block_duration", "wal.path"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("err = %v, want it to name %s", err, w)
		}
	}
}

// crash stops b's goroutines and drops its WAL without flushing or
// uploading anything, as a killed process would.
func crash(b *Builder) {
	b.mu.Lock()
	b.stopping = true
	b.cond.Broadcast()
	b.mu.Unlock()
	close(b.done)
	b.cancel()
	b.wg.Wait()
	b.log.Abandon()
}

// Pushes in flight (written to the WAL, waiting for their fsync or for the
// records before them) count against max_buffered_bytes: many concurrent
// pushes while uploads are held must not take the buffers far past the
// limit, as they did when only buffered records were counted.
func TestBackPressureCountsPushesInFlight(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	f.bkt = &gatedBucket{Bucket: f.bkt, gate: gate}
	f.cfg.MaxBlockBytes = 256 << 10
	f.cfg.MaxBufferedBytes = 256 << 10
	f.cfg.BackPressureTimeout = 200 * time.Millisecond
	b := f.start(t, Hooks{})
	const pushes = 200
	msgs := make([]*message.Message, pushes)
	for i := range msgs {
		td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 20, SpansPerTrace: 5})
		msgs[i] = message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
		msgs[i].Metadata.Set(pipelines.MetaTenant, "t")
	}
	// What one push adds to the buffers, for the bound below.
	if err := b.Consume(msgs[0]); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	one := b.bytes
	b.mu.Unlock()

	start := make(chan struct{})
	var wg sync.WaitGroup
	var acked, refused atomic.Int64
	for _, m := range msgs[1:] {
		wg.Go(func() {
			<-start
			switch err := b.Consume(m); {
			case err == nil:
				acked.Add(1)
			case status.Code(err) == codes.Unavailable:
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	b.mu.Lock()
	buffered, reserved := b.bytes, b.reserved
	b.mu.Unlock()
	t.Logf("one push buffers %d bytes; %d pushes acknowledged, %d refused; %d bytes buffered, limit %d", one, acked.Load(), refused.Load(), buffered, f.cfg.MaxBufferedBytes)
	if reserved != 0 {
		t.Errorf("%d bytes still reserved with no push in flight", reserved)
	}
	// The last push let in may find the buffers just under the limit and
	// take them past it by a step of an Arrow buffer, which doubles its
	// capacity: at most twice the limit. Counting only the buffered
	// records, all 200 pushes went in (about 60 times the limit).
	if limit := 2 * f.cfg.MaxBufferedBytes; buffered > limit {
		t.Errorf("%d bytes buffered by concurrent pushes, over twice the limit %d", buffered, f.cfg.MaxBufferedBytes)
	}
	close(gate)
	stop(t, b)
}
