// Package jobs is the public face of backlot's durable job queue: the Job
// a worker receives, the function type workers implement, and the options
// of an enqueue. The engine itself is internal.
package jobs

import (
	"context"
	"encoding/json"
	"time"
)

// State of a job.
type State string

// Job states (SPEC 5.5): scheduled → available → running → completed |
// retrying → … | failed | cancelled.
const (
	StateScheduled State = "scheduled"
	StateAvailable State = "available"
	StateRunning   State = "running"
	StateRetrying  State = "retrying"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Job is one unit of background work.
type Job struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	Payload     json.RawMessage `json:"payload"`
	State       State           `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	RunAt       time.Time       `json:"run_at"`
	LeaseUntil  *time.Time      `json:"lease_until,omitempty"`
	LastError   string          `json:"last_error,omitempty"`
	Progress    int             `json:"progress"`
	DedupeKey   string          `json:"dedupe_key,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

// WorkFunc handles jobs of one kind. A nil return completes the job; an
// error retries it with backoff until its attempts are used up; a panic is
// recorded as a failure.
type WorkFunc func(ctx context.Context, job *Job) error

// EnqueueOpts are per-call options; nil means defaults.
type EnqueueOpts struct {
	Queue       string    // default "default" or the kind's configured queue
	MaxAttempts int       // default jobs.retry.max_attempts
	RunAt       time.Time // zero: now
	// DedupeKey drops a second enqueue with the same key while the first is retained.
	DedupeKey string
}

// EnqueueResult says which job holds the work.
type EnqueueResult struct {
	ID int64
	// Duplicate is true when DedupeKey matched an earlier job; ID is that job.
	Duplicate bool
}
