package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
)

// TestRedactAsProcesses: the scheduler and a worker as processes of their
// own, and `weft redact` run as a command against the scheduler's gRPC
// address: once it reports the request done, the blocks no longer hold
// the trace, and hold every other acknowledged span once.
func TestRedactAsProcesses(t *testing.T) {
	t.Parallel()
	shared := t.TempDir()
	start := func(name, target, extra string) ports {
		ps, _ := startOnShared(t, shared, 300*time.Millisecond, name, target, extra)
		return ps
	}
	front := start("front", "distributor,live-store,block-builder,metrics-generator,querier,query-frontend", "")
	sched := start("scheduler", "backend-scheduler", `backend_scheduler:
  job_lease: 3s
  job_timeout: 200ms
  provider:
    redaction:
      poll_interval: 100ms
      rescan_delay: 300ms
`)
	start("worker", "backend-worker", fmt.Sprintf(`backend_worker:
  backend_scheduler_addr: 127.0.0.1:%d
  backoff: {min_period: 50ms, max_period: 1s}
`, sched.grpc))

	ids, err := pushRange(t, loopback(front.otlpHTTP), 1, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	bkt, err := filesystem.NewBucket(shared)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, func() bool {
		counts, _ := blocktest.SpanCounts(t, bkt)
		return len(counts) == len(ids)*spansPerTrace
	})
	victim := ids[7]
	// The scheduler takes its lock a few seconds after it started:
	// weft redact fails until then (Unavailable).
	var r result
	waitUntil(t, 30*time.Second, func() bool {
		r = runWeft(t, nil, "redact", "-trace-id", hex.EncodeToString(victim[:]), "-follow", "-poll", "100ms", "-timeout", "15s", loopback(sched.grpc))
		return r.code == 0 || !strings.Contains(r.stderr, "not the one running")
	})
	if r.code != 0 || !strings.Contains(r.stdout, "removed 1 traces (4 spans)") {
		t.Fatalf("weft redact: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	counts, _ := blocktest.SpanCounts(t, bkt)
	if len(counts) != (len(ids)-1)*spansPerTrace {
		t.Fatalf("the blocks hold %d spans, want %d", len(counts), (len(ids)-1)*spansPerTrace)
	}
	for key, n := range counts {
		if n != 1 {
			t.Fatalf("span %s stored %d times", key, n)
		}
		if strings.Contains(key, hex.EncodeToString(victim[:])) {
			t.Fatalf("span %s of the redacted trace is still in a block", key)
		}
	}
	metas, err := block.ListBlocks(context.Background(), bkt, "single-tenant")
	if err != nil {
		t.Fatal(err)
	}
	redacted := 0
	for _, m := range metas {
		if m.Redaction != nil {
			redacted++
		}
	}
	if redacted == 0 {
		t.Fatal("no block was rewritten")
	}
}
