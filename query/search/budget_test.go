package search

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/spangen"
)

// A job run without its search's budget (on a querier apart from the
// frontend) is bounded by Job.MaxResultBytes; with the search's budget in
// its context it accounts there, and gives back what it trims.
func TestJobResultBytes(t *testing.T) {
	e := newEnv(t)
	td := spangen.Generate(spangen.Options{Seed: 1, Traces: 300, SpansPerTrace: 5, Start: base})
	e.block(td)
	req := Request{Query: `{ } with (most_recent=true)`, Limit: 10, SpansPerSpanSet: MaxSpansPerSpanSet}
	jobs := e.s.Plan(req, "t")[1:] // the block's, after the live-stores'
	if len(jobs) != 1 || jobs[0].Live {
		t.Fatalf("jobs %+v", jobs)
	}
	job := jobs[0]
	job.MaxResultBytes = 4 << 10 // a few traces
	_, err := e.s.RunJob(context.Background(), "t", job)
	if !IsResultBytesError(err) {
		t.Fatalf("job over its own bound: %v", err)
	}
	// The block hands its traces over newest first: the job keeps the
	// limit and stops, nothing to trim.
	b := NewResultBudget(64 << 10)
	res, err := e.s.RunJob(WithResultBudget(context.Background(), b), "t", jobs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 10 || b.Used() != res.charged || b.Used() <= 0 || b.Peak() != b.Used() {
		t.Fatalf("block job: %d traces, charged %d, budget %s", len(res.Traces), res.charged, b)
	}
	// A live-store hands them over in no order: most_recent keeps up to
	// twice the limit between trims, within 64 KiB, and what it trimmed
	// is given back.
	e.live(td)
	lb := NewResultBudget(64 << 10)
	lres, err := e.s.RunJob(WithResultBudget(context.Background(), lb), "t", Job{Request: req, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(lres.Traces) != 10 || lb.Used() != lres.charged || lb.Used() <= 0 || lb.Peak() <= lb.Used() {
		t.Fatalf("live job: %d traces, charged %d, budget %s", len(lres.Traces), lres.charged, lb)
	}
	// The combiner takes the result over: it holds the 10 traces it kept.
	c, err := NewCombiner(req, jobs)
	if err != nil {
		t.Fatal(err)
	}
	c.SetBudget(b)
	if err := c.Add(res); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, tr := range res.Traces {
		want += traceBytes(tr)
	}
	if b.Used() != want || c.held != want {
		t.Fatalf("after Add: budget %s, combiner holds %d, want %d", b, c.held, want)
	}
}

// With most_recent, the combiner keeps at most twice the limit of traces
// (it kept every trace its jobs found).
func TestCombinerTrimsMostRecent(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.block(spangen.Generate(spangen.Options{Seed: uint64(i), Traces: 50, SpansPerTrace: 3, Start: base.Add(time.Duration(i) * time.Hour)}))
	}
	req := Request{Query: `{ } with (most_recent=true)`, Limit: 20}
	jobs := e.s.Plan(req, "t")
	c, err := NewCombiner(req, jobs)
	if err != nil {
		t.Fatal(err)
	}
	b := NewResultBudget(0)
	c.SetBudget(b)
	for _, j := range jobs {
		res, err := e.s.RunJob(WithResultBudget(context.Background(), b), "t", j)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Add(res); err != nil {
			t.Fatal(err)
		}
		if len(c.traces) > 2*req.Limit {
			t.Fatalf("the combiner holds %d traces, more than twice the limit %d", len(c.traces), req.Limit)
		}
	}
	resp, err := c.Finish(context.Background(), "t", e.s.Finder())
	if err != nil || len(resp.Traces) != 20 || resp.Traces[0].StartTimeUnixNano < uint64(base.Add(4*time.Hour).UnixNano()) {
		t.Fatalf("%v %d", err, len(resp.Traces))
	}
}

// The results of a search hold about what the budget accounts: their
// strings are copies, not slices of the traces' data, which would keep
// every span of every result trace (6 times the accounted bytes).
func TestResultsDoNotPinTraceData(t *testing.T) {
	e := newEnv(t)
	e.block(spangen.Generate(spangen.Options{Seed: 1, Traces: 5000, SpansPerTrace: 10, Start: base}))
	req := Request{Query: `{ span.http.route !~ "/api/c.*" }`, Limit: MaxLimit, Start: base.Add(-time.Hour), End: base.Add(time.Hour)}
	if _, err := e.s.Search(context.Background(), req, "t"); err != nil { // caches filled
		t.Fatal(err)
	}
	b := NewResultBudget(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := e.s.Search(WithResultBudget(context.Background(), b), req, "t")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d traces: accounted %d bytes, heap +%d", len(resp.Traces), b.Used(), held)
	if len(resp.Traces) < 4000 || held > 2*b.Used() {
		t.Errorf("%d traces hold %d bytes of heap, more than twice the %d accounted", len(resp.Traces), held, b.Used())
	}
	runtime.KeepAlive(resp)
}
