package compaction

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func blk(level int, end time.Time, size int64) Block {
	return Block{ID: uuid.New(), Level: level, Start: end.Add(-10 * time.Second), End: end, Size: size, Traces: size / 1000}
}

// simulate writes a block every blockEvery for d, plans every cycle and
// runs the jobs at once, and returns the block count after each cycle.
func simulate(t *testing.T, cfg Config, d, blockEvery, cycle time.Duration, compact bool) []int {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var blocks []Block
	var counts []int
	next := t0
	for now := t0; now.Before(t0.Add(d)); now = now.Add(cycle) {
		for ; !next.After(now); next = next.Add(blockEvery) {
			blocks = append(blocks, blk(0, next, 1<<20+rng.Int64N(1<<20)))
		}
		if compact {
			jobs := Plan(blocks, now, cfg, 0)
			done := map[uuid.UUID]bool{}
			for _, j := range jobs {
				if len(j) < cfg.MinInputBlocks || len(j) > cfg.MaxInputBlocks {
					t.Fatalf("job of %d blocks", len(j))
				}
				for _, b := range j {
					if done[b.ID] {
						t.Fatalf("block %s in two jobs", b.ID)
					}
					done[b.ID] = true
				}
				out := Output(j)
				out.ID = uuid.New()
				blocks = append(blocks, out)
			}
			kept := blocks[:0]
			for _, b := range blocks {
				if !done[b.ID] {
					kept = append(kept, b)
				}
			}
			blocks = kept
		}
		counts = append(counts, len(blocks))
	}
	return counts
}

// TestPlanBoundsBlocks: blocks every 10 s for 30 minutes, compacted every
// 30 s, stay at a handful; without compaction they grow to 180.
func TestPlanBoundsBlocks(t *testing.T) {
	cfg := DefaultConfig()
	with := simulate(t, cfg, 30*time.Minute, 10*time.Second, 30*time.Second, true)
	without := simulate(t, cfg, 30*time.Minute, 10*time.Second, 30*time.Second, false)
	if n := without[len(without)-1]; n < 170 {
		t.Fatalf("without compaction %d blocks after 30 minutes, want about 180", n)
	}
	// One window (1h) holds at most MinInputBlocks-1 = 1 block per level
	// once caught up, levels ≤ log4(180)+1 ≈ 5, plus the 3 blocks of the
	// last cycle.
	for i, n := range with {
		if n > 8 {
			t.Fatalf("cycle %d: %d blocks with compaction, want at most 8", i, n)
		}
	}
}

// TestPlanBoundsBlocksOverDays: a block a minute for 3 days stays within
// a few blocks per window, active or older.
func TestPlanBoundsBlocksOverDays(t *testing.T) {
	cfg := DefaultConfig()
	counts := simulate(t, cfg, 72*time.Hour, time.Minute, 5*time.Minute, true)
	// 72 windows of 60 blocks: at most about log4(60)+1 = 4 blocks each,
	// fewer once older than 24h (grouped across levels).
	if n := counts[len(counts)-1]; n > 72*4 {
		t.Fatalf("%d blocks after 3 days, want at most %d", n, 72*4)
	}
	if n := counts[len(counts)-1]; n > 150 {
		t.Fatalf("%d blocks after 3 days: older windows should be down to about 1 block each (72) plus the active day", n)
	}
}

func TestPlanLimits(t *testing.T) {
	cfg := DefaultConfig()
	now := t0.Add(time.Hour)
	var blocks []Block
	for i := range 10 {
		blocks = append(blocks, blk(0, t0.Add(time.Duration(i)*time.Minute), 40))
	}
	// Sizes and traces: 40 bytes each; a job may hold 100 bytes.
	cfg.MaxBlockBytes = 100
	for _, j := range Plan(blocks, now, cfg, 0) {
		if len(j) != 2 {
			t.Fatalf("job of %d blocks of 40 bytes under max_block_bytes 100", len(j))
		}
	}
	cfg = DefaultConfig()
	if jobs := Plan(blocks, now, cfg, 1); len(jobs) != 1 || len(jobs[0]) != 4 {
		t.Fatalf("maxJobs 1: %d jobs", len(jobs))
	}
	// Levels at the cap are left alone.
	cfg.MaxCompactionLevel = 1
	high := []Block{blk(1, t0, 10), blk(1, t0, 10), blk(1, t0, 10)}
	if jobs := Plan(high, now, cfg, 0); len(jobs) != 0 {
		t.Fatalf("blocks at max_compaction_level planned: %v", jobs)
	}
	// Different levels of an active window are not mixed.
	mixed := []Block{blk(0, t0, 10), blk(1, t0, 10), blk(2, t0, 10)}
	if jobs := Plan(mixed, now, DefaultConfig(), 0); len(jobs) != 0 {
		t.Fatalf("one block per level planned: %v", jobs)
	}
	// An older window mixes levels.
	old := t0.Add(-48 * time.Hour)
	mixedOld := []Block{blk(0, old, 10), blk(1, old, 10), blk(2, old, 10)}
	if jobs := Plan(mixedOld, now, DefaultConfig(), 0); len(jobs) != 1 || len(jobs[0]) != 3 {
		t.Fatalf("older window: %v", jobs)
	}
	// The window straddling the 24h boundary is left alone.
	at := now.Add(30 * time.Minute)                        // 01:30: the boundary is 01:30 a day before
	edge := at.Add(-24 * time.Hour).Add(-10 * time.Minute) // 01:20, in the window [01:00, 02:00)
	if jobs := Plan([]Block{blk(0, edge, 10), blk(0, edge, 10)}, at, DefaultConfig(), 0); len(jobs) != 0 {
		t.Fatalf("straddling window planned: %v", jobs)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.MaxInputBlocks = 1
	if err := c.Validate(); err == nil {
		t.Fatal("max_input_blocks 1 accepted")
	}
}
