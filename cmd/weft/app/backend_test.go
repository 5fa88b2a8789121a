package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/tenant"
)

// fastBackend makes blocks every 300 ms and the backend compact them at
// once: a compaction cycle of 200 ms, the block list polled as often.
func fastBackend(c *config.Config) {
	c.BlockBuilder.MaxBlockDuration = 300 * time.Millisecond
	c.Storage.Trace.BlocklistPoll = 200 * time.Millisecond
	pc := &c.BackendScheduler.Provider.Compaction
	pc.Compaction.CompactionCycle, pc.MinCycleInterval = 200*time.Millisecond, 200*time.Millisecond
	c.BackendScheduler.MaintenanceInterval = time.Second
	c.BackendScheduler.JobTimeout = 100 * time.Millisecond
	c.BackendWorker.Backoff.MinPeriod = 10 * time.Millisecond
}

// spansInBlocks counts, per trace, the spans the block list's blocks hold.
func spansInBlocks(t *testing.T, a *App, ids []trace.TraceID) map[trace.TraceID]int {
	t.Helper()
	out := map[trace.TraceID]int{}
	ctx := context.Background()
	for _, e := range a.blocks.Blocks(tenant.Single, time.Time{}, time.Time{}) {
		r, err := e.Reader(ctx, a.bucket)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			data, err := r.FindTraceByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var td tracepb.TracesData
			if err := proto.Unmarshal(data, &td); err != nil {
				t.Fatal(err)
			}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					out[id] += len(ss.Spans)
				}
			}
		}
	}
	return out
}

// TestCompactionInProcess: monolithic weft compacts the blocks it cuts:
// the block count falls, blocks of a higher level appear, the inputs are
// let go, and every span is in the listed blocks exactly once.
func TestCompactionInProcess(t *testing.T) {
	a := startWeft(t, fastBackend)
	var sent []tracetest.SpanStub
	for round := range 6 {
		exp, _ := exporters(t, a) // sendTraces shuts its exporter down
		sent = append(sent, sendTraces(t, exp, fmt.Sprintf("round-%d", round), 5)...)
		time.Sleep(400 * time.Millisecond) // past max_block_duration: a block per round
	}
	want := map[trace.TraceID]int{}
	for _, s := range sent {
		want[s.SpanContext.TraceID()]++
	}
	var ids []trace.TraceID
	for id := range want {
		ids = append(ids, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		blocks := a.blocks.Blocks(tenant.Single, time.Time{}, time.Time{})
		level := 0
		for _, e := range blocks {
			level = max(level, e.Meta.CompactionLevel)
		}
		got := spansInBlocks(t, a, ids)
		whole := len(got) == len(want)
		for id, n := range want {
			whole = whole && got[id] == n
		}
		if level >= 1 && len(blocks) <= 2 && whole {
			break
		}
		for id, n := range got {
			if n > want[id] {
				t.Fatalf("trace %s: %d spans in the listed blocks, %d sent: a span is counted twice", id, n, want[id])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d blocks, highest level %d, traces whole in blocks: %v", len(blocks), level, whole)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The inputs were let go, and the status page and the metrics say so.
	base := "http://" + a.HTTPAddr()
	status := string(get(t, base+"/status/backendscheduler", "", http.StatusOK))
	if !strings.Contains(status, "backend scheduler: running") || !strings.Contains(status, "compaction") || !strings.Contains(status, "succeeded") {
		t.Fatalf("status page:\n%s", status)
	}
	metrics := string(get(t, base+"/metrics", "", http.StatusOK))
	for _, m := range []string{`tempodb_compaction_blocks_total{level="1",tenant="single-tenant"}`, `tempo_backend_scheduler_jobs_completed_total{job_type="compaction",tenant="single-tenant"}`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	marks := 0
	if err := a.bucket.Iter(context.Background(), tenant.Single+"/", func(dir string) error {
		return a.bucket.Iter(context.Background(), dir, func(name string) error {
			if strings.HasSuffix(name, "/"+block.CompactedName) {
				marks++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if marks < 2 {
		t.Fatalf("%d blocks marked %s, want the inputs of a compaction at least", marks, block.CompactedName)
	}
}
