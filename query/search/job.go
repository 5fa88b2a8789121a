package search

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/traceql"
)

// DefaultTargetBytesPerJob is the default size of a block job: a block is
// cut into jobs of about this many bytes of data.parquet, whole row groups
// each (Tempo's target_bytes_per_job).
const DefaultTargetBytesPerJob = 100 << 20

// maxPartialPerJob caps the IDs of traces a job reports as partial.
const maxPartialPerJob = 10000

// Job is one unit of a search: the live-stores, or row groups
// [FirstRowGroup, LastRowGroup) of one block.
type Job struct {
	Request
	// Live is set for the live-store job.
	Live bool `json:"live,omitempty"`
	// BlockID is the block of a block job.
	BlockID string `json:"blockID,omitempty"`
	// FirstRowGroup and LastRowGroup are the block's row groups.
	FirstRowGroup int `json:"firstRowGroup,omitempty"`
	LastRowGroup  int `json:"lastRowGroup,omitempty"`
	// EndUnixNano is the latest span end the job can see (the block's end
	// time; 0, unbounded, for the live job): with most_recent, a search
	// may stop once it has enough traces newer than every job left.
	EndUnixNano uint64 `json:"end_unix_nano,omitempty"`
	// Bytes is the size of the job's part of the block.
	Bytes int64 `json:"bytes,omitempty"`
	// MaxResultBytes bounds the bytes the job's result holds when it runs
	// without its search's budget (on a querier apart); 0 is no bound.
	MaxResultBytes int64 `json:"maxResultBytes,omitempty"`
}

// JobResult is what a job found.
type JobResult struct {
	// Traces are the traces matching on the job's part of them, at most
	// the request's limit (the most recent ones with most_recent).
	Traces []*Trace `json:"traces,omitempty"`
	// Partial are the IDs (hex) of traces with a span satisfying the
	// query's per-span condition that did not match on the job's part
	// alone: another part elsewhere may complete them.
	Partial []string `json:"partial,omitempty"`
	// Incomplete are the IDs (hex) of the traces in Traces or Partial
	// whose part lacks the root span or the parent of a span: their other
	// spans are elsewhere or yet to come.
	Incomplete []string `json:"incomplete,omitempty"`
	Metrics    Metrics  `json:"metrics"`
	// Skipped is set when the job's block could not be read (a damaged
	// file, object storage failing): the job completed without it and the
	// search's answer is partial.
	Skipped *partial.Skip `json:"skipped,omitempty"`
	// charged is what the job accounted in its budget for Traces.
	charged int64
}

// SkippedJob is the result of a block job that could not read its block
// because of err: nothing found, the skip recorded.
func SkippedJob(tenant string, job Job, err error) *JobResult {
	return &JobResult{
		Skipped: &partial.Skip{Tenant: tenant, Block: job.BlockID, Reason: partial.ReasonOf(err), Error: err.Error()},
		Metrics: Metrics{CompletedJobs: 1},
	}
}

// Plan cuts req into jobs: the live-store job first, then the jobs of each
// block overlapping the time range, newest block first, each block cut
// into ranges of row groups of about TargetBytesPerJob.
func (s *Searcher) Plan(req Request, tenant string) []Job {
	var jobs []Job
	if s.live != nil {
		jobs = append(jobs, Job{Request: req, Live: true})
	}
	if s.blocks == nil {
		return jobs
	}
	for _, p := range CutBlocks(s.blocks.Blocks(tenant, req.Start, req.End), s.TargetBytesPerJob) {
		jobs = append(jobs, Job{
			Request: req, BlockID: p.Meta.BlockID.String(), FirstRowGroup: p.FirstRowGroup, LastRowGroup: p.LastRowGroup,
			EndUnixNano: uint64(p.Meta.EndTime.UnixNano()), Bytes: p.Bytes,
		})
	}
	return jobs
}

// BlockPart is the unit of a block job: row groups [FirstRowGroup,
// LastRowGroup) of one block, Bytes of its data.parquet.
type BlockPart struct {
	Meta                        *block.Meta
	FirstRowGroup, LastRowGroup int
	Bytes                       int64
}

