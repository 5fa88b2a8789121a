package blockbuilder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/readiness"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/tmpfstest"
	"github.com/weftdb/weft/pipelines"
)

// metricValue is the value of the unlabelled metric name in reg, -1 if it
// has none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1 // not registered
}

func tryPush(b *Builder, tenant string, seed uint64) (ptrace.Traces, error) {
	td := spangen.Generate(spangen.Options{Seed: seed, Traces: 20, SpansPerTrace: 5})
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	m.Metadata.Set(pipelines.MetaPartition, "0")
	return td, b.Consume(m)
}

// A full disk under the WAL refuses pushes with Unavailable, says so on
// /ready and in metrics, and does not last: once space is freed the
// builder takes pushes again by itself. Every acknowledged span is stored
// once and no refused span is stored.
func TestWALDiskFullRefusesThenRecovers(t *testing.T) {
	f := newFixture(t)
	f.cfg.WAL.Path = tmpfstest.Mount(t, 1<<20)
	f.cfg.MaxBlockDuration = 400 * time.Millisecond // cutter and WAL probe every 100ms
	reg := prometheus.NewRegistry()
	ready := &readiness.Set{}
	b := New(pipelines.Settings{Name: "block-builder", Metrics: reg, Readiness: ready}, f.cfg, f.bkt, Hooks{})
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var acked []ptrace.Traces
	seed := uint64(1)
	for range 3 {
		acked = append(acked, push(t, b, "a", seed))
		seed++
	}
	free := tmpfstest.Fill(t, f.cfg.WAL.Path)
	refused := 0
	for range 30 {
		td, err := tryPush(b, "a", seed)
		seed++
		if err == nil {
			acked = append(acked, td) // the last free bytes
			continue
		}
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "WAL") {
			t.Fatalf("push on a full disk: %v, want Unavailable naming the WAL", err)
		}
		refused++
	}
	if refused < 20 {
		t.Fatalf("only %d of 30 pushes refused on a full disk", refused)
	}
	if err := ready.Err(); err == nil || !strings.Contains(err.Error(), "block-builder WAL") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("/ready while the WAL fails: %v", err)
	}
	if metricValue(t, reg, "weft_block_builder_wal_failing") != 1 || metricValue(t, reg, "weft_block_builder_wal_write_failures_total") < 1 {
		t.Fatal("the WAL metrics do not say it fails")
	}
	free()
	// The probe makes it ready again without a push.
	deadline := time.Now().Add(10 * time.Second)
	for ready.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still not ready 10s after the space was freed: %v", ready.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if metricValue(t, reg, "weft_block_builder_wal_failing") != 0 {
		t.Fatal("weft_block_builder_wal_failing stays 1")
	}
	for range 3 {
		acked = append(acked, push(t, b, "a", seed))
		seed++
	}
	stop(t, b)
	counts, _ := stored(t, f.bkt)
	expect(t, counts, "a", acked...)
}
