package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
)

// compactStats are what compactAll did.
type compactStats struct {
	rounds, jobs, inputs  int
	spansRead, duplicates int64
	took                  time.Duration
}

// compactAll compacts the tenant's blocks as the backend would, one job at
// a time: the planner's jobs over the blocks listed now (its defaults,
// every job of a round), each merged by block.Compact and its inputs then
// marked compacted, until the planner finds nothing left to do.
func compactAll(ctx context.Context, bkt objstore.Bucket, tenant string) (compactStats, error) {
	var st compactStats
	const maxRounds = 50
	for st.rounds = 0; st.rounds < maxRounds; st.rounds++ {
		list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
		if err := list.Poll(ctx); err != nil {
			return st, err
		}
		metas := map[string]*block.Meta{}
		var blocks []compaction.Block
		for _, e := range list.Blocks(tenant, time.Time{}, time.Time{}) {
			metas[e.Meta.BlockID.String()] = e.Meta
			blocks = append(blocks, compaction.BlockOf(e.Meta))
		}
		jobs := compaction.Plan(blocks, time.Now(), compaction.DefaultConfig(), 0)
		if len(jobs) == 0 {
			return st, nil
		}
		for _, job := range jobs {
			inputs := make([]*block.Meta, len(job))
			for i, b := range job {
				inputs[i] = metas[b.ID.String()]
			}
			t0 := time.Now()
			res, err := block.Compact(ctx, bkt, inputs, block.CompactOptions{SpoolDir: os.TempDir()})
			if err != nil {
				return st, fmt.Errorf("cannot compact: %w", err)
			}
			st.took += time.Since(t0)
			for _, m := range inputs {
				if err := block.MarkCompacted(ctx, bkt, m, time.Now()); err != nil {
					return st, err
				}
			}
			st.jobs++
			st.inputs += len(inputs)
			st.spansRead += res.SpansRead
			st.duplicates += res.Duplicates
		}
		fmt.Fprintf(os.Stderr, "compaction round %d: %d jobs\n", st.rounds+1, len(jobs))
	}
	return st, fmt.Errorf("cannot compact: jobs still planned after %d rounds", maxRounds)
}

// printComparison prints the figures of before and after side by side.
func printComparison(before, after *figures) {
	fmt.Printf("\n## Before and after compaction\n\n")
	fmt.Printf("blocks %d → %d; bytes per span (data + bloom) %.1f → %.1f\n\n", before.blocks, after.blocks, before.bytesPerSpan, after.bytesPerSpan)
	fmt.Println("| measurement | p50 before | p50 after | ratio | p95 before | p95 after | ratio |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|")
	row := func(name string, b, a latencies) {
		if len(b) == 0 || len(a) == 0 {
			return
		}
		ratio := func(x, y time.Duration) string { return fmt.Sprintf("%.2f×", float64(x)/float64(max(y, 1))) }
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", name, ms(b.at(0.5)), ms(a.at(0.5)), ratio(b.at(0.5), a.at(0.5)),
			ms(b.at(0.95)), ms(a.at(0.95)), ratio(b.at(0.95), a.at(0.95)))
	}
	for _, k := range []string{"present", "absent"} {
		row("trace by ID, "+k, before.lookups[k], after.lookups[k])
	}
	for _, c := range searchCases {
		row("search `"+c.query+"`", before.searches[c.name], after.searches[c.name])
	}
	fmt.Println("\nratio: before / after (above 1: faster after compaction).")
}
