// Package scheduler is the backend scheduler: it plans the jobs that keep
// a bucket's blocks in shape (compaction, retention) per tenant from the
// block list, and the jobs of the redaction requests it takes
// (redaction.go), and hands them to backend workers, one worker per job. Its
// job state (work.json) lives in object storage, so that a restarted
// scheduler resumes: a job a worker was running stays that worker's until
// its lease runs out.
//
// Workers call Next and Update: directly in process, or over gRPC between
// processes. Every job is safe to run again (a compaction's output ID is
// derived from its inputs), so a job whose worker vanished is simply
// handed out again once its lease has run out.
package scheduler

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/internal/metrics"
)

// WorkName is the object holding the scheduler's job state.
const WorkName = "work.json"

// MaxAttempts is how often a job is tried before it is failed.
const MaxAttempts = 3

// Settings are the scheduler's settings (backend_scheduler in the config).
type Settings struct {
	// Compaction plans the compaction jobs.
	Compaction compaction.Config
	// CompactionCycle is how often compaction jobs are planned.
	CompactionCycle time.Duration
	// MaxJobsPerTenant bounds the pending and running jobs of a tenant.
	MaxJobsPerTenant int
	// RetentionInterval is how often each tenant gets a retention job.
	RetentionInterval time.Duration
	// JobTimeout is how long Next waits for a job before it answers none.
	JobTimeout time.Duration
	// Lease is how long a running job stays its worker's without a
	// renewal.
	Lease time.Duration
	// PruneAge is how long finished jobs (and redaction requests) are
	// kept in work.json.
	PruneAge time.Duration
	// RedactionRescanDelay is how long a redaction request waits before
	// it reads the block list again for blocks none of its jobs read;
	// RedactionMaxGenerations bounds how often it does (then it fails).
	RedactionRescanDelay    time.Duration
	RedactionMaxGenerations int
	// RedactionPollInterval is how often unfinished redaction requests
	// are moved on; 0: at each compaction cycle and job report only.
	RedactionPollInterval time.Duration
}

// Blocks is what the scheduler reads of the block list.
type Blocks interface {
	// Tenants are the tenants with blocks.
	Tenants() []string
	// Compactable are the tenant's blocks that compaction may merge.
	Compactable(tenant string) []compaction.Block
}

// Limits are a tenant's overrides the scheduler applies.
type Limits interface {
	CompactionDisabled(tenant string) bool
}

// Scheduler plans and hands out backend jobs.
type Scheduler struct {
	bkt    objstore.Bucket
	blocks Blocks
	limits Limits
	cfg    Settings
	logger *slog.Logger
	clock  func() time.Time

	// active is set while this scheduler holds the lock (Run): only then
	// does it plan, hand out jobs and take reports.
	active atomic.Bool

	mu   sync.Mutex
	jobs map[string]*Job
	wake chan struct{} // closed and replaced when a job becomes pending
	// lastRetention is when each tenant last got a retention job.
	lastRetention map[string]time.Time
	// kinds are the (tenant, job type) pairs jobs were created for: their
	// active and pending gauges stay, at 0 when no job is in that state.
	kinds map[[2]string]bool
	// requests are the redaction requests, by ID.
	requests map[string]*Request

	m schedulerMetrics
}

type schedulerMetrics struct {
	created, completed, failed *prometheus.CounterVec
	active, pending            *prometheus.GaugeVec
	outstanding                *prometheus.GaugeVec
	redactions                 *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) schedulerMetrics {
	labels := []string{"tenant", "job_type"}
	return schedulerMetrics{
		created: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempo_backend_scheduler_jobs_created_total", Help: "Backend jobs planned, by tenant and job type.",
		}, labels)),
		completed: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempo_backend_scheduler_jobs_completed_total", Help: "Backend jobs a worker finished, by tenant and job type.",
		}, labels)),
		failed: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempo_backend_scheduler_jobs_failed_total", Help: "Attempts of backend jobs that failed (a job is given up after 3), by tenant and job type.",
		}, labels)),
		active: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tempo_backend_scheduler_jobs_active", Help: "Backend jobs a worker is running, by tenant and job type.",
		}, labels)),
		pending: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tempo_backend_scheduler_jobs_pending", Help: "Backend jobs waiting for a worker, by tenant and job type.",
		}, labels)),
		outstanding: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tempodb_compaction_outstanding_blocks", Help: "Blocks compaction could merge now (in a job or planned next), by tenant, at the last compaction cycle.",
		}, []string{"tenant"})),
		redactions: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_backend_scheduler_redaction_requests_total", Help: "Redaction requests received, by result (accepted, invalid).",
		}, []string{"result"})),
	}
}

