package jobs

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/spanpred"
)

// redactor runs redaction jobs: find the traces of a block a query
// matches, or rewrite a block without a set of traces (block.Redact) and
// let the input go, as a compaction does. Both are safe to run again: a
// rewrite's output ID is derived from the input, the request and the set.
type redactor struct {
	bkt     objstore.Bucket
	opts    block.CompactOptions
	onBlock func(*block.Meta)
	clock   func() time.Time
	spans   *prometheus.CounterVec
	blocks  *prometheus.CounterVec
}

func (r *redactor) run(ctx context.Context, j *scheduler.Job) error {
	rj := j.Redact
	if rj == nil || len(j.Blocks) != 1 {
		return fmt.Errorf("cannot run redaction job %s: it names no request or not one block", j.ID)
	}
	id := j.Blocks[0]
	m, err := block.ReadMeta(ctx, r.bkt, j.Tenant, id)
	var mark *block.CompactedMeta
	switch {
	case err == nil:
	case r.bkt.IsObjNotFoundErr(err):
		// Let go since the job was planned: by this job before (its output
		// is there), or by a compaction or retention (then the request
		// reads the block list again).
		if mark, err = block.ReadCompactedMark(ctx, r.bkt, j.Tenant, id); err != nil {
			return fmt.Errorf("cannot read block %s: %w", id, err)
		}
		if rj.Find || rj.DryRun {
			j.Result = &scheduler.Result{Gone: true}
			return nil
		}
		out := block.RedactedID(j.Tenant, id, rj.Request, rj.Set)
		om, err := block.ReadMeta(ctx, r.bkt, j.Tenant, out)
		outGone := false
		if r.bkt.IsObjNotFoundErr(err) {
			// The output may be let go in turn (another request rewrote
			// it): its mark keeps its meta.
			outMark, err := block.ReadCompactedMark(ctx, r.bkt, j.Tenant, out)
			if err != nil {
				return fmt.Errorf("cannot read the output %s of block %s: %w", out, id, err)
			}
			if outMark == nil {
				j.Result = &scheduler.Result{Gone: true}
				return nil
			}
			om, outGone = &outMark.Meta, true
		} else if err != nil {
			return fmt.Errorf("cannot read the output %s of block %s: %w", out, id, err)
		}
		if mark == nil || outGone {
			// This job rewrote the block and let it go, and was cut short
			// before it reported; since, the input's objects were deleted
			// (compacted_block_retention), or the output was let go (never
			// to be written again: its spans are in another block). The
			// output says what the job did (the trace IDs only when the
			// block held all of the set).
			if om.Redaction == nil || om.Redaction.Request != rj.Request || om.Redaction.Set != rj.Set || len(om.CompactedFrom) != 1 || om.CompactedFrom[0] != id {
				j.Result = &scheduler.Result{Gone: true}
				return nil
			}
			j.Result = &scheduler.Result{Rewritten: true, Output: out, Spans: om.Redaction.SpansRemoved}
			if om.Redaction.TracesRemoved == int64(len(rj.TraceIDs)) {
				j.Result.TraceIDs = rj.TraceIDs // the block held every one
			}
			return nil
		}
		m = &mark.Meta
	default:
		return fmt.Errorf("cannot read block %s: %w", id, err)
	}
	if rj.Find {
		return r.find(ctx, j, m)
	}
	ids := make([][16]byte, 0, len(rj.TraceIDs))
	for _, t := range rj.TraceIDs {
		tid, err := block.ParseTraceID(t)
		if err != nil {
			return fmt.Errorf("cannot run redaction job %s: %w", j.ID, err)
		}
		ids = append(ids, tid)
	}
	res, err := block.Redact(ctx, r.bkt, m, ids, block.RedactOptions{CompactOptions: r.opts, Request: rj.Request, Set: rj.Set, DryRun: rj.DryRun})
	if err != nil {
		return err
	}
	out := &scheduler.Result{Spans: res.SpansRemoved, TraceIDs: hexIDs(res.Removed)}
	switch {
	case rj.DryRun || !res.Matched:
	case res.Emptied:
		if err := block.MarkCompacted(ctx, r.bkt, m, r.clock()); err != nil {
			return fmt.Errorf("cannot let go of block %s, emptied by redaction: %w", id, err)
		}
		out.Emptied = true
	case res.Meta != nil:
		// The output is visible and lists the input (CompactedFrom): the
		// block list no longer reads the input; letting it go makes that
		// last, once the output's data is checked there.
		if err := res.Meta.CheckData(ctx, r.bkt); err != nil {
			return err
		}
		if r.onBlock != nil {
			r.onBlock(res.Meta)
		}
		if err := block.MarkCompacted(ctx, r.bkt, m, r.clock()); err != nil {
			return fmt.Errorf("cannot let go of block %s, redacted into %s: %w", id, res.Meta.BlockID, err)
		}
		out.Rewritten, out.Output = true, res.Meta.BlockID
	}
	if res.Written || out.Emptied && mark == nil {
		r.spans.WithLabelValues(j.Tenant).Add(float64(res.SpansRemoved))
		r.blocks.WithLabelValues(j.Tenant).Inc()
	}
	j.Result = out
	return nil
}

// find reports the traces of the block of m that the job's query matches.
func (r *redactor) find(ctx context.Context, j *scheduler.Job, m *block.Meta) error {
	q, err := redaction.ParseQuery(j.Redact.Query)
	if err != nil {
		return err
	}
	rd, err := block.Open(ctx, r.bkt, m)
	if err != nil {
		return err
	}
	defer rd.Close()
	var found []string
	_, err = rd.Scan(ctx, block.ScanRequest{Selection: spanpred.Selection{Pred: q.Root().Predicate()}}, func(id [16]byte, data []byte) error {
		ok, err := q.Match(data)
		if err != nil {
			return fmt.Errorf("trace %x: %w", id, err)
		}
		if ok {
			if len(found) == redaction.MaxTraceIDs {
				return fmt.Errorf("the query matches more than %d traces in block %s: narrow it", redaction.MaxTraceIDs, m.BlockID)
			}
			found = append(found, hex.EncodeToString(id[:]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot search block %s: %w", m.BlockID, err)
	}
	j.Result = &scheduler.Result{TraceIDs: found}
	return nil
}

func hexIDs(ids [][16]byte) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}
