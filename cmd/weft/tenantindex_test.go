package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
)

// A process that only queries (querier and query-frontend, no live-store)
// sees the blocks another process writes through the tenant index that a
// third process, the backend scheduler, writes: every acknowledged span is
// served by it within two block-list polls of its block's upload, and
// `weft blocks list` shows the blocks and the index.
func TestQuerierReadsTenantIndex(t *testing.T) {
	t.Parallel()
	const poll = 500 * time.Millisecond
	shared := t.TempDir()
	var schedCfg string
	start := func(name, target string) ports {
		ps, cfg := startOnShared(t, shared, poll, name, target, noCompaction)
		if name == "scheduler" {
			schedCfg = cfg
		}
		return ps
	}
	front := start("front", "distributor,live-store,block-builder,metrics-generator")
	sched := start("scheduler", "backend-scheduler")
	reader := start("reader", "querier,query-frontend")

	bkt, err := filesystem.NewBucket(shared)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	inBlocks := func(id [16]byte) bool {
		metas, err := block.ListBlocks(ctx, bkt, "single-tenant")
		if err != nil {
			return false
		}
		for _, m := range metas {
			r, err := block.Open(ctx, bkt, m)
			if err != nil {
				continue
			}
			data, err := r.FindTraceByID(ctx, id)
			_ = r.Close()
			if err == nil && len(data) > 0 {
				return true
			}
		}
		return false
	}
	var ids [][16]byte
	var worst time.Duration
	for round := range 3 { // a block per round (max_block_duration 1s)
		first := uint64(round*1000 + 1)
		got, err := pushRange(t, loopback(front.otlpHTTP), first, first+19, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
		last := got[len(got)-1]
		waitUntil(t, 20*time.Second, func() bool { return inBlocks(last) })
		uploaded := time.Now()
		waitUntil(t, 20*time.Second, func() bool { n, _ := traceSpans(t, loopback(reader.http), last); return n == spansPerTrace })
		lag := time.Since(uploaded)
		worst = max(worst, lag)
		t.Logf("round %d: the reader served the block's last trace %s after its upload was seen", round, lag.Round(time.Millisecond))
	}
	// Two polls and their durations; the bound is loose for a loaded
	// machine, the figure is logged.
	if worst > 10*time.Second {
		t.Fatalf("the reader saw a block %s after its upload; two polls are %s", worst, 2*poll)
	}
	for _, id := range ids {
		if n, _ := traceSpans(t, loopback(reader.http), id); n != spansPerTrace {
			t.Fatalf("the reader serves trace %x with %d spans, want %d", id, n, spansPerTrace)
		}
	}
	if n := metricTotal(t, loopback(sched.http), "weft_blocklist_tenant_index_writes_total"); n == 0 {
		t.Fatal("the scheduler wrote no tenant index")
	}
	if n := metricTotal(t, loopback(reader.http), "weft_blocklist_tenant_index_reads_total"); n == 0 {
		t.Fatal("the reader never polled the tenant index")
	}
	t.Logf("reader: %v index reads, %v fallbacks to listing (missing before the first index, or stale under load)",
		metricTotal(t, loopback(reader.http), "weft_blocklist_tenant_index_reads_total"),
		metricTotal(t, loopback(reader.http), "weft_blocklist_tenant_index_fallbacks_total"))

	// The operators' CLI reads the same bucket through the scheduler's config.
	res := runWeft(t, nil, "blocks", "list", "-config.file="+schedCfg, "-tenant", "single-tenant")
	if res.code != 0 {
		t.Fatalf("weft blocks list: exit %d\n%s", res.code, res.stderr)
	}
	metas, err := block.ListBlocks(ctx, bkt, "single-tenant")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if !strings.Contains(res.stdout, m.BlockID.String()) {
			t.Fatalf("weft blocks list lacks block %s:\n%s", m.BlockID, res.stdout)
		}
	}
	if !strings.Contains(res.stdout, "tenant index: created") {
		t.Fatalf("weft blocks list does not describe %s:\n%s", blocklist.IndexObject("single-tenant"), res.stdout)
	}
	res = runWeft(t, nil, "blocks", "show", "-config.file="+schedCfg, "-tenant", "single-tenant", metas[0].BlockID.String())
	if res.code != 0 || !strings.Contains(res.stdout, "row groups (") || !strings.Contains(res.stdout, block.DataName) {
		t.Fatalf("weft blocks show: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res = runWeft(t, nil, "blocks"); res.code != 1 || !strings.Contains(res.stderr, "usage: weft blocks") {
		t.Fatalf("weft blocks without a command: exit %d\n%s", res.code, res.stderr)
	}
}