// gaugesLocked sets the active and pending gauges from the jobs.
func (s *Scheduler) gaugesLocked() {
	s.m.active.Reset()
	s.m.pending.Reset()
	for k := range s.kinds {
		s.m.active.WithLabelValues(k[0], k[1]).Set(0)
		s.m.pending.WithLabelValues(k[0], k[1]).Set(0)
	}
	for _, j := range s.jobs {
		switch j.State {
		case Running:
			s.m.active.WithLabelValues(j.Tenant, string(j.Type)).Inc()
		case Pending:
			s.m.pending.WithLabelValues(j.Tenant, string(j.Type)).Inc()
		}
	}
}

// New returns a scheduler over the blocks of bkt, its metrics registered
// on reg (nil: not registered); Load reads its state.
func New(bkt objstore.Bucket, blocks Blocks, limits Limits, cfg Settings, reg prometheus.Registerer, logger *slog.Logger) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		bkt: bkt, blocks: blocks, limits: limits, cfg: cfg, logger: logger, clock: time.Now,
		jobs: map[string]*Job{}, wake: make(chan struct{}), lastRetention: map[string]time.Time{}, requests: map[string]*Request{},
		m: newMetrics(reg),
	}
}

// Load reads the job state from work.json; a missing object is an empty
// state. Running jobs get a full lease from now (see below).
func (s *Scheduler) Load(ctx context.Context) error {
	rc, err := s.bkt.Get(ctx, WorkName)
	if s.bkt.IsObjNotFoundErr(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", WorkName, err)
	}
	defer rc.Close()
	var w workState
	if err := json.NewDecoder(rc).Decode(&w); err != nil {
		return fmt.Errorf("cannot read %s: %w", WorkName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range w.Redactions {
		s.requests[r.ID] = r
	}
	now := s.clock()
	for _, j := range w.Jobs {
		// No scheduler ran since work.json was written (a take-over after
		// a crash waits for the lock's lease), so no worker could renew:
		// a running job gets a lease from now, for its worker to renew
		// if it is alive, rather than be handed to a second worker while
		// the first still runs it.
		if j.State == Running && j.LeaseUntil.Before(now.Add(s.cfg.Lease)) {
			j.LeaseUntil = now.Add(s.cfg.Lease)
		}
		s.jobs[j.ID] = j
		if j.Type == JobRetention && j.Created.After(s.lastRetention[j.Tenant]) {
			s.lastRetention[j.Tenant] = j.Created
		}
	}
	return nil
}

// save writes the job state to work.json. s.mu is held.
func (s *Scheduler) save(ctx context.Context) error {
	s.gaugesLocked()
	jobs := make([]*Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })
	reqs := make([]*Request, 0, len(s.requests))
	for _, r := range s.requests {
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(a, b int) bool { return reqs[a].ID < reqs[b].ID })
	b, err := json.Marshal(workState{Jobs: jobs, Redactions: reqs})
	if err != nil {
		return fmt.Errorf("cannot encode %s: %w", WorkName, err)
	}
	if err := s.bkt.Upload(ctx, WorkName, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("cannot write %s: %w", WorkName, err)
	}
	return nil
}

// workState is the content of work.json.
type workState struct {
	Jobs       []*Job     `json:"jobs"`
	Redactions []*Request `json:"redactions,omitempty"`
}

// jobID derives a job's ID from what it does, so that planning the same
// work again (after a restart) finds the job already there.
func jobID(t JobType, tenant string, blocks []uuid.UUID, extra string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", t, tenant, extra)
	ids := slices.Clone(blocks)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		h.Write(id[:])
	}
	return string(t) + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Run holds the scheduler's lock and, while it does, plans every
// cycle and puts back the jobs whose lease ran out every maintenance
// interval, until ctx ends; then it gives the lock up. Taking the lock
// over reloads work.json, which the scheduler that held it wrote.
func (s *Scheduler) Run(ctx context.Context, lock *Lock, cycle, maintenance time.Duration) {
	defer func() {
		s.active.Store(false)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := lock.Release(rctx); err != nil {
			s.logger.Warn("backend scheduler cannot give up its lock", "err", err)
		}
	}()
	renew := time.NewTicker(max(lock.lease/3, time.Second))
	defer renew.Stop()
	plan := time.NewTicker(cycle)
	defer plan.Stop()
	maint := time.NewTicker(maintenance)
	defer maint.Stop()
	var redact <-chan time.Time
	if s.cfg.RedactionPollInterval > 0 {
		t := time.NewTicker(s.cfg.RedactionPollInterval)
		defer t.Stop()
		redact = t.C
	}
	hold := func() {
		ok, err := lock.TryAcquire(ctx)
		if err != nil {
			s.logger.Warn("backend scheduler cannot check its lock", "err", err)
			ok = false
		}
		switch {
		case ok && !s.active.Load():
			if err := s.Load(ctx); err != nil {
				s.logger.Error("backend scheduler holds the lock but cannot read its work", "err", err)
				return
			}
			s.logger.Info("backend scheduler runs (holds " + LockName + ")")
			s.active.Store(true)
			s.plan(ctx)
		case !ok && s.active.Load():
			s.logger.Warn("backend scheduler lost its lock: another runs; waiting")
			s.active.Store(false)
		}
	}
	hold()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			hold()
		case <-plan.C:
			if s.active.Load() {
				s.plan(ctx)
			}
		case <-redact:
			if s.active.Load() {
				if err := s.AdvanceRedactions(ctx); err != nil {
					s.logger.Warn("backend scheduler cannot move redaction requests on", "err", err)
				}
			}
		case <-maint.C:
			if s.active.Load() {
				s.mu.Lock()
				s.expireLocked()
				s.mu.Unlock()
			}
		}
	}
}

