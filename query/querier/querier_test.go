package querier

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

type liveFinder map[[16]byte][]byte

func (l liveFinder) FindTraceByID(_ context.Context, _ string, id [16]byte, _, _ int64) ([]byte, error) {
	return l[id], nil
}

func trace(tid pcommon.TraceID, start time.Time, ids ...byte) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	for _, id := range ids {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{id})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
	}
	return td
}

func writeBlock(t *testing.T, bkt *filesystem.Bucket, tenant string, tds ...ptrace.Traces) *block.Meta {
	t.Helper()
	buf := block.NewBuffer(nil)
	defer buf.Release()
	for _, td := range tds {
		var b otlpwire.Batch
		if err := b.Parse(spangen.Marshal(td)); err != nil {
			t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := block.Write(context.Background(), bkt, tenant, uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func spanIDs(t *testing.T, data []byte) map[byte]bool {
	t.Helper()
	var b otlpwire.Batch
	if err := b.Parse(data); err != nil {
		t.Fatal(err)
	}
	out := map[byte]bool{}
	for _, r := range b.Resources {
		for _, s := range r.Scopes {
			for _, sp := range s.Spans {
				if out[sp.SpanID[0]] {
					t.Fatalf("span %d returned twice", sp.SpanID[0])
				}
				out[sp.SpanID[0]] = true
			}
		}
	}
	return out
}

// A trace split over the live-store and two blocks comes back whole, once
// per span; start/end leave out blocks outside the range; the block list
// sees blocks written by someone else only after a poll.
func TestTraceAcrossLiveStoreAndBlocks(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tid := pcommon.TraceID{0xab}
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recent := old.Add(2 * time.Hour)
	writeBlock(t, bkt, "t", trace(tid, old, 1, 2))
	writeBlock(t, bkt, "t", trace(tid, recent, 2, 3))
	writeBlock(t, bkt, "other", trace(tid, recent, 9))
	live := liveFinder{tid: spangen.Marshal(trace(tid, recent, 3, 4))}

	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	q := New(Config{Concurrency: 2}, live, list, bkt, prometheus.NewRegistry())
	ctx := context.Background()

	data, err := q.FindTraceByID(ctx, "t", tid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := spanIDs(t, data); len(got) != 2 || !got[3] || !got[4] {
		t.Fatalf("before a poll only the live-store answers: %v", got)
	}
	if err := list.Start(ctx); err != nil { // first poll
		t.Fatal(err)
	}
	defer list.Stop()
	data, err = q.FindTraceByID(ctx, "t", tid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := spanIDs(t, data); len(got) != 4 || got[9] {
		t.Fatalf("merged trace has spans %v, want 1..4 and no other tenant's", got)
	}
	// Only the recent block overlaps the range.
	data, err = q.FindTraceByID(ctx, "t", tid, recent.Add(-time.Minute).Unix(), recent.Add(time.Minute).Unix())
	if err != nil {
		t.Fatal(err)
	}
	if got := spanIDs(t, data); got[1] || !got[2] {
		t.Fatalf("range query read the old block: %v", got)
	}
	if list.Count("t") != 2 || list.Count("other") != 1 {
		t.Fatalf("block list: t=%d other=%d", list.Count("t"), list.Count("other"))
	}
	// A block added in-process is visible at once.
	list.Add(writeBlock(t, bkt, "t", trace(tid, recent, 5)))
	data, _ = q.FindTraceByID(ctx, "t", tid, 0, 0)
	if got := spanIDs(t, data); !got[5] {
		t.Fatalf("block added with Add not read: %v", got)
	}
	if none, err := q.FindTraceByID(ctx, "t", pcommon.TraceID{0xcd}, 0, 0); err != nil || none != nil {
		t.Fatalf("absent trace: %v %v", none, err)
	}
}
