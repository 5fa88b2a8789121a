package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// This file cuts a metrics query into jobs and runs one job. The query's
// range is split by span start time at a cutoff (now −
// query_frontend.metrics.query_backend_after): the spans starting after
// it are counted from the live-stores, which hold every span received in
// their window, the others from the blocks. So each span is counted once,
// from one place, although recent spans are in both.

// Job is one unit of a metrics query: the live-stores, or row groups
// [FirstRowGroup, LastRowGroup) of one block. It counts the spans that
// start in (From, To].
type Job struct {
	Request
	// Live is set for the live-store job.
	Live bool `json:"live,omitempty"`
	// BlockID is the block of a block job.
	BlockID string `json:"blockID,omitempty"`
	// FirstRowGroup and LastRowGroup are the block's row groups.
	FirstRowGroup int `json:"firstRowGroup,omitempty"`
	LastRowGroup  int `json:"lastRowGroup,omitempty"`
	// From and To bound the start times of the spans the job counts, in
	// unix nanoseconds: (From, To].
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Bytes is the size of the job's part of the block.
	Bytes int64 `json:"bytes,omitempty"`
}

// JobResult is what one job found: the partial aggregates of each place
// it ran in (the live job runs on every live-store).
type JobResult struct {
	Parts []*Partial `json:"parts,omitempty"`
	// Skipped is set when the job's block could not be read (a damaged
	// file, object storage failing): the job completed without it and
	// the answer is partial.
	Skipped *partial.Skip `json:"skipped,omitempty"`
}

// SkippedJob is the result of a block job that could not read its block
// because of err: nothing found, the skip recorded.
func SkippedJob(tenant string, job Job, err error) *JobResult {
	return &JobResult{Skipped: &partial.Skip{Tenant: tenant, Block: job.BlockID, Reason: partial.ReasonOf(err), Error: err.Error()}}
}

// Runner plans and runs the jobs of metrics queries over a live-store and
// the blocks of a bucket.
type Runner struct {
	live   search.Live // nil: no live-store in this process
	blocks *blocklist.List
	bkt    objstore.BucketReader
	// TargetBytesPerJob is the size of the block jobs Plan cuts (bytes of
	// data.parquet); 0 means search.DefaultTargetBytesPerJob.
	TargetBytesPerJob int64
	// wholeTraces makes block jobs read whole traces even when the
	// columns of the query's fields would do (tests compare the paths).
	wholeTraces bool
}

// NewRunner returns a runner over live and the blocks of bkt; either of
// live and blocks may be nil.
func NewRunner(live search.Live, blocks *blocklist.List, bkt objstore.BucketReader) *Runner {
	return &Runner{live: live, blocks: blocks, bkt: bkt}
}

// Plan cuts req (aligned) into jobs for tenant: the live-store job over
// the spans starting after cutoff (unix nanoseconds), then, newest block
// first, jobs over ranges of row groups of about TargetBytesPerJob of
// each block holding spans that start in (req.Start, cutoff].
func (r *Runner) Plan(req Request, tenant string, cutoff uint64) []Job {
	var jobs []Job
	if r.live != nil && req.End > cutoff {
		jobs = append(jobs, Job{Request: req, Live: true, From: max(req.Start, cutoff), To: req.End})
	}
	if r.blocks == nil || req.Start >= cutoff {
		return jobs
	}
	to := min(req.End, cutoff)
	// A span starting in (Start, to] ends at or after Start.
	for _, p := range search.CutBlocks(r.blocks.Blocks(tenant, time.Unix(0, int64(req.Start)), time.Unix(0, int64(to))), r.TargetBytesPerJob) {
		jobs = append(jobs, Job{
			Request: req, BlockID: p.Meta.BlockID.String(), FirstRowGroup: p.FirstRowGroup, LastRowGroup: p.LastRowGroup,
			From: req.Start, To: to, Bytes: p.Bytes,
		})
	}
	return jobs
}

