package search

// This file bounds the memory one search holds: the traces and spansets
// of job results while the jobs run, and the traces the Combiner keeps, are
// accounted (estimated bytes) against one ResultBudget per search. A search
// whose results would pass it fails with InvalidArgument naming
// MaxResultBytesKey, rather than taking the memory of the process (a search
// at the highest limit and spss took 3.7–4.9 GB).

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxResultBytesKey is the config key of the per-search budget.
const MaxResultBytesKey = "query_frontend.search.max_result_bytes"

// DefaultMaxResultBytes is the default budget of one search: 256 MiB of
// results (as estimated by the accounting, which counts the structures a
// result is made of, not the garbage collector's headroom).
const DefaultMaxResultBytes = 256 << 20

// ResultBudget accounts the bytes the results of one search hold. It is
// safe for concurrent use: the jobs of a search running in process share
// it through their context (WithResultBudget).
type ResultBudget struct {
	max      int64
	used     atomic.Int64
	peak     atomic.Int64
	exceeded atomic.Bool
}

// NewResultBudget returns a budget of max bytes; max ≤ 0 is no bound.
func NewResultBudget(max int64) *ResultBudget { return &ResultBudget{max: max} }

// take accounts n more bytes, or fails with the budget's error (and
// accounts nothing) when that would pass the budget.
func (b *ResultBudget) take(n int64) error {
	if b == nil {
		return nil
	}
	used := b.used.Add(n)
	if b.max > 0 && used > b.max {
		b.used.Add(-n)
		b.exceeded.Store(true)
		return b.err()
	}
	for {
		p := b.peak.Load()
		if used <= p || b.peak.CompareAndSwap(p, used) {
			break
		}
	}
	return nil
}

// release gives back n bytes taken before.
func (b *ResultBudget) release(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// Used is the bytes accounted now.
func (b *ResultBudget) Used() int64 { return b.used.Load() }

// Peak is the most bytes accounted at once.
func (b *ResultBudget) Peak() int64 { return b.peak.Load() }

// Max is the budget.
func (b *ResultBudget) Max() int64 { return b.max }

// Exceeded reports whether a take was refused.
func (b *ResultBudget) Exceeded() bool { return b != nil && b.exceeded.Load() }

func (b *ResultBudget) err() error {
	return ResultBytesError(b.max)
}

// ResultBytesError is the InvalidArgument status of a search whose results
// would hold more than max bytes.
func ResultBytesError(max int64) error {
	return status.Errorf(codes.InvalidArgument,
		"search results would hold more than %d bytes, the limit (%s): lower limit or spss, or narrow the query or its time range",
		max, MaxResultBytesKey)
}

// IsResultBytesError reports whether err is a job's or search's refusal
// for the result budget, also when it came over gRPC.
func IsResultBytesError(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "("+MaxResultBytesKey+")")
}

type budgetKey struct{}

