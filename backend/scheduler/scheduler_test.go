package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/backend/compaction"
)

// staticBlocks is a block list that changes only when a test says so.
type staticBlocks struct {
	mu     sync.Mutex
	blocks map[string][]compaction.Block
}

func (b *staticBlocks) Tenants() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for t := range b.blocks {
		out = append(out, t)
	}
	return out
}

func (b *staticBlocks) Compactable(tenant string) []compaction.Block {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]compaction.Block(nil), b.blocks[tenant]...)
}

type noLimits map[string]bool

func (n noLimits) CompactionDisabled(t string) bool { return n[t] }

var now0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func someBlocks(n int) []compaction.Block {
	var out []compaction.Block
	for i := range n {
		end := now0.Add(-time.Duration(i+1) * time.Minute)
		out = append(out, compaction.Block{ID: uuid.New(), Start: end.Add(-time.Minute), End: end, Size: 1 << 20, Traces: 100})
	}
	return out
}

func settings() Settings {
	return Settings{Compaction: compaction.DefaultConfig(), MaxJobsPerTenant: 100, JobTimeout: 50 * time.Millisecond,
		Lease: time.Minute, PruneAge: time.Hour, RetentionInterval: time.Hour}
}

type env struct {
	t      *testing.T
	bkt    *filesystem.Bucket
	blocks *staticBlocks
	now    time.Time
}

func newEnv(t *testing.T) *env {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, bkt: bkt, blocks: &staticBlocks{blocks: map[string][]compaction.Block{"a": someBlocks(8), "b": someBlocks(4)}}, now: now0}
}

