package search

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// compactedEnv returns an env whose only block is the compaction of
// several blocks of overlapping time ranges, in small row groups (every
// row group spans the whole time range, as in a compacted block), cut
// into several jobs. Pushes of the same start but different seeds give
// traces starting at the same nanosecond: most_recent breaks those ties
// by trace ID.
func compactedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	var inputs []*block.Meta
	for i := range 6 {
		buf := block.NewBuffer(nil)
		td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 150, SpansPerTrace: 6, Services: 8,
			Start: base.Add(time.Duration(i%3) * 7 * time.Second)})
		var b otlpwire.Batch
		if err := b.Parse(spangen.Marshal(td)); err != nil {
			t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			t.Fatal(err)
		}
		meta, err := block.Write(ctx, e.bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{})
		buf.Release()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, meta)
	}
	res, err := block.Compact(ctx, e.bkt, inputs, block.CompactOptions{
		WriteOptions: block.WriteOptions{RowGroupBytes: 24 << 10, PageBytes: 4 << 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Meta.RowGroups); n < 8 {
		t.Fatalf("compacted block has %d row groups, want several", n)
	}
	e.list.Add(res.Meta)
	e.s.TargetBytesPerJob = res.Meta.Size / 3
	return e
}

// most_recent returns the limit most recent matching traces, exactly those
// of a ranking of every matching trace (a search with the largest limit,
// which reads every candidate), ties by trace ID, over a compacted block,
// while reading the spans of fewer traces.
func TestMostRecentCompacted(t *testing.T) {
	e := compactedEnv(t)
	if jobs := e.s.Plan(Request{}, "t"); len(jobs) < 3 {
		t.Fatalf("%d jobs, want the block cut into several", len(jobs))
	}
	for _, q := range []string{
		`{ resource.service.name = "service-3" }`,
		`{ status = error }`,
		`{ span.http.response.status_code >= 500 && duration > 100ms }`,
		`{ span.db.system = "postgresql" } >> { status = error }`,
		`{ }`,
		`{ resource.service.name = "absent" }`,
	} {
		all := e.search(Request{Query: q, Limit: MaxLimit})
		want := slices.Clone(all.Traces)
		sortTraces(want)
		for _, limit := range []int{1, 3, 20, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", q, limit), func(t *testing.T) {
				got := e.search(Request{Query: q + ` with (most_recent=true)`, Limit: limit})
				w := want[:min(limit, len(want))]
				if len(got.Traces) != len(w) {
					t.Fatalf("%d traces, want %d", len(got.Traces), len(w))
				}
				for i := range w {
					if got.Traces[i].TraceID != w[i].TraceID || got.Traces[i].StartTimeUnixNano != w[i].StartTimeUnixNano {
						t.Fatalf("trace %d: %s at %d, want %s at %d", i, got.Traces[i].TraceID, got.Traces[i].StartTimeUnixNano,
							w[i].TraceID, w[i].StartTimeUnixNano)
					}
				}
				if len(want) > 8*limit && got.Metrics.InspectedTraces*2 > all.Metrics.InspectedTraces {
					t.Fatalf("inspected %d traces, the whole ranking %d: most_recent should read the spans of fewer",
						got.Metrics.InspectedTraces, all.Metrics.InspectedTraces)
				}
			})
		}
		// There are ties to break.
		if q == `{ }` {
			starts := map[uint64]int{}
			for _, tr := range want[:100] {
				starts[tr.StartTimeUnixNano]++
			}
			if len(starts) == 100 {
				t.Fatalf("no two of the 100 most recent traces start at once: the ties are not tested")
			}
		}
	}
}
