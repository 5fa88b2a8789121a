// Package compaction plans the compaction of a tenant's blocks: which few
// blocks to merge into one, so that the tenant's block count stays bounded
// under steady ingest. It only plans; backend workers run the merges.
//
// Blocks are bucketed by the window (Config.Window) their end time falls
// in. In the last 24 hours (the active windows) a group is the blocks of
// one compaction level in one window, so that blocks of similar size merge
// first; older windows are grouped by window alone, lowest level first, so
// that each ends up as few blocks as the limits allow. The window that
// straddles the 24-hour boundary is left alone until it has crossed it,
// so that no group changes under a running job. A job is a run of
// MinInputBlocks to MaxInputBlocks blocks of one group, smallest first,
// within the size and trace limits; its output is one level above its
// highest input. These are Tempo's rules (its time-window block selector).
//
// Why the count stays bounded: within a window every level keeps fewer
// than MinInputBlocks blocks once compaction has caught up, and a window
// of N blocks needs about log(N)/log(MaxInputBlocks) levels; so a window
// holds at most about (MinInputBlocks-1) blocks per level, and the tenant
// about that times the windows within retention, plus the blocks written
// since the last cycle.
package compaction

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/weftdb/weft/internal/block"
)

// Block is what planning needs of a block's meta.
type Block struct {
	ID         uuid.UUID
	Level      int // 0 for blocks written by the block-builder
	Start, End time.Time
	Size       int64 // bytes of data
	Traces     int64
}

// BlockOf is what planning needs of the block m describes.
func BlockOf(m *block.Meta) Block {
	return Block{ID: m.BlockID, Level: m.CompactionLevel, Start: m.StartTime, End: m.EndTime, Size: m.Size, Traces: m.TotalTraces}
}

// Config is what the planner follows; the backend scheduler's config
// (backend_scheduler.provider.compaction) gives it, with Tempo's keys.
type Config struct {
	// Window is the width of the windows blocks are grouped by, by end
	// time (compaction_window).
	Window time.Duration
	// MinInputBlocks and MaxInputBlocks bound the blocks of one job
	// (min_input_blocks, max_input_blocks).
	MinInputBlocks, MaxInputBlocks int
	// MaxCompactionObjects bounds the traces of a job's inputs together
	// (max_compaction_objects).
	MaxCompactionObjects int64
	// MaxBlockBytes bounds the bytes of a job's inputs together
	// (max_block_bytes).
	MaxBlockBytes int64
	// MaxCompactionLevel: blocks at this level or above are not compacted
	// again; 0 is no cap (max_compaction_level).
	MaxCompactionLevel int
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		Window:               time.Hour,
		MinInputBlocks:       2,
		MaxInputBlocks:       4,
		MaxCompactionObjects: 6_000_000,
		MaxBlockBytes:        100 << 30,
	}
}

// Validate checks the config; errors name the key.
func (c Config) Validate() error {
	switch {
	case c.Window <= 0:
		return fmt.Errorf("compaction_window must be positive, got %s", c.Window)
	case c.MinInputBlocks < 2:
		return fmt.Errorf("min_input_blocks must be at least 2, got %d", c.MinInputBlocks)
	case c.MaxInputBlocks < c.MinInputBlocks:
		return fmt.Errorf("max_input_blocks (%d) must be at least min_input_blocks (%d)", c.MaxInputBlocks, c.MinInputBlocks)
	case c.MaxCompactionObjects <= 0:
		return fmt.Errorf("max_compaction_objects must be positive, got %d", c.MaxCompactionObjects)
	case c.MaxBlockBytes <= 0:
		return fmt.Errorf("max_block_bytes must be positive, got %d", c.MaxBlockBytes)
	case c.MaxCompactionLevel < 0:
		return fmt.Errorf("max_compaction_level must not be negative, got %d", c.MaxCompactionLevel)
	}
	return nil
}

// activeWindow is how far back windows are grouped by level.
const activeWindow = 24 * time.Hour

// Plan returns at most maxJobs jobs (0: no cap) for the blocks of one
// tenant at now: disjoint runs of blocks to merge, the most useful first
// (the most recent active windows, then older windows from the newest).
func Plan(blocks []Block, now time.Time, cfg Config, maxJobs int) [][]Block {
	type key struct {
		window time.Time
		level  int // -1 for an older window: every level together
	}
	boundary := now.Add(-activeWindow)
	groups := map[key][]Block{}
	for _, b := range blocks {
		if cfg.MaxCompactionLevel > 0 && b.Level >= cfg.MaxCompactionLevel {
			continue
		}
		w := b.End.Truncate(cfg.Window)
		switch {
		case !w.Add(cfg.Window).After(boundary): // wholly older than 24h
			groups[key{w, -1}] = append(groups[key{w, -1}], b)
		case !w.Before(boundary): // wholly within the last 24h
			groups[key{w, b.Level}] = append(groups[key{w, b.Level}], b)
		}
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		// Active windows first, newest first, lowest level first.
		aActive, bActive := a.level >= 0, b.level >= 0
		if aActive != bActive {
			if aActive {
				return -1
			}
			return 1
		}
		return cmp.Or(b.window.Compare(a.window), cmp.Compare(a.level, b.level))
	})
	var jobs [][]Block
	for _, k := range keys {
		g := groups[k]
		slices.SortFunc(g, func(a, b Block) int {
			return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Size, b.Size), a.End.Compare(b.End), cmp.Compare(a.ID.String(), b.ID.String()))
		})
		for len(g) >= cfg.MinInputBlocks {
			if maxJobs > 0 && len(jobs) >= maxJobs {
				return jobs
			}
			n, size, traces := 0, int64(0), int64(0)
			for n < len(g) && n < cfg.MaxInputBlocks &&
				size+g[n].Size <= cfg.MaxBlockBytes && traces+g[n].Traces <= cfg.MaxCompactionObjects {
				size += g[n].Size
				traces += g[n].Traces
				n++
			}
			if n < cfg.MinInputBlocks {
				// The smallest blocks left are already too big together:
				// so is any other run of this group.
				break
			}
			jobs = append(jobs, slices.Clone(g[:n]))
			g = g[n:]
		}
	}
	return jobs
}

// Output is the block a job's inputs make, as planning sees it: one level
// above the highest input, spanning their time ranges.
func Output(inputs []Block) Block {
	out := Block{Start: inputs[0].Start, End: inputs[0].End}
	for _, b := range inputs {
		out.Level = max(out.Level, b.Level+1)
		if b.Start.Before(out.Start) {
			out.Start = b.Start
		}
		if b.End.After(out.End) {
			out.End = b.End
		}
		out.Size += b.Size
		out.Traces += b.Traces
	}
	return out
}
