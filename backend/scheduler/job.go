package scheduler

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// JobType is the kind of work a job does.
type JobType string

// The job types.
const (
	// JobCompaction merges the blocks of Job.Blocks into one.
	JobCompaction JobType = "compaction"
	// JobRetention lets go of the tenant's blocks older than its
	// retention, and deletes what was let go long enough ago.
	JobRetention JobType = "retention"
	// JobRedaction works for a redaction request (Job.Redact) on the one
	// block of Job.Blocks: finds the traces its query matches, or
	// rewrites the block without the request's traces.
	JobRedaction JobType = "redaction"
)

// State is where a job is in its life.
type State string

// The states of a job.
const (
	Pending   State = "pending"   // waiting for a worker
	Running   State = "running"   // a worker has it
	Succeeded State = "succeeded" // done
	Failed    State = "failed"    // given up after MaxAttempts
)

// Job is one unit of backend work, as the scheduler keeps it in work.json.
type Job struct {
	ID     string      `json:"id"`
	Type   JobType     `json:"type"`
	Tenant string      `json:"tenant"`
	Blocks []uuid.UUID `json:"blocks,omitempty"` // compaction inputs
	State  State       `json:"state"`
	// Worker is the worker running the job; LeaseUntil is when the job
	// goes back to Pending unless the worker renews it.
	Worker     string    `json:"worker,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// Lease is the scheduler's job_lease, for the worker to renew within.
	Lease    time.Duration `json:"lease,omitempty"`
	Attempts int           `json:"attempts"`
	Created  time.Time     `json:"created"`
	Updated  time.Time     `json:"updated"`
	// Error is the last attempt's error.
	Error string `json:"error,omitempty"`
	// Redact is what a redaction job does.
	Redact *RedactJob `json:"redact,omitempty"`
	// Result is what the worker reported with Done (redaction jobs).
	Result *Result `json:"result,omitempty"`
}

// RedactJob is the part of a redaction job that says what it does.
type RedactJob struct {
	// Request is the redaction request's ID.
	Request string `json:"request"`
	// Find: find the traces of the block that Query matches (Result.TraceIDs);
	// otherwise rewrite the block without TraceIDs.
	Find  bool   `json:"find,omitempty"`
	Query string `json:"query,omitempty"`
	// Set identifies the set of trace IDs of a rewrite (a hash of them),
	// part of the output block's ID.
	Set string `json:"set,omitempty"`
	// DryRun counts what the rewrite would remove and writes nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// Generation is the request's generation that planned the job (0 in
	// work.json written before it was kept). A job that found its block
	// gone sends the request to another generation only from its own
	// generation, or while the block list still shows the block.
	Generation int `json:"generation,omitempty"`
	// TraceIDs (hex) are the traces a rewrite removes. They are kept once,
	// in the request, and filled in when the job is handed out.
	TraceIDs []string `json:"traceIDs,omitempty"`
}

// Result is what a worker reports of a finished redaction job.
type Result struct {
	// TraceIDs (hex): the traces the block held that a find job's query
	// matched, or that a rewrite removed (would remove, in a dry run).
	TraceIDs []string `json:"traceIDs,omitempty"`
	// Spans is how many spans the rewrite removed (would remove).
	Spans int64 `json:"spans,omitempty"`
	// Rewritten: the block was written again (as Output) without the
	// traces; Emptied: it held nothing else and was let go.
	Rewritten bool      `json:"rewritten,omitempty"`
	Emptied   bool      `json:"emptied,omitempty"`
	Output    uuid.UUID `json:"output,omitzero"`
	// Gone: the block was let go (compacted, expired) before the job read
	// it; its spans, if any are left, are in another block.
	Gone bool `json:"gone,omitempty"`
}

func (j *Job) String() string {
	return fmt.Sprintf("%s job %s of tenant %q (%d blocks, %s)", j.Type, j.ID, j.Tenant, len(j.Blocks), j.State)
}

// Outcome is what a worker reports of a job.
type Outcome string

// The outcomes a worker reports.
const (
	// Renew: still running; extend the lease.
	Renew Outcome = "renew"
	// Done: succeeded.
	Done Outcome = "done"
	// Fail: this attempt failed; the job is tried again, up to
	// MaxAttempts.
	Fail Outcome = "fail"
	// Release: the worker gives the job back unstarted or unfinished
	// (shutting down); it is not counted as an attempt.
	Release Outcome = "release"
)