// CutBlocks cuts each block of entries, in their order, into parts of
// consecutive whole row groups of about target bytes of data.parquet (at
// least one row group each); target 0 means DefaultTargetBytesPerJob.
func CutBlocks(entries []*blocklist.Entry, target int64) []BlockPart {
	if target <= 0 {
		target = DefaultTargetBytesPerJob
	}
	var out []BlockPart
	for _, e := range entries {
		m := e.Meta
		n := len(m.RowGroups)
		if n == 0 {
			continue
		}
		per := max(1, int(target/max(1, m.Size/int64(n))))
		for first := 0; first < n; first += per {
			last := min(n, first+per)
			out = append(out, BlockPart{Meta: m, FirstRowGroup: first, LastRowGroup: last, Bytes: m.Size * int64(last-first) / int64(n)})
		}
	}
	return out
}

// BlockStats are the totalBlocks and totalBlockBytes of jobs.
func BlockStats(jobs []Job) (blocks uint32, bytes uint64) {
	return CountBlocks(jobs, func(j Job) (bool, string, int64) { return j.Live, j.BlockID, j.Bytes })
}

// CountBlocks are the distinct blocks and the bytes of jobs of any kind,
// which of gives as whether a job is the live one, its block and its
// bytes.
func CountBlocks[J any](jobs []J, of func(J) (live bool, blockID string, bytes int64)) (blocks uint32, bytes uint64) {
	seen := map[string]bool{}
	for _, j := range jobs {
		live, id, n := of(j)
		if !live && !seen[id] {
			seen[id] = true
			blocks++
		}
		bytes += uint64(max(n, 0))
	}
	return blocks, bytes
}

// RunJob runs one job for tenant. Bad requests fail with a gRPC
// InvalidArgument status.
func (s *Searcher) RunJob(ctx context.Context, tenant string, job Job) (*JobResult, error) {
	q, err := parse(job.Request)
	if err != nil {
		return nil, err
	}
	return s.runJob(ctx, q, tenant, job)
}

