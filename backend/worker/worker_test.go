package worker

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/backend/scheduler"
)

type blocks map[string][]compaction.Block

func (b blocks) Tenants() []string {
	var out []string
	for t := range b {
		out = append(out, t)
	}
	return out
}
func (b blocks) Compactable(t string) []compaction.Block { return b[t] }

func newScheduler(t *testing.T, nBlocks int, lease time.Duration) *scheduler.Scheduler {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var bs []compaction.Block
	now := time.Now()
	for i := range nBlocks {
		end := now.Add(-time.Duration(i+1) * time.Second)
		bs = append(bs, compaction.Block{ID: uuid.New(), Start: end.Add(-time.Second), End: end, Size: 1, Traces: 1})
	}
	s := scheduler.New(bkt, blocks{"t": bs}, nil, scheduler.Settings{Compaction: compaction.DefaultConfig(),
		JobTimeout: 20 * time.Millisecond, Lease: lease, PruneAge: time.Hour}, nil, nil)
	s.Activate()
	if n, err := s.Plan(context.Background()); err != nil || n == 0 {
		t.Fatalf("planned %d jobs: %v", n, err)
	}
	return s
}

func settings() Settings {
	return Settings{FinishOnShutdownTimeout: time.Second, RenewEvery: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

func states(s *scheduler.Scheduler) map[scheduler.State]int {
	out := map[scheduler.State]int{}
	for _, j := range s.Jobs() {
		out[j.State]++
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWorkersRunEveryJobOnce: two workers run every job, each once.
func TestWorkersRunEveryJobOnce(t *testing.T) {
	s := newScheduler(t, 16, time.Minute)
	total := len(s.Jobs())
	runEveryJobOnce(t, s, s, total)
}

// TestStopGivesBackAJobThatDoesNotFinish: a stopping worker lets its job
// finish within finish_on_shutdown_timeout, else cancels it and gives it
// back, without counting an attempt.
func TestStopGivesBackAJobThatDoesNotFinish(t *testing.T) {
	s := newScheduler(t, 2, time.Minute) // one job
	started := make(chan struct{})
	var once sync.Once
	stuck := func(ctx context.Context, j *scheduler.Job) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}
	cfg := settings()
	cfg.FinishOnShutdownTimeout = 50 * time.Millisecond
	w := New("w", s, map[scheduler.JobType]Runner{scheduler.JobCompaction: stuck}, cfg, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := s.Jobs()
	if len(jobs) != 1 || jobs[0].State != scheduler.Pending || jobs[0].Attempts != 0 {
		t.Fatalf("job after the stop: %+v", jobs)
	}

	// A job that finishes within the timeout is reported done.
	quick := func(ctx context.Context, j *scheduler.Job) error { time.Sleep(20 * time.Millisecond); return nil }
	cfg.FinishOnShutdownTimeout = 5 * time.Second
	w = New("w", s, map[scheduler.JobType]Runner{scheduler.JobCompaction: quick}, cfg, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to start", func() bool { return states(s)[scheduler.Running] == 1 || states(s)[scheduler.Succeeded] == 1 })
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := states(s); st[scheduler.Succeeded] != 1 {
		t.Fatalf("states after a stop during a quick job: %v", st)
	}
}

// TestFailureIsRetried: a job that fails is tried again, and failed after
// MaxAttempts.
func TestFailureIsRetried(t *testing.T) {
	s := newScheduler(t, 2, time.Minute)
	var runs atomic.Int32
	fail := func(ctx context.Context, j *scheduler.Job) error {
		runs.Add(1)
		return errors.New("bucket unreachable")
	}
	w := New("w", s, map[scheduler.JobType]Runner{scheduler.JobCompaction: fail}, settings(), nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to fail", func() bool { return states(s)[scheduler.Failed] == 1 })
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != scheduler.MaxAttempts {
		t.Fatalf("ran %d times, want %d", n, scheduler.MaxAttempts)
	}
	if j := s.Jobs()[0]; j.Error != "bucket unreachable" {
		t.Fatalf("job error %q", j.Error)
	}
}

// TestLostLeaseStopsTheJob: a worker whose job was handed to another (its
// lease ran out while it could not renew) stops its run at its next
// renewal.
func TestLostLeaseStopsTheJob(t *testing.T) {
	s := newScheduler(t, 2, 300*time.Millisecond)
	cancelled := make(chan struct{})
	slow := func(ctx context.Context, j *scheduler.Job) error {
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return nil
		}
	}
	w1 := New("w1", s, map[scheduler.JobType]Runner{scheduler.JobCompaction: slow}, settings(), nil)
	if err := w1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w1 to take the job", func() bool { return states(s)[scheduler.Running] == 1 })
	id := s.Jobs()[0].ID
	// As if w1's lease had run out: the job goes back and w2 takes it.
	if err := s.Update(context.Background(), "w1", id, scheduler.Release, ""); err != nil {
		t.Fatal(err)
	}
	j, err := s.Next(context.Background(), "w2")
	if err != nil || j.ID != id {
		t.Fatalf("w2 takes the job: %v %v", j, err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("w1's run was not cancelled once the job was w2's")
	}
	if err := w1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), "w2", j.ID, scheduler.Done, ""); err != nil {
		t.Fatalf("w2 reports the job: %v", err)
	}
}

// TestWorkersOverGRPC: two workers of other processes (gRPC on loopback)
// run every job once; a report on a job that is no longer the worker's is
// refused as such.
func TestWorkersOverGRPC(t *testing.T) {
	s := newScheduler(t, 12, time.Minute)
	total := len(s.Jobs())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	scheduler.RegisterService(gs, s)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := scheduler.NewClient(conn)
	runEveryJobOnce(t, s, client, total)
	if err := client.Update(context.Background(), "w1", s.Jobs()[0].ID, scheduler.Done, ""); !errors.Is(err, scheduler.ErrNotYours) {
		t.Fatalf("a report on a finished job: %v", err)
	}
}

// runEveryJobOnce runs two workers asking sched for jobs until the total
// jobs of s have succeeded, and checks that each job ran once.
func runEveryJobOnce(t *testing.T, s *scheduler.Scheduler, sched Scheduler, total int) {
	t.Helper()
	var mu sync.Mutex
	ran := map[string]int{}
	run := func(ctx context.Context, j *scheduler.Job) error {
		mu.Lock()
		ran[j.ID]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil
	}
	var ws []*Worker
	for _, name := range []string{"w1", "w2"} {
		w := New(name, sched, map[scheduler.JobType]Runner{scheduler.JobCompaction: run}, settings(), nil)
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	waitFor(t, "every job done", func() bool { return states(s)[scheduler.Succeeded] == total })
	for _, w := range ws {
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != total {
		t.Fatalf("%d of %d jobs ran", len(ran), total)
	}
	for id, n := range ran {
		if n != 1 {
			t.Fatalf("job %s ran %d times", id, n)
		}
	}
}

// TestAdmitHoldsJobs: while Admit refuses (the process is short of
// memory), the worker takes no job; once it admits, the jobs run.
func TestAdmitHoldsJobs(t *testing.T) {
	s := newScheduler(t, 4, time.Minute)
	var short atomic.Bool
	short.Store(true)
	cfg := settings()
	cfg.MaxBackoff = 10 * time.Millisecond
	cfg.Admit = func() error {
		if short.Load() {
			return errors.New("short of memory")
		}
		return nil
	}
	done := func(ctx context.Context, j *scheduler.Job) error { return nil }
	w := New("w", s, map[scheduler.JobType]Runner{scheduler.JobCompaction: done}, cfg, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	if st := states(s); st[scheduler.Running]+st[scheduler.Succeeded] != 0 {
		t.Fatalf("jobs taken while Admit refused: %v", st)
	}
	short.Store(false)
	waitFor(t, "the jobs once admitted", func() bool { return states(s)[scheduler.Pending] == 0 && states(s)[scheduler.Running] == 0 })
}
