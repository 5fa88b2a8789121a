package scheduler

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/internal/block"
)

// metaBlocks is a block list of metas that changes when a test says so.
type metaBlocks struct {
	mu    sync.Mutex
	metas map[string][]*block.Meta
}

func (b *metaBlocks) Tenants() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for t := range b.metas {
		out = append(out, t)
	}
	return out
}

func (b *metaBlocks) Compactable(tenant string) []compaction.Block {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []compaction.Block
	for _, m := range b.metas[tenant] {
		out = append(out, compaction.Block{ID: m.BlockID, Level: m.CompactionLevel, Start: m.StartTime, End: m.EndTime, Size: m.Size, Traces: m.TotalTraces})
	}
	return out
}

func (b *metaBlocks) Metas(tenant string) []*block.Meta {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*block.Meta(nil), b.metas[tenant]...)
}

func (b *metaBlocks) set(tenant string, metas []*block.Meta) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.metas[tenant] = metas
}

// rangeMeta is a block of one row group holding trace IDs lo to hi (hex
// digits, padded), ending end.
func rangeMeta(tenant, lo, hi string, end time.Time) *block.Meta {
	pad := func(s string) string { return s + strings.Repeat("0", 32-len(s)) }
	return &block.Meta{Format: block.FormatV1, BlockID: uuid.New(), TenantID: tenant, StartTime: end.Add(-time.Minute), EndTime: end,
		TotalTraces: 10, TotalSpans: 100, Size: 1 << 20, BloomBytes: 10,
		RowGroups: []block.RowGroupMeta{{MinTraceID: pad(lo), MaxTraceID: pad(hi), Rows: 100}}}
}

type redactEnv struct {
	t      *testing.T
	bkt    *filesystem.Bucket
	blocks *metaBlocks
	now    time.Time
}

func newRedactEnv(t *testing.T) *redactEnv {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &redactEnv{t: t, bkt: bkt, blocks: &metaBlocks{metas: map[string][]*block.Meta{}}, now: now0}
}

