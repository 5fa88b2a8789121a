// Package jobs holds the jobs a backend worker runs: compaction (merge a
// few blocks into one, then let the inputs go), retention, and redaction
// (find the traces a query names in a block; rewrite a block without
// some traces, then let the input go). Each is safe
// to run again on the same job, after a crash at any point or on another
// worker.
package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/backend/retention"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/backend/worker"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/metrics"
)

// Limits are the tenant overrides the jobs apply.
type Limits interface {
	// BlockRetention is the tenant's compaction.block_retention, 0 when
	// not set (the worker's backend_worker.compaction.block_retention
	// applies).
	BlockRetention(tenant string) time.Duration
}

// Runners returns the runners of a worker writing to bkt. onBlock, when
// not nil, is told of each block a compaction wrote (the block list of the
// worker's process takes it at once, instead of at its next poll).
func Runners(bkt objstore.Bucket, cfg worker.Config, limits Limits, opts block.CompactOptions, onBlock func(*block.Meta), reg prometheus.Registerer) map[scheduler.JobType]worker.Runner {
	c := &compactor{bkt: bkt, opts: opts, clock: time.Now, onBlock: onBlock,
		blocks: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempodb_compaction_blocks_total",
			Help: "Blocks merged by compaction jobs (their inputs), by tenant and output level.",
		}, []string{"tenant", "level"})),
		bytes: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempodb_compaction_bytes_written_total",
			Help: "Bytes of data written by compaction jobs, by tenant and output level.",
		}, []string{"tenant", "level"})),
		duplicates: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_compaction_duplicate_spans_total",
			Help: "Spans compaction left out as repeats of a span of the same trace and span ID (a record delivered twice, a replay), by tenant.",
		}, []string{"tenant"})),
	}
	rd := &redactor{bkt: bkt, opts: opts, onBlock: onBlock, clock: time.Now,
		spans: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_redaction_spans_removed_total",
			Help: "Spans redaction jobs removed from blocks, by tenant.",
		}, []string{"tenant"})),
		blocks: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_redaction_blocks_rewritten_total",
			Help: "Blocks redaction jobs rewrote without some traces (or let go, when nothing else was left), by tenant.",
		}, []string{"tenant"})),
	}
	r := &retainer{bkt: bkt, cfg: cfg.Compaction, limits: limits, clock: time.Now, m: retention.NewMetrics(reg)}
	return map[scheduler.JobType]worker.Runner{
		scheduler.JobCompaction: c.run,
		scheduler.JobRetention:  r.run,
		scheduler.JobRedaction:  rd.run,
	}
}

type compactor struct {
	bkt        objstore.Bucket
	opts       block.CompactOptions
	clock      func() time.Time
	onBlock    func(*block.Meta)
	blocks     *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	duplicates *prometheus.CounterVec
}

// run merges the job's blocks into one and lets the inputs go. On a retry
// after the output was written, inputs already let go are passed over.
func (c *compactor) run(ctx context.Context, j *scheduler.Job) error {
	out := block.CompactedID(j.Tenant, j.Blocks)
	var inputs []*block.Meta
	var gone int
	for _, id := range j.Blocks {
		m, err := block.ReadMeta(ctx, c.bkt, j.Tenant, id)
		switch {
		case err == nil:
			inputs = append(inputs, m)
		case c.bkt.IsObjNotFoundErr(err):
			gone++
		default:
			return fmt.Errorf("cannot read block %s: %w", id, err)
		}
	}
	var meta *block.Meta
	if gone > 0 {
		// Inputs were let go: by this job before (its output is there), or
		// by retention (then the job is moot).
		m, err := block.ReadMeta(ctx, c.bkt, j.Tenant, out)
		switch {
		case err == nil:
			meta = m
		case !c.bkt.IsObjNotFoundErr(err):
			return fmt.Errorf("cannot read the output %s: %w", out, err)
		default:
			// The output is not listed. Either this job wrote it and it has
			// been let go since (compacted into another block, or past
			// retention: block.MarkCompacted then let go of the inputs it
			// still hid), or every input was let go by retention: nothing
			// of the job is left to do.
			mark, err := block.ReadCompactedMark(ctx, c.bkt, j.Tenant, out)
			if err != nil {
				return fmt.Errorf("cannot read the output %s: %w", out, err)
			}
			if mark == nil && gone < len(j.Blocks) {
				return fmt.Errorf("cannot compact: %d of the %d blocks are gone and the output %s was not written", gone, len(j.Blocks), out)
			}
			for _, in := range inputs { // hidden by nothing now: let go
				if err := block.MarkCompacted(ctx, c.bkt, in, c.clock()); err != nil {
					return fmt.Errorf("cannot let go of block %s, compacted into %s: %w", in.BlockID, out, err)
				}
			}
			return nil
		}
	} else {
		res, err := block.Compact(ctx, c.bkt, inputs, c.opts)
		if err != nil {
			return err
		}
		meta = res.Meta
		if res.Written {
			level := fmt.Sprint(meta.CompactionLevel)
			c.blocks.WithLabelValues(j.Tenant, level).Add(float64(len(inputs)))
			c.bytes.WithLabelValues(j.Tenant, level).Add(float64(meta.Size))
			c.duplicates.WithLabelValues(j.Tenant).Add(float64(res.Duplicates))
		}
	}
	// The output is visible and lists its inputs (CompactedFrom), so the
	// block list no longer reads them; letting them go makes that
	// last, once the output's data is checked there.
	if err := meta.CheckData(ctx, c.bkt); err != nil {
		return err
	}
	if c.onBlock != nil {
		c.onBlock(meta)
	}
	now := c.clock()
	for _, m := range inputs {
		if err := block.MarkCompacted(ctx, c.bkt, m, now); err != nil {
			return fmt.Errorf("cannot let go of block %s, compacted into %s: %w", m.BlockID, meta.BlockID, err)
		}
	}
	return nil
}

type retainer struct {
	bkt    objstore.Bucket
	cfg    scheduler.CompactionConfig
	limits Limits
	clock  func() time.Time
	m      *retention.Metrics
}

func (r *retainer) run(ctx context.Context, j *scheduler.Job) error {
	keep := r.cfg.BlockRetention
	if r.limits != nil {
		if t := r.limits.BlockRetention(j.Tenant); t > 0 {
			keep = t
		}
	}
	// The job's creation time, not the time it runs: the scheduler creates
	// retention jobs an interval apart, so a block let go by one job is
	// deleted by the job compacted_block_retention later (rounded up to
	// the interval), however late either is picked up or retried. This
	// bounds a block's life to its retention + interval +
	// compacted_block_retention, and is never early.
	now := j.Created
	if now.IsZero() {
		now = r.clock()
	}
	_, err := retention.Run(ctx, r.bkt, j.Tenant, now, retention.Settings{Retention: keep, CompactedRetention: r.cfg.CompactedBlockRetention}, r.m)
	return err
}