// WithResultBudget returns ctx carrying b: the jobs run with it (RunJob)
// account what they hold in b instead of a budget of their own.
func WithResultBudget(ctx context.Context, b *ResultBudget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// ResultBudgetFrom is the budget ctx carries, nil if none.
func ResultBudgetFrom(ctx context.Context) *ResultBudget {
	b, _ := ctx.Value(budgetKey{}).(*ResultBudget)
	return b
}

// jobBudget is the budget a job accounts in: its search's, carried by ctx,
// else one of its own of job.MaxResultBytes (a job run on a querier apart
// from its frontend).
func jobBudget(ctx context.Context, job Job) *ResultBudget {
	if b := ResultBudgetFrom(ctx); b != nil {
		return b
	}
	if job.MaxResultBytes > 0 {
		return NewResultBudget(job.MaxResultBytes)
	}
	return nil
}

// keep adds one matching trace to the job's result, accounting its bytes.
func (jr *jobRun) keep(t *Trace) error {
	n := traceBytes(t)
	if err := jr.budget.take(n); err != nil {
		return err
	}
	jr.res.charged += n
	jr.res.Traces = append(jr.res.Traces, t)
	return nil
}

// dropped gives back the bytes of traces a job no longer holds.
func (jr *jobRun) dropped(ts []*Trace) {
	var n int64
	for _, t := range ts {
		n += traceBytes(t)
	}
	jr.budget.release(n)
	jr.res.charged -= n
}

// SetBudget makes the combiner account what it holds in b (its search's
// budget): Add then fails once the traces and trace IDs kept would pass
// it.
func (c *Combiner) SetBudget(b *ResultBudget) { c.budget = b }

// account takes over the bytes of a job result: what the job accounted is
// given back and what the combiner keeps of it is taken.
func (c *Combiner) account(r *JobResult) error {
	c.budget.release(r.charged)
	r.charged = 0
	var n int64
	kept := map[string]bool{} // a result merged from several live-stores may hold a trace twice
	for _, t := range r.Traces {
		id := fullHex(t.TraceID)
		if _, ok := c.traces[id]; !ok && !kept[id] {
			kept[id] = true
			n += traceBytes(t)
		}
	}
	for _, ids := range [][]string{r.Partial, r.Incomplete} {
		for _, id := range ids {
			n += int64(len(id)) + mapEntryBytes
		}
	}
	if err := c.budget.take(n); err != nil {
		return err
	}
	c.held += n
	return nil
}

// trimHeld keeps the limit most recent traces once the combiner holds
// twice as many: a search with most_recent otherwise keeps every trace its
// jobs found. The traces dropped cannot be among the limit returned.
func (c *Combiner) trimHeld() {
	if len(c.traces) <= 2*c.q.limit {
		return
	}
	ts := c.sorted()
	var n int64
	for _, t := range ts[c.q.limit:] {
		delete(c.traces, fullHex(t.TraceID))
		n += traceBytes(t)
	}
	c.budget.release(n)
	c.held -= n
}

// replace puts t (nil: nothing) in place of the trace id the combiner
// holds, if any, accounting the difference.
func (c *Combiner) replace(id string, t *Trace) error {
	if old, ok := c.traces[id]; ok {
		n := traceBytes(old)
		c.budget.release(n)
		c.held -= n
		delete(c.traces, id)
	}
	if t == nil {
		return nil
	}
	n := traceBytes(t)
	if err := c.budget.take(n); err != nil {
		return err
	}
	c.held += n
	c.traces[id] = t
	return nil
}

// Sizes used by the accounting: what a value costs beyond its strings, on
// 64-bit platforms, rounded up to cover allocator size classes.
const (
	traceStructBytes   = 160 // Trace, its pointer in slices and the map entry
	spanSetStructBytes = 96
	spanStructBytes    = 112
	kvStructBytes      = 96 // KeyValue, AnyValue, the pointed-to value
	mapEntryBytes      = 48
	serviceStatsBytes  = 64 // ServiceStats, its map entry and string header
)

// traceBytes estimates the memory t holds.
func traceBytes(t *Trace) int64 {
	n := int64(traceStructBytes + len(t.TraceID) + len(t.RootServiceName) + len(t.RootTraceName))
	for name := range t.ServiceStats {
		n += int64(len(name)) + serviceStatsBytes
	}
	for _, ss := range t.SpanSets {
		n += spanSetStructBytes + kvsBytes(ss.Attributes)
		for _, sp := range ss.Spans {
			n += int64(spanStructBytes+len(sp.SpanID)+len(sp.Name)) + kvsBytes(sp.Attributes)
		}
	}
	return n
}

func kvsBytes(kvs []*KeyValue) int64 {
	var n int64
	for _, kv := range kvs {
		n += int64(kvStructBytes+len(kv.Key)) + anyBytes(kv.Value)
	}
	return n
}

func anyBytes(v *AnyValue) int64 {
	switch {
	case v == nil:
		return 0
	case v.StringValue != nil:
		return int64(len(*v.StringValue))
	case v.ArrayValue != nil:
		n := int64(0)
		for _, e := range v.ArrayValue.Values {
			n += kvStructBytes + anyBytes(e)
		}
		return n
	}
	return 0
}

// String describes the budget for logs and test failures.
func (b *ResultBudget) String() string {
	return fmt.Sprintf("%d of %d bytes used, peak %d", b.Used(), b.max, b.Peak())
}