func (e *redactEnv) scheduler(reg prometheus.Registerer) *Scheduler {
	set := settings()
	set.RedactionRescanDelay, set.RedactionMaxGenerations = time.Minute, 3
	s := New(e.bkt, e.blocks, nil, set, reg, nil)
	s.clock = func() time.Time { return e.now }
	s.Activate()
	if err := s.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// runAll hands out every pending job and reports it done with what
// result says of it (nil: no result).
func runAll(t *testing.T, s *Scheduler, result func(j *Job) *Result) []*Job {
	t.Helper()
	var ran []*Job
	for range 100 {
		j, err := s.Next(context.Background(), "w")
		if errors.Is(err, ErrNoJob) {
			return ran
		}
		if err != nil {
			t.Fatal(err)
		}
		ran = append(ran, j)
		if err := s.Update(context.Background(), "w", j.ID, Done, "", result(j)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("jobs keep coming")
	return nil
}

func TestRedactionQueryValidation(t *testing.T) {
	ok := []string{
		`{ resource.service.name = "x" && span.foo = "y" }`,
		`{ span.a = "1" || resource.b = 2 }`,
		`{ span.a = "1" } || { resource.b = "2" }`,
		`{ span.a = "1" } && { span.b = true }`,
	}
	for _, q := range ok {
		if _, err := redaction.ParseQuery(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	bad := map[string]string{
		`{ span.a != "x" }`:                        "operator !=",
		`{ span.a =~ "x.*" }`:                      "operator =~",
		`{ name = "x" }`:                           "only resource. and span. attributes",
		`{ .a = "x" }`:                             "only resource. and span. attributes",
		`{ event.a = "x" }`:                        "only resource. and span. attributes",
		`{ span.a = "x" } | count() > 1`:           "a pipeline",
		`{}`:                                       "an empty filter",
		`{ span.a = "x" } >> { span.b = 1 }`:       "operator >>",
		`{ span.a = "x" } with (most_recent=true)`: "hints",
		`{ !(span.a = "x") }`:                      "not a comparison",
		`{ span.a = nil }`:                         "nil",
		`{ span.a = `:                              "query:",
	}
	reg := prometheus.NewRegistry()
	e := newRedactEnv(t)
	s := e.scheduler(reg)
	for q, want := range bad {
		_, err := s.SubmitRedaction(context.Background(), redaction.Spec{Tenant: "a", Query: q})
		if !errors.Is(err, redaction.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an invalid request naming %q", q, err, want)
		}
	}
	for _, spec := range []redaction.Spec{
		{Tenant: "a"},
		{Query: `{ span.a = "x" }`},
		{Tenant: "a", TraceIDs: []string{"zz"}},
		{Tenant: "a", TraceIDs: []string{"0"}},
		{Tenant: "a", TraceIDs: []string{strings.Repeat("a", 33)}},
		{Tenant: "a", TraceIDs: []string{"ab"}, Query: `{ span.a = "x" }`},
		{Tenant: "a", TraceIDs: []string{"ab"}, Start: now0, End: now0.Add(-time.Second)},
	} {
		if _, err := s.SubmitRedaction(context.Background(), spec); !errors.Is(err, redaction.ErrInvalid) {
			t.Errorf("%+v: %v, want an invalid request", spec, err)
		}
	}
	if n := testutil.ToFloat64(s.m.redactions.WithLabelValues("invalid")); n != float64(len(bad)+7) {
		t.Fatalf("%v invalid requests counted, want %d", n, len(bad)+7)
	}
	if len(s.Redactions()) != 0 {
		t.Fatal("an invalid request was queued")
	}
}

// A request by trace IDs: jobs for the blocks whose ranges may hold them
// (in the window), the trace IDs handed out with each job, counts added up
// from the results, and the request and its progress kept across a
// restart.
func TestRedactionRequestLifecycle(t *testing.T) {
	e := newRedactEnv(t)
	end := now0.Add(-time.Hour)
	hold1 := rangeMeta("a", "10", "1f", end)
	hold2 := rangeMeta("a", "1a", "2f", end.Add(time.Minute))
	miss := rangeMeta("a", "30", "4f", end)
	early := rangeMeta("a", "10", "2f", end.Add(-48*time.Hour)) // before the window
	later := rangeMeta("a", "10", "2f", end)                    // cut after the request
	later.CreatedAt = now0.Add(time.Second)
	e.blocks.set("a", []*block.Meta{hold1, hold2, miss, early, later})
	e.blocks.set("b", []*block.Meta{rangeMeta("b", "10", "2f", end)})
	s := e.scheduler(nil)
	ctx := context.Background()
	ids := []string{"1b" + strings.Repeat("0", 30), "12" + strings.Repeat("0", 30)}
	st, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: ids, Start: end.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != RequestRedacting || st.Counts.Pending != 2 || st.Generation != 1 {
		t.Fatalf("after submission: %+v, want 2 pending jobs (the two blocks that may hold the traces)", st)
	}

	// One job runs, then the scheduler restarts.
	j, err := s.Next(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if j.Type != JobRedaction || j.Redact == nil || len(j.Redact.TraceIDs) != 2 || j.Redact.Request != st.ID || len(j.Blocks) != 1 {
		t.Fatalf("job handed out: %+v (redact %+v)", j, j.Redact)
	}
	if j.Blocks[0] != hold1.BlockID && j.Blocks[0] != hold2.BlockID {
		t.Fatalf("job on block %s, which cannot hold the traces", j.Blocks[0])
	}
	out := uuid.New()
	if err := s.Update(ctx, "w", j.ID, Done, "", &Result{TraceIDs: []string{ids[1]}, Spans: 4, Rewritten: true, Output: out}); err != nil {
		t.Fatal(err)
	}
	s2 := e.scheduler(nil)
	got, err := s2.RedactionStatus("a", st.ID)
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if got.State != RequestRedacting || got.Counts.Succeeded != 1 || got.Counts.Pending != 1 || got.Counts.Spans != 4 || got.Counts.BlocksRewritten != 1 {
		t.Fatalf("after a restart: %+v", got)
	}
	if _, err := s2.RedactionStatus("b", st.ID); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("another tenant reads the request: %v", err)
	}
	// The other job: the block list still lists the first input (not
	// polled yet); it was read, so the request is done.
	runAll(t, s2, func(j *Job) *Result {
		return &Result{TraceIDs: []string{ids[0], ids[1]}, Spans: 6, Rewritten: true, Output: uuid.New()}
	})
	got, _ = s2.RedactionStatus("a", st.ID)
	if got.State != RequestDone || got.Counts.Traces != 2 || got.Counts.Spans != 10 || got.Counts.BlocksRewritten != 2 || got.Counts.Succeeded != 2 {
		t.Fatalf("done: %+v", got)
	}
	// Its counts outlive its jobs.
	e.now = e.now.Add(2 * time.Hour)
	s2.mu.Lock()
	s2.expireLocked()
	s2.mu.Unlock()
	if len(s2.Jobs()) != 0 {
		t.Fatalf("%d jobs left after the prune age", len(s2.Jobs()))
	}
	if _, err := s2.RedactionStatus("a", st.ID); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("a done request outlives the prune age: %v", err)
	}
}

// A query request: find jobs on every block in the window, then rewrite
// jobs for the union of what they found; a dry run is the same, with its
// jobs told so.
func TestRedactionByQuery(t *testing.T) {
	e := newRedactEnv(t)
	end := now0.Add(-time.Hour)
	b1, b2, b3 := rangeMeta("a", "10", "1f", end), rangeMeta("a", "20", "2f", end), rangeMeta("a", "30", "3f", end)
	e.blocks.set("a", []*block.Meta{b1, b2, b3})
	s := e.scheduler(nil)
	ctx := context.Background()
	st, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", Query: `{ span.a = "x" }`, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != RequestFinding || st.Counts.Pending != 3 {
		t.Fatalf("after submission: %+v, want 3 find jobs", st)
	}
	t1, t2 := "12"+strings.Repeat("0", 30), "25"+strings.Repeat("0", 30)
	runAll(t, s, func(j *Job) *Result {
		if !j.Redact.Find {
			if len(j.Redact.TraceIDs) != 2 {
				t.Fatalf("rewrite job handed out with trace IDs %v, want the 2 found", j.Redact.TraceIDs)
			}
			return &Result{TraceIDs: j.Redact.TraceIDs[:1], Spans: 3}
		}
		if j.Redact.Query == "" {
			t.Fatalf("a find job without its query: %+v", j.Redact)
		}
		switch j.Blocks[0] {
		case b1.BlockID:
			return &Result{TraceIDs: []string{t1}}
		case b2.BlockID:
			return &Result{TraceIDs: []string{t2}}
		}
		return &Result{}
	})
	got, _ := s.RedactionStatus("a", st.ID)
	if got.State != RequestDone {
		t.Fatalf("after the finds and rewrites: %+v", got)
	}
	var rewrites int
	for _, j := range s.Jobs() {
		if j.Redact != nil && !j.Redact.Find {
			rewrites++
			if !j.Redact.DryRun || j.Blocks[0] == b3.BlockID {
				t.Fatalf("rewrite job %+v on block %s", j.Redact, j.Blocks[0])
			}
		}
	}
	if rewrites != 2 {
		t.Fatalf("%d rewrite jobs, want 2 (the blocks whose ranges hold the found traces)", rewrites)
	}
	if got.Counts.Spans != 6 || got.Counts.Traces != 1 {
		t.Fatalf("counts %+v, want 6 spans of 1 trace", got.Counts)
	}
}

// Compaction is not planned for a tenant while a request of it is not
// finished, and a request waits for the compactions running at
// submission, then for the block list to show their output.
func TestRedactionHoldsCompaction(t *testing.T) {
	e := newRedactEnv(t)
	var metas []*block.Meta
	for i := range 6 {
		metas = append(metas, rangeMeta("a", "10", "2f", now0.Add(-time.Duration(10+i)*time.Minute)))
	}
	e.blocks.set("a", metas)
	e.blocks.set("b", []*block.Meta{rangeMeta("b", "10", "2f", now0.Add(-10*time.Minute)), rangeMeta("b", "10", "2f", now0.Add(-11*time.Minute))})
	s := e.scheduler(nil)
	ctx := context.Background()
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	var comp *Job
	for _, j := range s.Jobs() {
		if j.Type == JobCompaction && j.Tenant == "a" {
			comp = &j
			break
		}
	}
	if comp == nil {
		t.Fatal("no compaction planned for tenant a")
	}
	st, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: []string{"15" + strings.Repeat("0", 30)}})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != RequestQueued || st.Counts.Pending != 0 {
		t.Fatalf("submitted while a compaction is pending: %+v, want it queued", st)
	}
	// The compactions run (no redaction job among them).
	runAll(t, s, func(j *Job) *Result {
		if j.Type == JobRedaction {
			t.Fatalf("redaction job %s handed out while a compaction was pending", j.ID)
		}
		return nil
	})
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.RedactionStatus("a", st.ID)
	if got.State != RequestQueued {
		t.Fatalf("the block list still shows the compaction's inputs, yet the request is %s", got.State)
	}
	// The block list shows the outputs: one block in place of the inputs
	// of each compaction.
	var left []*block.Meta
	inputs := map[uuid.UUID]bool{}
	for _, j := range s.Jobs() {
		if j.Type == JobCompaction && j.Tenant == "a" {
			for _, id := range j.Blocks {
				inputs[id] = true
			}
			left = append(left, rangeMeta("a", "10", "2f", now0.Add(-5*time.Minute)))
		}
	}
	for _, m := range metas {
		if !inputs[m.BlockID] {
			left = append(left, m)
		}
	}
	e.blocks.set("a", left)
	// New blocks of a would be compactable, b's too.
	e.blocks.set("a", append(left, rangeMeta("a", "50", "5f", now0.Add(-3*time.Minute)), rangeMeta("a", "50", "5f", now0.Add(-4*time.Minute))))
	e.now = e.now.Add(time.Second)
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = s.RedactionStatus("a", st.ID)
	if got.State != RequestRedacting || got.Counts.Pending == 0 {
		t.Fatalf("after the compaction: %+v, want rewrite jobs", got)
	}
	for _, j := range s.Jobs() {
		if j.Type == JobCompaction && j.Tenant == "a" && j.State == Pending {
			t.Fatalf("compaction %s planned for tenant a during its redaction", j.ID)
		}
	}
	// Other tenants compact as before.
	if count(s, JobCompaction, Succeeded)+count(s, JobCompaction, Pending) == 0 {
		t.Fatal("no compaction at all")
	}
	runAll(t, s, func(j *Job) *Result { return &Result{} })
	if got, _ = s.RedactionStatus("a", st.ID); got.State != RequestDone {
		t.Fatalf("after its jobs: %+v", got)
	}
	e.now = e.now.Add(time.Second)
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	if count(s, JobCompaction, Pending) == 0 {
		t.Fatal("compaction of tenant a does not resume once the request is done")
	}
}

// A block let go before its job read it: the request reads the block list
// again after the rescan delay and works on the block that took its place;
// past the generations it fails rather than report success.
func TestRedactionRescans(t *testing.T) {
	e := newRedactEnv(t)
	b1 := rangeMeta("a", "10", "2f", now0.Add(-time.Hour))
	e.blocks.set("a", []*block.Meta{b1})
	s := e.scheduler(nil)
	ctx := context.Background()
	st, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: []string{"15" + strings.Repeat("0", 30)}})
	if err != nil {
		t.Fatal(err)
	}
	gone := func(*Job) *Result { return &Result{Gone: true} }
	runAll(t, s, gone)
	got, _ := s.RedactionStatus("a", st.ID)
	if got.State != RequestQueued || got.Generation != 1 {
		t.Fatalf("after a job found its block gone: %+v, want it queued for a rescan", got)
	}
	// Compacted elsewhere: the output takes the input's place.
	b2 := rangeMeta("a", "10", "2f", now0.Add(-time.Hour))
	e.blocks.set("a", []*block.Meta{b2})
	if err := s.AdvanceRedactions(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.RedactionStatus("a", st.ID); got.Generation != 1 {
		t.Fatalf("rescanned before the rescan delay: %+v", got)
	}
	e.now = e.now.Add(2 * time.Minute)
	if err := s.AdvanceRedactions(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := runAll(t, s, gone)
	if len(jobs) != 1 || jobs[0].Blocks[0] != b2.BlockID {
		t.Fatalf("generation 2 ran %d jobs, want one on the new block", len(jobs))
	}
	for range 3 {
		e.now = e.now.Add(2 * time.Minute)
		e.blocks.set("a", []*block.Meta{rangeMeta("a", "10", "2f", now0.Add(-time.Hour))})
		if err := s.AdvanceRedactions(ctx); err != nil {
			t.Fatal(err)
		}
		runAll(t, s, gone)
	}
	got, _ = s.RedactionStatus("a", st.ID)
	if got.State != RequestFailed || !strings.Contains(got.Error, "generations") {
		t.Fatalf("after the last generation: %+v, want it failed", got)
	}
}

// Over gRPC: a request is submitted and read with the Client, a worker's
// Next hands out the job with its trace IDs, and its Update carries the
// result; an invalid request is InvalidArgument, an unknown one NotFound.
func TestRedactionOverGRPC(t *testing.T) {
	e := newRedactEnv(t)
	b := rangeMeta("a", "10", "2f", now0.Add(-time.Hour))
	e.blocks.set("a", []*block.Meta{b})
	s := e.scheduler(nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	RegisterService(gs, s)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClient(conn)
	ctx := context.Background()
	id := "15" + strings.Repeat("0", 30)
	st, err := c.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Next(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if j.Redact == nil || len(j.Redact.TraceIDs) != 1 || j.Redact.TraceIDs[0] != id {
		t.Fatalf("job over gRPC: %+v", j.Redact)
	}
	if err := c.Update(ctx, "w", j.ID, Done, "", &Result{TraceIDs: []string{id}, Spans: 7, Rewritten: true, Output: uuid.New()}); err != nil {
		t.Fatal(err)
	}
	got, err := c.RedactionStatus(ctx, "a", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != RequestDone || got.Counts.Spans != 7 || got.Counts.Traces != 1 || got.Counts.BlocksRewritten != 1 {
		t.Fatalf("status over gRPC: %+v", got)
	}
	if _, err := c.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", Query: `{ span.a > 1 }`}); status.Code(errors.Unwrap(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "operator >") {
		t.Fatalf("an invalid request over gRPC: %v", err)
	}
	if _, err := c.RedactionStatus(ctx, "a", "nope"); status.Code(errors.Unwrap(err)) != codes.NotFound {
		t.Fatalf("an unknown request over gRPC: %v", err)
	}
}

// A job of an earlier generation that found its block gone does not send
// a later generation, whose jobs all read their blocks, to yet another
// rescan: the request is done once a generation reads every block. (The
// crash test found it: a worker killed after it let its input go, and the
// input deleted before the retry, reports Gone; the request then went
// through every generation and failed.)
func TestRedactionGoneOnlyCountsInItsGeneration(t *testing.T) {
	e := newRedactEnv(t)
	b1 := rangeMeta("a", "10", "2f", now0.Add(-time.Hour))
	e.blocks.set("a", []*block.Meta{b1})
	s := e.scheduler(nil)
	ctx := context.Background()
	st, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: []string{"15" + strings.Repeat("0", 30)}})
	if err != nil {
		t.Fatal(err)
	}
	runAll(t, s, func(*Job) *Result { return &Result{Gone: true} })
	b2 := rangeMeta("a", "10", "2f", now0.Add(-time.Hour))
	e.blocks.set("a", []*block.Meta{b2})
	e.now = e.now.Add(2 * time.Minute)
	if err := s.AdvanceRedactions(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := runAll(t, s, func(*Job) *Result {
		return &Result{TraceIDs: []string{"15" + strings.Repeat("0", 30)}, Spans: 4, Rewritten: true, Output: uuid.New()}
	})
	if len(jobs) != 1 || jobs[0].Blocks[0] != b2.BlockID {
		t.Fatalf("generation 2 ran %d jobs, want one on the new block", len(jobs))
	}
	got, _ := s.RedactionStatus("a", st.ID)
	if got.State != RequestDone || got.Generation != 2 {
		t.Fatalf("after generation 2 read every block: %s (generation %d, error %q), want done in generation 2", got.State, got.Generation, got.Error)
	}
	// And after a restart, from work.json.
	s2 := e.scheduler(nil)
	if got, _ := s2.RedactionStatus("a", st.ID); got.State != RequestDone {
		t.Fatalf("after a restart: %s", got.State)
	}
}

// A tenant's requests run one at a time, in the order they were made;
// another tenant's request does not wait.
func TestRedactionRequestsOfATenantRunInTurn(t *testing.T) {
	e := newRedactEnv(t)
	end := now0.Add(-time.Hour)
	e.blocks.set("a", []*block.Meta{rangeMeta("a", "10", "2f", end)})
	e.blocks.set("b", []*block.Meta{rangeMeta("b", "10", "2f", end)})
	s := e.scheduler(nil)
	ctx := context.Background()
	id := func(p string) []string { return []string{p + strings.Repeat("0", 30)} }
	first, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: id("12")})
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Millisecond) // made after the first (the same instant orders them by ID)
	second, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "a", TraceIDs: id("1b")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.SubmitRedaction(ctx, redaction.Spec{Tenant: "b", TraceIDs: id("1b")})
	if err != nil {
		t.Fatal(err)
	}
	if first.State != RequestRedacting || second.State != RequestQueued || second.Counts.Pending != 0 || other.State != RequestRedacting {
		t.Fatalf("after submission: first %s, second %s (%d jobs pending), other tenant's %s; want redacting, queued (none), redacting",
			first.State, second.State, second.Counts.Pending, other.State)
	}
	// The first request's job and the other tenant's run; the second is
	// planned only once the first is done.
	var ran []string
	for range 10 {
		jobs := runAll(t, s, func(j *Job) *Result { return &Result{Spans: 1, Rewritten: true, Output: uuid.New()} })
		for _, j := range jobs {
			ran = append(ran, j.Tenant+"/"+j.Redact.Request)
		}
		if err := s.AdvanceRedactions(ctx); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.RedactionStatus("a", second.ID); st.Done() {
			break
		}
	}
	want := []string{"a/" + first.ID, "b/" + other.ID, "a/" + second.ID}
	if len(ran) != 3 || ran[2] != want[2] || !(ran[0] == want[0] && ran[1] == want[1] || ran[0] == want[1] && ran[1] == want[0]) {
		t.Fatalf("jobs ran for %v, want those of %v (the second request of tenant a last)", ran, want)
	}
	for _, q := range []*RequestStatus{first, second, other} {
		if st, _ := s.RedactionStatus(q.Tenant, q.ID); st.State != RequestDone {
			t.Errorf("request %s of tenant %s ended %s, want done", q.ID, q.Tenant, st.State)
		}
	}
}
