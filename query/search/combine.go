package search

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/weftdb/weft/query/traceql"
)

// maxRecheck caps the traces found in parts in several jobs that Finish
// reads whole to evaluate again.
const maxRecheck = 1000

// Combiner merges the results of a search's jobs. It is not safe for
// concurrent use.
type Combiner struct {
	q       *query
	traces  map[string]*Trace // by hex trace ID
	seen    map[string]int    // jobs that reported the trace, matched or partial
	partial map[string]bool   // traces some job saw only part of
	metrics Metrics
	budget  *ResultBudget // nil: not accounted
	held    int64         // bytes accounted in budget
}

// NewCombiner returns a combiner for req, planned as jobs. Bad requests
// fail with a gRPC InvalidArgument status.
func NewCombiner(req Request, jobs []Job) (*Combiner, error) {
	q, err := parse(req)
	if err != nil {
		return nil, err
	}
	c := &Combiner{q: q, traces: map[string]*Trace{}, seen: map[string]int{}, partial: map[string]bool{}}
	c.metrics.TotalJobs = uint32(len(jobs))
	c.metrics.TotalBlocks, c.metrics.TotalBlockBytes = BlockStats(jobs)
	return c, nil
}

// Add merges the result of one job. It fails, merging nothing, when what
// the combiner would hold passes its budget (SetBudget).
func (c *Combiner) Add(r *JobResult) error {
	if err := c.account(r); err != nil {
		return err
	}
	m := &c.metrics
	m.InspectedTraces += r.Metrics.InspectedTraces
	m.InspectedBytes += r.Metrics.InspectedBytes
	m.InspectedSpans += r.Metrics.InspectedSpans
	m.CompletedJobs += r.Metrics.CompletedJobs
	for _, t := range r.Traces {
		id := fullHex(t.TraceID)
		c.seen[id]++
		if _, ok := c.traces[id]; !ok {
			c.traces[id] = t
		}
	}
	for _, id := range r.Partial {
		c.seen[id]++
	}
	for _, id := range r.Incomplete {
		c.partial[id] = true
	}
	c.trimHeld()
	return nil
}

// Enough reports whether the jobs left can be skipped: limit traces were
// found or, with most_recent, limit traces newer than anything the jobs
// left can hold.
func (c *Combiner) Enough(left []Job) bool {
	if len(c.traces) < c.q.limit {
		return false
	}
	if !c.q.mostRecent || len(left) == 0 {
		return true
	}
	ts := c.sorted()
	oldest := ts[c.q.limit-1].StartTimeUnixNano
	for _, j := range left {
		if j.EndUnixNano == 0 || j.EndUnixNano >= oldest {
			return false
		}
	}
	return true
}

// Needed reports whether job may still change the answer: with
// most_recent, a block job whose block ends before the start of the
// limit-th most recent trace found cannot (nor can it without, once limit
// traces were found: Enough says so for every job left).
func (c *Combiner) Needed(job Job) bool {
	if !c.q.mostRecent || len(c.traces) < c.q.limit || job.EndUnixNano == 0 {
		return true
	}
	return job.EndUnixNano >= c.sorted()[c.q.limit-1].StartTimeUnixNano
}

// Found is the number of matching traces found so far.
func (c *Combiner) Found() int { return len(c.traces) }

// MostRecent reports whether the search keeps the most recent traces
// (with most_recent=true): its jobs are needed newest first.
func (c *Combiner) MostRecent() bool { return c.q.mostRecent }

// Limit is the number of traces the search returns at most.
func (c *Combiner) Limit() int { return c.q.limit }

// Metrics are the metrics so far.
func (c *Combiner) Metrics() Metrics { return c.metrics }

func (c *Combiner) sorted() []*Trace {
	ts := make([]*Trace, 0, len(c.traces))
	for _, t := range c.traces {
		ts = append(ts, t)
	}
	sortTraces(ts)
	return ts
}

// Finish returns the response: the limit most recent traces found.
// Traces reported by several jobs, and traces a job saw only part of (no
// root span, or a span without its parent), are read whole with f and
// evaluated again, so that their spansets and metadata are the whole
// trace's (a trace whose parts did not match alone may match as a whole).
func (c *Combiner) Finish(ctx context.Context, tenant string, f Finder) (*Response, error) {
	var recheck []string
	for id, n := range c.seen {
		if (n > 1 || c.partial[id]) && len(recheck) < maxRecheck {
			recheck = append(recheck, id)
		}
	}
	for lo := 0; lo < len(recheck); lo += recheckConcurrency {
		chunk := recheck[lo:min(len(recheck), lo+recheckConcurrency)]
		tids := make([][16]byte, len(chunk))
		for i, id := range chunk {
			if _, err := hex.Decode(tids[i][:], []byte(id)); err != nil {
				return nil, fmt.Errorf("cannot read trace ID %q: %w", id, err)
			}
		}
		// Read the chunk's traces at once (object storage answers in tens
		// of milliseconds), then evaluate them in order.
		data := make([][]byte, len(chunk))
		errs := make([]error, len(chunk))
		var wg sync.WaitGroup
		for i := range chunk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data[i], errs[i] = f.FindTraceByID(ctx, tenant, tids[i], 0, 0)
			}()
		}
		wg.Wait()
		for i, id := range chunk {
			if err := c.recheck(id, tids[i], data[i], errs[i]); err != nil {
				return nil, err
			}
		}
	}
	ts := c.sorted()
	if len(ts) > c.q.limit {
		ts = ts[:c.q.limit]
	}
	m := c.metrics
	return &Response{Traces: ts, Metrics: &m}, nil
}

// recheckConcurrency is how many traces Finish reads at once.
const recheckConcurrency = 16

// recheck replaces the result of trace id by its evaluation on data, its
// whole spans (read with error err).
func (c *Combiner) recheck(id string, tid [16]byte, data []byte, err error) error {
	if err != nil {
		return fmt.Errorf("cannot read trace %s: %w", id, err)
	}
	if err := c.replace(id, nil); err != nil {
		return err
	}
	t, err := traceql.NewTrace(data)
	if err != nil {
		return fmt.Errorf("cannot decode trace %s: %w", id, err)
	}
	if len(t.Spans) == 0 || !overlaps(t, c.q.req) || !durationIn(t, c.q.req) {
		return nil
	}
	sets, err := c.q.root.Eval(t)
	if err != nil {
		return evalError(tid, err)
	}
	if len(sets) > 0 {
		return c.replace(id, traceResult(tid, t, sets, c.q))
	}
	return nil
}

// fullHex pads a trace ID without leading zeros back to 32 digits.
func fullHex(id string) string {
	const zeros = "00000000000000000000000000000000"
	if len(id) >= 32 {
		return id
	}
	return zeros[:32-len(id)] + id
}
