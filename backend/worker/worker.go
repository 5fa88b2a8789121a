// Package worker is the backend worker: it asks the backend scheduler for
// a job, runs it, renews its lease while it runs, and reports the outcome.
// Workers keep no state: any number can run, in process with the
// scheduler or as processes of their own.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weftdb/weft/backend/scheduler"
)

// Scheduler is what a worker asks for jobs: *scheduler.Scheduler in
// process, its gRPC client between processes. Next answers
// scheduler.ErrNoJob when it has no job to give.
type Scheduler interface {
	Next(ctx context.Context, worker string) (*scheduler.Job, error)
	Update(ctx context.Context, worker, id string, o scheduler.Outcome, errMsg string, res ...*scheduler.Result) error
}

// Runner runs one job of a type. It must stop soon after ctx is done, and
// must be safe to run again on the same job (after a crash, or on another
// worker once a lease ran out). What it sets in j.Result is reported with
// Done.
type Runner func(ctx context.Context, j *scheduler.Job) error

// Settings tune a worker (backend_worker in the config).
type Settings struct {
	// FinishOnShutdownTimeout is how long a stopping worker lets its job
	// run before it cancels it and gives it back.
	FinishOnShutdownTimeout time.Duration
	// RenewEvery is how often the lease of a running job is renewed when
	// the job does not say its lease (a third of it otherwise).
	RenewEvery time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed Next.
	MinBackoff, MaxBackoff time.Duration
	// Admit, when set, is asked before each request for a job: while it
	// answers an error (the process is short of memory), the worker takes
	// no job and asks again after MaxBackoff.
	Admit func() error
}

// Worker runs backend jobs.
type Worker struct {
	name    string
	sched   Scheduler
	runners map[scheduler.JobType]Runner
	cfg     Settings
	logger  *slog.Logger

	stopAsking context.CancelFunc // ends the wait for the next job
	stopJob    context.CancelFunc // cancels the job running
	done       chan struct{}
	mu         sync.Mutex
}

// New returns a worker called name (unique among the workers) that runs
// jobs with runners, by type.
func New(name string, sched Scheduler, runners map[scheduler.JobType]Runner, cfg Settings, logger *slog.Logger) *Worker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{name: name, sched: sched, runners: runners, cfg: cfg, logger: logger}
}

// Start runs the worker's loop until Stop.
func (w *Worker) Start(context.Context) error {
	asking, stopAsking := context.WithCancel(context.Background())
	jobs, stopJob := context.WithCancel(context.Background())
	w.mu.Lock()
	w.stopAsking, w.stopJob, w.done = stopAsking, stopJob, make(chan struct{})
	w.mu.Unlock()
	go w.loop(asking, jobs)
	return nil
}

// Stop asks for no more jobs, lets the job running finish within
// FinishOnShutdownTimeout (or ctx's deadline, if sooner), and otherwise
// cancels it and gives it back to the scheduler.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	stopAsking, stopJob, done := w.stopAsking, w.stopJob, w.done
	w.mu.Unlock()
	if done == nil {
		return nil
	}
	stopAsking()
	timer := time.NewTimer(w.cfg.FinishOnShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	stopJob()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot stop backend worker %s: the job did not stop: %w", w.name, ctx.Err())
	}
}

func (w *Worker) loop(asking, jobs context.Context) {
	defer close(w.done)
	backoff := w.cfg.MinBackoff
	for asking.Err() == nil {
		if w.cfg.Admit != nil && w.cfg.Admit() != nil {
			select {
			case <-time.After(w.cfg.MaxBackoff):
			case <-asking.Done():
				return
			}
			continue
		}
		j, err := w.sched.Next(asking, w.name)
		switch {
		case errors.Is(err, scheduler.ErrNoJob):
			backoff = w.cfg.MinBackoff
			continue
		case err != nil:
			if asking.Err() != nil {
				return
			}
			w.logger.Warn("backend worker cannot get a job", "worker", w.name, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-asking.Done():
				return
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
			continue
		}
		backoff = w.cfg.MinBackoff
		w.run(jobs, j)
	}
}

// run runs one job, renewing its lease, and reports how it ended.
func (w *Worker) run(ctx context.Context, j *scheduler.Job) {
	// Reports use a context of their own: a job cancelled at shutdown is
	// still given back.
	report := func(o scheduler.Outcome, msg string) {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var res []*scheduler.Result
		if o == scheduler.Done && j.Result != nil {
			res = append(res, j.Result)
		}
		if err := w.sched.Update(rctx, w.name, j.ID, o, msg, res...); err != nil {
			w.logger.Warn("backend worker cannot report on its job", "worker", w.name, "job", j.ID, "outcome", o, "err", err)
		}
	}
	runner := w.runners[j.Type]
	if runner == nil {
		report(scheduler.Fail, fmt.Sprintf("worker %s cannot run %s jobs", w.name, j.Type))
		return
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		every := w.cfg.RenewEvery
		if j.Lease > 0 {
			every = j.Lease / 3
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := w.sched.Update(jctx, w.name, j.ID, scheduler.Renew, ""); errors.Is(err, scheduler.ErrNotYours) {
					w.logger.Warn("backend job lost its lease: stopping it", "worker", w.name, "job", j.ID)
					cancel()
					return
				}
			}
		}
	}()
	err := runner(jctx, j)
	lost := jctx.Err() != nil && ctx.Err() == nil // the lease was lost
	cancel()
	<-renewed
	switch {
	case lost:
	case err == nil:
		report(scheduler.Done, "")
	case ctx.Err() != nil:
		report(scheduler.Release, "")
	default:
		w.logger.Warn("backend job failed", "worker", w.name, "job", j.ID, "type", j.Type, "tenant", j.Tenant, "err", err)
		report(scheduler.Fail, err.Error())
	}
}
