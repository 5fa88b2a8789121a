package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
)

// TestBackendAsProcesses: the write and read components in one process,
// the backend scheduler in a second and a backend worker in a third (over
// gRPC), on one bucket. The worker compacts the blocks the first process
// cuts: blocks of a higher level appear, every acknowledged span is stored
// once and served, and the scheduler's status page lists the jobs.
func TestBackendAsProcesses(t *testing.T) {
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
  maintenance_interval: 1s
  provider:
    compaction:
      min_cycle_interval: 300ms
      compaction:
        compaction_cycle: 300ms
`)
	start("worker", "backend-worker", fmt.Sprintf(`backend_worker:
  backend_scheduler_addr: 127.0.0.1:%d
  backoff: {min_period: 50ms, max_period: 1s}
`, sched.grpc))

	var ids [][16]byte
	for round := range 5 { // a block per round (max_block_duration 1s)
		first := uint64(round*1000 + 1)
		got, err := pushRange(t, loopback(front.otlpHTTP), first, first+29, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
		time.Sleep(1200 * time.Millisecond)
	}
	bkt, err := filesystem.NewBucket(shared)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitUntil(t, 30*time.Second, func() bool {
		metas, err := block.ListBlocks(ctx, bkt, "single-tenant")
		if err != nil {
			return false
		}
		compacted := false
		for _, m := range metas {
			compacted = compacted || m.CompactionLevel > 0
		}
		counts, _ := blocktest.SpanCounts(t, bkt)
		once := len(counts) == len(ids)*spansPerTrace
		for _, n := range counts {
			once = once && n == 1
		}
		return compacted && once
	})
	checkSpansOnce(t, bkt, ids)
	for _, id := range ids {
		if n, _ := traceSpans(t, loopback(front.http), id); n != spansPerTrace {
			t.Fatalf("trace %x served with %d spans, want %d", id, n, spansPerTrace)
		}
	}
	// The scheduler's process writes the tenant index, and the front
	// polls the index instead of listing the tenant: the compacted blocks
	// it serves came to it through the index.
	if n := metricTotal(t, loopback(sched.http), "weft_blocklist_tenant_index_writes_total"); n == 0 {
		t.Fatal("the scheduler wrote no tenant index")
	}
	if n := metricTotal(t, loopback(front.http), "weft_blocklist_tenant_index_reads_total"); n == 0 {
		t.Fatal("the front never polled the tenant index")
	}
	resp, err := http.Get("http://" + loopback(sched.http) + "/status/backendscheduler")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(status), "backend scheduler: running") || !strings.Contains(string(status), "succeeded") {
		t.Fatalf("scheduler status page:\n%s", status)
	}
}

// A backend worker without the scheduler in its process needs the
// scheduler's address: it does not start, and says which key to set.
func TestBackendWorkerNeedsSchedulerAddr(t *testing.T) {
	t.Parallel()
	r := runWeft(t, nil, "-target=backend-worker")
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, "backend_worker.backend_scheduler_addr")
}

// startOnShared starts a weft process running target, on free loopback
// ports, with its blocks in the local bucket at shared (polled every poll)
// and extra appended to its config, and waits until it is ready. It
// returns the ports and the config file.
func startOnShared(t *testing.T, shared string, poll time.Duration, name, target, extra string) (ports, string) {
	t.Helper()
	ps := newPorts(t)
	data := t.TempDir()
	cfg := durableConfig(ps, data)
	cfg = strings.Replace(cfg, "path: "+data+"/blocks\n", "path: "+shared+"\n", 1)
	cfg = strings.Replace(cfg, "    backend: local\n", "    backend: local\n    blocklist_poll: "+poll.String()+"\n", 1)
	file := writeFile(t, name+".yaml", cfg+extra)
	p := startWeft(t, nil, "-config.file="+file, "-target="+target)
	p.waitReady(t, loopback(ps.http))
	return ps, file
}