// BlockStats are the totalBlocks and totalBlockBytes of jobs.
func BlockStats(jobs []Job) (blocks uint32, bytes uint64) {
	return search.CountBlocks(jobs, func(j Job) (bool, string, int64) { return j.Live, j.BlockID, j.Bytes })
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// RunJob runs one job for tenant. Bad requests fail with a gRPC
// InvalidArgument status.
func (r *Runner) RunJob(ctx context.Context, tenant string, job Job) (*JobResult, error) {
	q, err := Compile(job.Request)
	if err != nil {
		return nil, err
	}
	var p *Partial
	if job.Live {
		p, err = r.runLive(ctx, q, tenant, job)
	} else {
		p, err = r.runBlock(ctx, q, tenant, job)
	}
	if err != nil {
		return nil, err
	}
	return &JobResult{Parts: []*Partial{p}}, nil
}

// observeTrace evaluates one trace of a job (its ID and OTLP data) into
// acc.
func observeTrace(acc *Accumulator, id [16]byte, data []byte) error {
	t, err := traceql.NewTrace(data)
	if err != nil {
		return fmt.Errorf("cannot decode trace %x: %w", id, err)
	}
	if err := acc.ObserveTrace(t); err != nil {
		return evalError(id, err)
	}
	return nil
}

// runLive runs a live job on this process's live-store.
func (r *Runner) runLive(ctx context.Context, q *Query, tenant string, job Job) (*Partial, error) {
	acc := q.NewAccumulator(job.From, job.To)
	if r.live == nil {
		return acc.Result(), nil
	}
	var ferr error
	n, err := r.live.Scan(ctx, tenant, q.Selection(), func(id [16]byte, data []byte) bool {
		ferr = observeTrace(acc, id, data)
		return ferr == nil && !acc.Full()
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	p := acc.Result()
	p.Metrics.InspectedBytes += uint64(n)
	return p, nil
}

// runBlock runs a block job: from the columns of the query's fields when
// it decides on single spans (spans.go), else on whole traces.
func (r *Runner) runBlock(ctx context.Context, q *Query, tenant string, job Job) (*Partial, error) {
	rd, err := blocklist.OpenPlanned(ctx, r.blocks, r.bkt, tenant, job.BlockID)
	if errors.Is(err, blocklist.ErrBadBlockID) {
		return nil, invalid("%s", err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read block %s: %w", job.BlockID, err)
	}
	var read uint64
	if q.spans != nil && !r.wholeTraces {
		p, n, err := r.blockSpans(ctx, q, rd, job)
		read += n
		if err == nil {
			p.Metrics.InspectedBytes += read
			return p, nil
		}
		if !errors.Is(err, errNotExact) {
			return nil, blockError(job, err)
		}
	}
	acc := q.NewAccumulator(job.From, job.To)
	st, err := rd.Scan(ctx, block.ScanRequest{Selection: q.Selection(), FirstRowGroup: job.FirstRowGroup, LastRowGroup: job.LastRowGroup},
		func(id [16]byte, data []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := observeTrace(acc, id, data); err != nil {
				return err
			}
			if acc.Full() {
				return block.ErrStopScan
			}
			return nil
		})
	if err != nil {
		return nil, blockError(job, err)
	}
	p := acc.Result()
	p.Metrics.InspectedBytes += read + st.BytesRead
	return p, nil
}

// blockSpans runs a block job on the columns of the query's fields. It
// fails with errNotExact when a span needs its whole trace; it returns
// the bytes it read in any case.
func (r *Runner) blockSpans(ctx context.Context, q *Query, rd *block.Reader, job Job) (*Partial, uint64, error) {
	acc := q.NewAccumulator(job.From, job.To)
	req := block.SpanScanRequest{Fields: q.spans.fields, FirstRowGroup: job.FirstRowGroup, LastRowGroup: job.LastRowGroup}
	if q.spans.cond != nil {
		req.Pred = q.spans.cond
	}
	st, err := rd.ScanSpans(ctx, req, func(row *block.SpanRow) error {
		if err := acc.observeRow(row); err != nil {
			return err
		}
		if acc.Full() {
			return block.ErrStopScan
		}
		return nil
	})
	if err == nil {
		err = acc.resolveExemplars(ctx, rd)
	}
	if err != nil {
		return nil, st.BytesRead, err
	}
	return acc.Result(), st.BytesRead, nil
}

// blockError is err of a block job, a bad request kept as such.
func blockError(job Job, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		return st.Err()
	}
	return fmt.Errorf("cannot read block %s: %w", job.BlockID, err)
}

// evalError turns an evaluation error into a bad request when the query
// is at fault.
func evalError(id [16]byte, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, traceql.ErrUnsupported) || errors.Is(err, traceql.ErrSpansetOperationMultiple) {
		return invalid("%s", err.Error())
	}
	return fmt.Errorf("cannot evaluate the query on trace %x: %w", id, err)
}

// MergeJobResults merges the results of one job run in several places
// (the live job over several live-stores) into one.
func MergeJobResults(rs ...*JobResult) *JobResult {
	out := &JobResult{}
	for _, r := range rs {
		if r == nil {
			continue
		}
		out.Parts = append(out.Parts, r.Parts...)
		if out.Skipped == nil {
			out.Skipped = r.Skipped
		}
	}
	return out
}