// Activate makes s plan, hand out jobs and take reports without holding
// the lock: for a scheduler known to be alone (tests and tools); Run holds
// the lock instead.
func (s *Scheduler) Activate() { s.active.Store(true) }

// Active reports whether s holds the lock (or was activated): only then
// may its process write the tenant indexes.
func (s *Scheduler) Active() bool { return s.active.Load() }

func (s *Scheduler) plan(ctx context.Context) {
	if _, err := s.Plan(ctx); err != nil {
		s.logger.Warn("backend scheduler cannot plan jobs", "err", err)
	}
}

// Plan adds the jobs due at the scheduler's clock: compaction jobs for
// every tenant whose compaction is not disabled, up to MaxJobsPerTenant,
// from the blocks no unfinished job holds; and a retention job for every
// tenant whose last one is RetentionInterval old. It returns how many it
// added.
func (s *Scheduler) Plan(ctx context.Context) (int, error) {
	tenants := s.blocks.Tenants()
	if s.cfg.RetentionInterval > 0 {
		// Retention also deletes the blocks let go and the outputs
		// abandoned by a crash: a tenant whose blocks were all let go has
		// none listed, and its directory is still to be cleaned up.
		dirs, err := bucketTenants(ctx, s.bkt)
		if err != nil {
			s.logger.Warn("backend scheduler cannot list the tenants of the bucket: retention jobs planned for the tenants with listed blocks only", "err", err)
		}
		for _, t := range dirs {
			if !slices.Contains(tenants, t) {
				tenants = append(tenants, t)
			}
		}
	}
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	added := 0
	changed := s.advanceAllLocked()
	for _, tenant := range tenants {
		// Blocks of any known job are left alone: unfinished jobs hold
		// theirs, and a finished job's inputs stay listed until the block
		// list's next poll sees them let go (a failed job's are not
		// retried before the job is pruned).
		busy := map[uuid.UUID]bool{}
		open := 0
		for _, j := range s.jobs {
			if j.Tenant != tenant {
				continue
			}
			if j.State == Pending || j.State == Running {
				open++
			}
			for _, id := range j.Blocks {
				busy[id] = true
			}
		}
		if s.cfg.RetentionInterval > 0 && now.Sub(s.lastRetention[tenant]) >= s.cfg.RetentionInterval {
			id := jobID(JobRetention, tenant, nil, now.Truncate(s.cfg.RetentionInterval).Format(time.RFC3339))
			if _, ok := s.jobs[id]; !ok {
				s.jobs[id] = &Job{ID: id, Type: JobRetention, Tenant: tenant, State: Pending, Created: now, Updated: now}
				s.countCreated(tenant, JobRetention)
				added++
				open++
			}
			s.lastRetention[tenant] = now
		}
		if s.limits != nil && s.limits.CompactionDisabled(tenant) {
			continue
		}
		// A redaction request reads and rewrites the tenant's blocks:
		// compaction waits for it to finish.
		if s.redactingTenantLocked(tenant) {
			continue
		}
		var free []compaction.Block
		for _, b := range s.blocks.Compactable(tenant) {
			if !busy[b.ID] {
				free = append(free, b)
			}
		}
		room := s.cfg.MaxJobsPerTenant - open
		if s.cfg.MaxJobsPerTenant <= 0 {
			room = 0 // no cap
		} else if room <= 0 {
			continue
		}
		jobs := compaction.Plan(free, now, s.cfg.Compaction, room)
		outstanding := 0
		for _, j := range s.jobs {
			if j.Tenant == tenant && (j.State == Pending || j.State == Running) {
				outstanding += len(j.Blocks)
			}
		}
		for _, in := range jobs {
			outstanding += len(in)
		}
		s.m.outstanding.WithLabelValues(tenant).Set(float64(outstanding))
		for _, in := range jobs {
			ids := make([]uuid.UUID, len(in))
			for i, b := range in {
				ids[i] = b.ID
			}
			id := jobID(JobCompaction, tenant, ids, "")
			if _, ok := s.jobs[id]; ok {
				continue
			}
			s.jobs[id] = &Job{ID: id, Type: JobCompaction, Tenant: tenant, Blocks: ids, State: Pending, Created: now, Updated: now}
			s.countCreated(tenant, JobCompaction)
			added++
		}
	}
	if added == 0 && !changed {
		return 0, nil
	}
	s.wakeLocked()
	return added, s.save(ctx)
}

