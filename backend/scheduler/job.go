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
