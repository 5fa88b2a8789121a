package search

import (
	"context"
	"sync"
	"time"
)

// A search's progress: while its jobs run, the query-frontend hands the
// answer so far to the function a caller put in the context (the
// streaming API sends it to its client as Tempo's diff messages).

// ProgressFunc receives a search's answer so far (Combiner.Snapshot). It
// is called from the goroutine merging the search's jobs, which waits for
// it: it should encode or copy what it needs and return. It must not
// modify the response, whose traces the search still holds.
type ProgressFunc func(*Response)

// Progress calls a ProgressFunc at most once per interval.
type Progress struct {
	every time.Duration
	fn    ProgressFunc

	mu   sync.Mutex
	last time.Time
}

type progressKey struct{}

// WithProgress returns a context under which a search reports its answer
// so far to fn after a job completes, at most once every interval (the
// first report comes an interval after the search started).
func WithProgress(ctx context.Context, every time.Duration, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, &Progress{every: every, fn: fn, last: time.Now()})
}

// ProgressFromContext returns the progress of ctx, or nil.
func ProgressFromContext(ctx context.Context) *Progress {
	p, _ := ctx.Value(progressKey{}).(*Progress)
	return p
}

// Due reports whether an interval passed since the last report (or the
// start); when it did, the next interval starts now. Safe on a nil
// Progress (never due).
func (p *Progress) Due(now time.Time) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < p.every {
		return false
	}
	p.last = now
	return true
}

// Report hands resp to the ProgressFunc.
func (p *Progress) Report(resp *Response) { p.fn(resp) }

// Snapshot returns the answer so far: the limit most recent traces the
// jobs merged found (not yet completed or evaluated again as Finish does)
// and the metrics so far. The traces are the combiner's own: the caller
// must not modify them.
func (c *Combiner) Snapshot() *Response {
	ts := c.sorted()
	if len(ts) > c.q.limit {
		ts = ts[:c.q.limit]
	}
	m := c.metrics
	return &Response{Traces: ts, Metrics: &m}
}