// bucketTenants lists the top-level directories of bkt: every tenant with
// objects, listed blocks or not.
func bucketTenants(ctx context.Context, bkt objstore.Bucket) ([]string, error) {
	var out []string
	err := bkt.Iter(ctx, "", func(name string) error {
		if t, ok := strings.CutSuffix(name, "/"); ok && t != "" {
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the tenants of the bucket: %w", err)
	}
	return out, nil
}

func (s *Scheduler) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// ErrNoJob is Next's answer when no job came within JobTimeout.
var ErrNoJob = errors.New("no job")

// Next hands a pending job to worker, the oldest first, waiting up to
// JobTimeout for one (ErrNoJob then). The job is the worker's until its
// lease runs out; the worker renews it with Update.
func (s *Scheduler) Next(ctx context.Context, worker string) (*Job, error) {
	timer := time.NewTimer(s.cfg.JobTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var j *Job
		if s.active.Load() {
			s.expireLocked()
			j = s.oldestPendingLocked()
		}
		if j != nil {
			now := s.clock()
			prev := *j
			j.State, j.Worker, j.LeaseUntil, j.Lease, j.Updated = Running, worker, now.Add(s.cfg.Lease), s.cfg.Lease, now
			j.Attempts++
			// The assignment is saved before the worker hears of it: a
			// restarted scheduler must not hand the job to another.
			if err := s.save(ctx); err != nil {
				*j = prev
				s.mu.Unlock()
				return nil, err
			}
			out := *j
			if j.Redact != nil && !j.Redact.Find {
				rj := *j.Redact
				if r := s.requests[rj.Request]; r != nil {
					rj.TraceIDs = r.ids()
				}
				out.Redact = &rj
			}
			s.mu.Unlock()
			return &out, nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			return nil, ErrNoJob
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Scheduler) oldestPendingLocked() *Job {
	var best *Job
	for _, j := range s.jobs {
		if j.State == Pending && (best == nil || j.Created.Before(best.Created) || j.Created.Equal(best.Created) && j.ID < best.ID) {
			best = j
		}
	}
	return best
}

// expireLocked puts back the running jobs whose lease ran out (their
// worker is gone), and forgets the finished jobs older than PruneAge.
func (s *Scheduler) expireLocked() {
	now := s.clock()
	for id, j := range s.jobs {
		switch {
		case j.State == Running && now.After(j.LeaseUntil):
			s.logger.Warn("backend job lease ran out: handing it out again", "job", j.ID, "worker", j.Worker)
			j.State, j.Worker, j.Error, j.Updated = Pending, "", "lease of worker ran out", now
			s.requeueLocked(j)
		case (j.State == Succeeded || j.State == Failed) && s.cfg.PruneAge > 0 && now.Sub(j.Updated) > s.cfg.PruneAge:
			if r := s.requestOf(j); r != nil && !r.Done() {
				continue // its results make the request's counts
			}
			delete(s.jobs, id)
		}
	}
	for id, r := range s.requests {
		if r.Done() && s.cfg.PruneAge > 0 && now.Sub(r.Updated) > s.cfg.PruneAge {
			delete(s.requests, id)
		}
	}
}

// requeueLocked fails a job that has had its attempts, else leaves it
// pending.
func (s *Scheduler) requeueLocked(j *Job) {
	if j.Attempts >= MaxAttempts {
		j.State = Failed
		return
	}
	j.State = Pending
	s.wakeLocked()
}

// ErrInactive is Update's answer from a scheduler that does not hold the
// lock (another runs, or it is starting or stopping).
var ErrInactive = errors.New("this backend scheduler is not the one running")

// ErrNotYours is Update's answer for a job the worker does not hold (its
// lease ran out and another worker may have it).
var ErrNotYours = errors.New("the job is not this worker's")

// requestOf is the redaction request of j, nil for none.
func (s *Scheduler) requestOf(j *Job) *Request {
	if j.Redact == nil {
		return nil
	}
	return s.requests[j.Redact.Request]
}

// Update records what worker reports of job id; res is what a redaction
// job found or did, reported with Done.
func (s *Scheduler) Update(ctx context.Context, worker, id string, o Outcome, errMsg string, res ...*Result) error {
	if !s.active.Load() {
		return ErrInactive
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || j.State != Running || j.Worker != worker {
		return fmt.Errorf("cannot update job %s: %w", id, ErrNotYours)
	}
	now := s.clock()
	prev := *j
	var prevReq Request
	req := s.requestOf(j)
	if req != nil {
		prevReq = *req
	}
	j.Updated = now
	switch o {
	case Renew:
		// Saved too: a restarted scheduler must not hand out a job whose
		// worker is still at it.
		j.LeaseUntil = now.Add(s.cfg.Lease)
	case Done:
		j.State, j.Error = Succeeded, ""
		if len(res) > 0 {
			j.Result = res[0]
		}
		s.m.completed.WithLabelValues(j.Tenant, string(j.Type)).Inc()
	case Fail:
		j.Error, j.Worker = errMsg, ""
		s.m.failed.WithLabelValues(j.Tenant, string(j.Type)).Inc()
		s.requeueLocked(j)
	case Release:
		j.Attempts--
		j.Worker = ""
		s.requeueLocked(j)
	default:
		return fmt.Errorf("cannot update job %s: unknown outcome %q", id, o)
	}
	if req != nil && !req.Done() && (j.State == Succeeded || j.State == Failed) {
		s.advanceLocked(req)
	}
	if err := s.save(ctx); err != nil {
		*j = prev
		if req != nil {
			*req = prevReq
		}
		return err
	}
	return nil
}

// Jobs returns a copy of every job, oldest first.
func (s *Scheduler) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, *j)
	}
	slices.SortFunc(out, func(a, b Job) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return out
}

// WriteStatus writes the status page of the scheduler
// (/status/backendscheduler): whether it runs, and its jobs, unfinished
// first, as a plain-text table.
func (s *Scheduler) WriteStatus(w io.Writer) error {
	jobs := s.Jobs()
	slices.SortStableFunc(jobs, func(a, b Job) int {
		return cmp.Compare(stateOrder(a.State), stateOrder(b.State))
	})
	state := "running"
	if !s.active.Load() {
		state = "waiting (another scheduler holds " + LockName + ", or it is starting)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "backend scheduler: %s\n\n", state)
	fmt.Fprintln(tw, "id\ttype\ttenant\tstate\tworker\tattempts\tblocks\tcreated\tupdated\terror")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", j.ID, j.Type, j.Tenant, j.State, j.Worker, j.Attempts,
			len(j.Blocks), j.Created.UTC().Format(time.RFC3339), j.Updated.UTC().Format(time.RFC3339), j.Error)
	}
	if reqs := s.Redactions(); len(reqs) > 0 {
		fmt.Fprintln(tw, "\nredaction requests:")
		fmt.Fprintln(tw, "id\ttenant\tstate\tgeneration\tdry run\tjobs pending/running/done/failed\tblocks rewritten\ttraces\tspans\tcreated\terror")
		for _, r := range reqs {
			c := r.Counts
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%d/%d/%d/%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Tenant, r.State, r.Generation, r.DryRun,
				c.Pending, c.Running, c.Succeeded, c.Failed, c.BlocksRewritten, c.Traces, c.Spans, r.Created.UTC().Format(time.RFC3339), r.Error)
		}
	}
	return tw.Flush()
}

func stateOrder(s State) int {
	return slices.Index([]State{Running, Pending, Failed, Succeeded}, s)
}

// countCreated counts a job created, and makes the completed, failed,
// active and pending series of its tenant and type exist (at 0 until a job
// is in that state), so that a failure ratio has a denominator and a
// dashboard a series from the start. It is called with s.mu held.
func (s *Scheduler) countCreated(tenant string, t JobType) {
	s.m.created.WithLabelValues(tenant, string(t)).Inc()
	s.m.completed.WithLabelValues(tenant, string(t))
	s.m.failed.WithLabelValues(tenant, string(t))
	if s.kinds == nil {
		s.kinds = map[[2]string]bool{}
	}
	s.kinds[[2]string{tenant, string(t)}] = true
}