func (s *Searcher) runJob(ctx context.Context, q *query, tenant string, job Job) (*JobResult, error) {
	jr := &jobRun{q: q, res: &JobResult{}, budget: jobBudget(ctx, job)}
	if job.Live {
		if s.live == nil {
			return jr.res, nil
		}
		var ferr error
		n, err := s.live.Scan(ctx, tenant, q.sel, func(id [16]byte, data []byte) bool {
			ferr = jr.trace(id, data)
			return ferr == nil && !jr.full()
		})
		jr.res.Metrics.InspectedBytes += uint64(n)
		if ferr != nil {
			err = ferr
		}
		return jr.finish(), err
	}
	r, err := blocklist.OpenPlanned(ctx, s.blocks, s.bkt, tenant, job.BlockID)
	if errors.Is(err, blocklist.ErrBadBlockID) {
		return nil, invalid("%s", err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot search block %s: %w", job.BlockID, err)
	}
	// With most_recent, the block hands the traces over newest first and
	// stops once the oldest of the limit kept rules out every trace left.
	req := block.ScanRequest{Selection: q.sel, FirstRowGroup: job.FirstRowGroup, LastRowGroup: job.LastRowGroup,
		NewestFirst: q.mostRecent, Floor: jr.floor}
	st, err := r.Scan(ctx, req,
		func(id [16]byte, data []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := jr.trace(id, data); err != nil {
				return err
			}
			if jr.full() {
				return block.ErrStopScan
			}
			return nil
		})
	jr.res.Metrics.InspectedBytes += st.BytesRead
	if err != nil {
		if bad, ok := errorStatus(err); ok {
			return nil, bad
		}
		return nil, fmt.Errorf("cannot search block %s: %w", job.BlockID, err)
	}
	return jr.finish(), nil
}

// jobRun evaluates the traces of one job.
type jobRun struct {
	q      *query
	res    *JobResult
	budget *ResultBudget
	// oldest, with most_recent, is the start of the limit-th most recent
	// trace kept, once limit traces were kept (hasOldest): a trace
	// starting before it cannot be returned. It is brought up to date
	// when the traces are trimmed, and is stale (earlier) in between.
	oldest    uint64
	hasOldest bool
}

// floor is block.ScanRequest.Floor: the start before which a trace
// cannot be among the most recent ones kept.
func (jr *jobRun) floor() (uint64, bool) { return jr.oldest, jr.hasOldest }

// trace evaluates one trace (the job's part of it).
func (jr *jobRun) trace(id [16]byte, data []byte) error {
	t, err := traceql.NewTrace(data)
	if err != nil {
		return fmt.Errorf("cannot decode trace %x: %w", id, err)
	}
	if len(t.Spans) == 0 {
		return nil
	}
	m := &jr.res.Metrics
	m.InspectedTraces++
	m.InspectedSpans += uint64(len(t.Spans))
	if !overlaps(t, jr.q.req) {
		return nil
	}
	sets, err := jr.q.root.Eval(t)
	if err != nil {
		return evalError(id, err)
	}
	matched := len(sets) > 0 && durationIn(t, jr.q.req)
	if (matched || len(jr.res.Partial) < maxPartialPerJob) && !t.Complete() && len(jr.res.Incomplete) < maxPartialPerJob {
		jr.res.Incomplete = append(jr.res.Incomplete, hex.EncodeToString(id[:]))
	}
	if !matched {
		if len(jr.res.Partial) < maxPartialPerJob {
			jr.res.Partial = append(jr.res.Partial, hex.EncodeToString(id[:]))
		}
		return nil
	}
	if err := jr.keep(traceResult(id, t, sets, jr.q)); err != nil {
		return err
	}
	if jr.q.mostRecent && (len(jr.res.Traces) > 2*jr.q.limit || !jr.hasOldest && len(jr.res.Traces) >= jr.q.limit) {
		jr.trim()
	}
	return nil
}

// full reports whether the job found enough: limit traces, unless the
// most recent ones are asked for, which needs every trace seen.
func (jr *jobRun) full() bool { return !jr.q.mostRecent && len(jr.res.Traces) >= jr.q.limit }

// trim keeps the limit most recent traces.
func (jr *jobRun) trim() {
	sortTraces(jr.res.Traces)
	if len(jr.res.Traces) > jr.q.limit {
		jr.dropped(jr.res.Traces[jr.q.limit:])
		jr.res.Traces = jr.res.Traces[:jr.q.limit]
	}
	if len(jr.res.Traces) == jr.q.limit {
		jr.oldest, jr.hasOldest = jr.res.Traces[jr.q.limit-1].StartTimeUnixNano, true
	}
}

func (jr *jobRun) finish() *JobResult {
	jr.trim()
	jr.res.Metrics.CompletedJobs = 1
	return jr.res
}

func sortTraces(ts []*Trace) {
	slices.SortFunc(ts, func(a, b *Trace) int {
		return cmp.Or(cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano), cmp.Compare(a.TraceID, b.TraceID))
	})
}

// evalError turns an evaluation error into a bad request when the query
// is at fault.
func evalError(id [16]byte, err error) error {
	if errors.Is(err, traceql.ErrUnsupported) || errors.Is(err, traceql.ErrSpansetOperationMultiple) {
		return invalid("%s", err.Error())
	}
	return fmt.Errorf("cannot evaluate the query on trace %x: %w", id, err)
}

// errorStatus returns err's status when it is a bad request.
func errorStatus(err error) (error, bool) {
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		return st.Err(), true
	}
	return nil, false
}

// MergeJobResults merges the results of one job run in several places (the
// live job over several live-stores) into one: traces and IDs side by side
// (a trace reported twice is read whole again by the Combiner), metrics
// summed, one completed job.
func MergeJobResults(rs ...*JobResult) *JobResult {
	out := &JobResult{}
	for _, r := range rs {
		if r == nil {
			continue
		}
		out.Traces = append(out.Traces, r.Traces...)
		out.Partial = append(out.Partial, r.Partial...)
		out.Incomplete = append(out.Incomplete, r.Incomplete...)
		if out.Skipped == nil {
			out.Skipped = r.Skipped
		}
		out.Metrics.InspectedTraces += r.Metrics.InspectedTraces
		out.Metrics.InspectedBytes += r.Metrics.InspectedBytes
		out.Metrics.InspectedSpans += r.Metrics.InspectedSpans
		out.charged += r.charged
	}
	out.Metrics.CompletedJobs = 1
	return out
}