func (e *env) scheduler(limits Limits) *Scheduler {
	s := New(e.bkt, e.blocks, limits, settings(), nil, nil)
	s.clock = func() time.Time { return e.now }
	s.Activate()
	if err := s.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func count(s *Scheduler, t JobType, st State) int {
	n := 0
	for _, j := range s.Jobs() {
		if j.Type == t && j.State == st {
			n++
		}
	}
	return n
}

func TestPlanOnce(t *testing.T) {
	e := newEnv(t)
	s := e.scheduler(noLimits{"b": true})
	ctx := context.Background()
	n, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Tenant a: 8 blocks of level 0 in the last hours → jobs of 2..4;
	// tenant b's compaction is disabled; each tenant gets a retention job.
	if c := count(s, JobCompaction, Pending); c == 0 || n != c+2 {
		t.Fatalf("planned %d jobs, %d of them compaction", n, c)
	}
	for _, j := range s.Jobs() {
		if j.Type == JobCompaction && j.Tenant != "a" {
			t.Fatalf("compaction planned for tenant %s, whose compaction is disabled", j.Tenant)
		}
	}
	if again, err := s.Plan(ctx); err != nil || again != 0 {
		t.Fatalf("planning again added %d jobs (%v): the blocks are all in jobs", again, err)
	}
}

func TestNextHandsEachJobToOneWorker(t *testing.T) {
	e := newEnv(t)
	s := e.scheduler(nil)
	ctx := context.Background()
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	total := len(s.Jobs())
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('A' + w))
			for {
				j, err := s.Next(ctx, name)
				if errors.Is(err, ErrNoJob) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, ok := got[j.ID]; ok {
					t.Errorf("job %s handed to %s and %s", j.ID, other, name)
				}
				got[j.ID] = name
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != total {
		t.Fatalf("%d of %d jobs handed out", len(got), total)
	}
}

func TestLeaseAndRestart(t *testing.T) {
	e := newEnv(t)
	s := e.scheduler(nil)
	ctx := context.Background()
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	j, err := s.Next(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	// A restarted scheduler keeps the job w1's while its lease holds.
	s2 := e.scheduler(nil)
	for {
		k, err := s2.Next(ctx, "w2")
		if errors.Is(err, ErrNoJob) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k.ID == j.ID {
			t.Fatalf("after a restart, job %s was handed to w2 while w1's lease holds", j.ID)
		}
	}
	if err := s2.Update(ctx, "w1", j.ID, Renew, ""); err != nil {
		t.Fatalf("w1 renews after the restart: %v", err)
	}
	// w1 dies: once the lease runs out the job goes to w3, and w1 can no
	// longer report on it.
	e.now = e.now.Add(2 * time.Minute)
	k, err := s2.Next(ctx, "w3")
	if err != nil || k.ID != j.ID || k.Attempts != 2 {
		t.Fatalf("after w1's lease ran out: %v, %v", k, err)
	}
	if err := s2.Update(ctx, "w1", j.ID, Done, ""); !errors.Is(err, ErrNotYours) {
		t.Fatalf("w1 reports a job that is w3's now: %v", err)
	}
	if err := s2.Update(ctx, "w3", j.ID, Done, ""); err != nil {
		t.Fatal(err)
	}
	s3 := e.scheduler(nil)
	for _, jj := range s3.Jobs() {
		if jj.ID == j.ID && jj.State != Succeeded {
			t.Fatalf("job state after another restart: %s", jj.State)
		}
	}
}

func TestFailAndRelease(t *testing.T) {
	e := newEnv(t)
	e.blocks.blocks = map[string][]compaction.Block{"a": someBlocks(2)}
	s := e.scheduler(noLimits{})
	s.cfg.RetentionInterval = 0
	ctx := context.Background()
	if n, err := s.Plan(ctx); err != nil || n != 1 {
		t.Fatalf("planned %d (%v), want 1 job", n, err)
	}
	for i := range 5 {
		j, err := s.Next(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 { // releases are not attempts
			if err := s.Update(ctx, "w", j.ID, Release, ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := s.Update(ctx, "w", j.ID, Fail, "disk full"); err != nil {
			t.Fatal(err)
		}
	}
	jobs := s.Jobs()
	if len(jobs) != 1 || jobs[0].State != Failed || jobs[0].Attempts != MaxAttempts || jobs[0].Error != "disk full" {
		t.Fatalf("after 2 releases and 3 failures: %+v", jobs)
	}
	if _, err := s.Next(ctx, "w"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("a failed job was handed out again: %v", err)
	}
}

// TestRunOneAtATime: of two schedulers of one bucket, one runs; when it
// stops, the other takes over with the job state the first left.
func TestRunOneAtATime(t *testing.T) {
	e := newEnv(t)
	mk := func(owner string) (*Scheduler, *Lock) {
		s := New(e.bkt, e.blocks, nil, settings(), nil, nil)
		l := NewLock(e.bkt, owner, 3*time.Second)
		l.settle = 20 * time.Millisecond
		return s, l
	}
	s1, l1 := mk("s1")
	s2, l2 := mk("s2")
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() { defer close(done1); s1.Run(ctx1, l1, time.Hour, time.Hour) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s1.active.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !s1.active.Load() || len(s1.Jobs()) == 0 {
		t.Fatalf("s1 runs: %v, %d jobs planned", s1.active.Load(), len(s1.Jobs()))
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	go s2.Run(ctx2, l2, time.Hour, time.Hour)
	time.Sleep(200 * time.Millisecond)
	if s2.active.Load() {
		t.Fatal("s2 runs while s1 holds the lock")
	}
	if _, err := s2.Next(context.Background(), "w"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("s2, waiting, handed out a job: %v", err)
	}
	taken, err := s1.Next(context.Background(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Update(context.Background(), "w", taken.ID, Renew, ""); !errors.Is(err, ErrInactive) {
		t.Fatalf("s2, waiting, took a report: %v", err)
	}
	stop1()
	<-done1
	deadline = time.Now().Add(5 * time.Second)
	for !s2.active.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !s2.active.Load() {
		t.Fatal("s2 did not take over once s1 stopped")
	}
	// s2 knows s1's jobs, and that w runs one of them.
	if err := s2.Update(context.Background(), "w", taken.ID, Done, ""); err != nil {
		t.Fatalf("w reports to s2 the job s1 gave it: %v", err)
	}
}

func TestStatusAndMetrics(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	s := New(e.bkt, e.blocks, nil, settings(), reg, nil)
	s.clock = func() time.Time { return e.now }
	s.Activate()
	ctx := context.Background()
	n, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Next(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := s.WriteStatus(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[0], "backend scheduler: running") || !strings.Contains(lines[3], j.ID) || !strings.Contains(lines[3], "running") || !strings.Contains(lines[3], "w1") {
		t.Fatalf("status page, the running job first:\n%s", out.String())
	}
	created := testutil.ToFloat64(s.m.created.WithLabelValues("a", "compaction")) + testutil.ToFloat64(s.m.created.WithLabelValues("b", "compaction")) +
		testutil.ToFloat64(s.m.created.WithLabelValues("a", "retention")) + testutil.ToFloat64(s.m.created.WithLabelValues("b", "retention"))
	if int(created) != n {
		t.Fatalf("jobs created metric %v, planned %d", created, n)
	}
	if a := testutil.ToFloat64(s.m.active.WithLabelValues(j.Tenant, string(j.Type))); a != 1 {
		t.Fatalf("active jobs metric %v", a)
	}
	if err := s.Update(ctx, "w1", j.ID, Done, ""); err != nil {
		t.Fatal(err)
	}
	if c := testutil.ToFloat64(s.m.completed.WithLabelValues(j.Tenant, string(j.Type))); c != 1 {
		t.Fatalf("completed metric %v", c)
	}
}

// A tenant whose blocks were all let go has none listed, but its
// directory still holds them until retention deletes them: it gets
// retention jobs too, and no compaction job.
func TestRetentionOfTenantWithoutListedBlocks(t *testing.T) {
	e := newEnv(t)
	mark := "gone/" + uuid.NewString() + "/meta.compacted.json"
	if err := e.bkt.Upload(context.Background(), mark, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	s := e.scheduler(nil)
	if _, err := s.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	retention := 0
	for _, j := range s.Jobs() {
		if j.Tenant == "gone" {
			if j.Type != JobRetention {
				t.Fatalf("a %s job for a tenant without listed blocks", j.Type)
			}
			retention++
		}
	}
	if retention != 1 {
		t.Fatalf("%d retention jobs for the tenant whose blocks were all let go, want 1", retention)
	}
}

// TestTakeOverKeepsRunningJobs: a scheduler that takes over after the one
// running was killed starts at least a lease later (it waits for the
// lock's lease), when every running job's lease in work.json has run out.
// Those jobs stay their workers', which could not renew while no scheduler
// ran: none is handed to a second worker while the first may still run
// it. A worker that is gone loses its job a lease later.
func TestTakeOverKeepsRunningJobs(t *testing.T) {
	e := newEnv(t)
	s := e.scheduler(nil)
	ctx := context.Background()
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	j, err := s.Next(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Minute) // the lease is one minute
	s2 := e.scheduler(nil)
	for {
		k, err := s2.Next(ctx, "w2")
		if errors.Is(err, ErrNoJob) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k.ID == j.ID {
			t.Fatalf("after a take-over, job %s of w1 was handed to w2 before w1 could renew", j.ID)
		}
	}
	if err := s2.Update(ctx, "w1", j.ID, Renew, ""); err != nil {
		t.Fatalf("w1 renews after the take-over: %v", err)
	}
	e.now = e.now.Add(2 * time.Minute) // w1 is gone after all
	if k, err := s2.Next(ctx, "w3"); err != nil || k.ID != j.ID {
		t.Fatalf("a lease after w1's last renewal: %v, %v; want job %s", k, err, j.ID)
	}
}
