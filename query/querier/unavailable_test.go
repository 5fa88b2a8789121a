package querier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/spangen"
)

// TestNotFoundWhileBlocksUnknown is issue 12 item 9: before the block list
// has been polled, a trace found nowhere is Unavailable (503), not "not
// found": the blocks may hold it. A trace in the live-store is returned.
func TestNotFoundWhileBlocksUnknown(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inLive := pcommon.TraceID{0xab}
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inBlock := pcommon.TraceID{0xcd}
	writeBlock(t, bkt, "t", trace(inBlock, old, 1, 2))
	live := liveFinder{inLive: spangen.Marshal(trace(inLive, old, 3))}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	q := New(Config{Concurrency: 2}, live, list, bkt, prometheus.NewRegistry())
	ctx := context.Background()

	_, err = q.FindTraceByID(ctx, "t", inBlock, 0, 0)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "the blocks cannot be searched") {
		t.Fatalf("before a poll: %v, want Unavailable", err)
	}
	if data, err := q.FindTraceByID(ctx, "t", inLive, 0, 0); err != nil || len(spanIDs(t, data)) != 1 {
		t.Fatalf("live trace before a poll: %v", err)
	}
	if err := list.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if data, err := q.FindTraceByID(ctx, "t", inBlock, 0, 0); err != nil || len(spanIDs(t, data)) != 2 {
		t.Fatalf("after a poll: %v", err)
	}
	if data, err := q.FindTraceByID(ctx, "t", pcommon.TraceID{0xef}, 0, 0); err != nil || data != nil {
		t.Fatalf("absent trace after a poll: %v, %v; want not found", data, err)
	}
}
