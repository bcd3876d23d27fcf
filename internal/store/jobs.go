package store

import (
	"context"
	"time"

	"github.com/backlothq/backlot/jobs"
)

// JobsChannel is the PostgreSQL NOTIFY channel an enqueue (one per batch)
// and a manual retry signal on; its payload is a comma-separated list of
// queue names.
const JobsChannel = "backlot_jobs"

// ErrJobState is returned when a job is not in a state the operation
// applies to (retrying a completed job, cancelling a failed one). It is
// the public jobs.ErrJobState, so callers outside match it too.
var ErrJobState = jobs.ErrJobState

// JobStore is the job engine's persistence (SPEC 5.5): group-commit inserts
// with dedupe, fetch with leases, batched state transitions, retention.
//
// The store never reads a clock: every method that needs the time takes
// it, so the engine's injectable clock rules. Times keep microseconds.
//
// Every write that ends a run is fenced by (id, attempt) and state
// running: a worker whose lease lapsed and whose job was claimed again
// cannot overwrite the newer run's outcome.
type JobStore interface {
	// InsertJobs inserts a batch of jobs in one transaction and returns one
	// result per input, in order. A job whose DedupeKey is already known
	// (from an earlier batch or earlier in this one) is not inserted; its
	// result names the first job with Duplicate set. On PostgreSQL one
	// NOTIFY on JobsChannel is sent in the same transaction.
	InsertJobs(ctx context.Context, now time.Time, batch []JobInsert) ([]jobs.EnqueueResult, error)
	// InsertJobsTx is InsertJobs inside the caller's transaction (see Tx);
	// the jobs exist once the caller commits.
	InsertJobsTx(ctx context.Context, tx Tx, now time.Time, batch []JobInsert) ([]jobs.EnqueueResult, error)
	// ClaimJobs moves up to Limit due jobs of Queue whose kind is in Kinds
	// to running (attempt+1, lease_until = Now+Lease) and returns them,
	// oldest run_at first. Due means: available, scheduled or retrying with
	// run_at <= Now, or running with a lapsed lease and attempts left. On
	// PostgreSQL concurrent claimers skip each other's rows (SKIP LOCKED).
	// SkipLapsed leaves lapsed leases out (one statement fewer).
	ClaimJobs(ctx context.Context, p ClaimParams) ([]*jobs.Job, error)
	// ExtendLeases sets lease_until = until on the listed running jobs and
	// reports, per job still held, whether a cancel was requested. A job
	// missing from the answer is no longer this run's (finished elsewhere,
	// reclaimed, deleted).
	ExtendLeases(ctx context.Context, until time.Time, refs []JobRef) ([]LeaseStatus, error)
	// UpdateJobs writes, in one transaction, log lines, progress and run
	// outcomes (in that order, so a job's last lines land before its end).
	UpdateJobs(ctx context.Context, u JobUpdates) error
	// ReleaseJobs hands running jobs back (available, run_at = now, the
	// interrupted attempt not counted), for a graceful stop.
	ReleaseJobs(ctx context.Context, now time.Time, refs []JobRef) error

	// GetJob returns one job; ErrNotFound if absent.
	GetJob(ctx context.Context, id int64) (*jobs.Job, error)
	// ListJobs returns jobs matching f, newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]*jobs.Job, error)
	// JobLogs returns a job's log lines in the order written.
	JobLogs(ctx context.Context, id int64) ([]JobLogLine, error)
	// RetryJob makes a failed, cancelled, retrying or scheduled job
	// available now. The attempt count is kept; if it has reached
	// max_attempts, max_attempts is raised by one so the job gets exactly
	// one more try. ErrJobState for other states, ErrNotFound if absent.
	RetryJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error)
	// CancelJob cancels a job that is not running (scheduled, available,
	// retrying) at once; for a running job it records the request, which the
	// worker's next heartbeat sees (the run ends cancelled unless it
	// succeeds first). Cancelling a cancelled job is a no-op. ErrJobState
	// for completed and failed jobs, ErrNotFound if absent.
	CancelJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error)
	// DeleteJobs deletes finished jobs (state completed, failed or
	// cancelled) with finished_at before p.FinishedBefore, with their logs.
	DeleteJobs(ctx context.Context, p DeleteJobsParams) (int64, error)
	// FailLostJobs marks failed the running jobs whose lease lapsed before
	// now with no attempts left (their worker died on the last attempt).
	FailLostJobs(ctx context.Context, now time.Time) (int64, error)
	// DeleteDedupeKeys forgets dedupe keys created before before.
	DeleteDedupeKeys(ctx context.Context, before time.Time) (int64, error)
	// CountJobs counts unfinished jobs by queue and state (queue depth).
	CountJobs(ctx context.Context) ([]JobCount, error)
	// ListenJobs calls fn with a queue name whenever jobs may have become
	// available in it, until ctx ends. On PostgreSQL it LISTENs on
	// JobsChannel on a dedicated connection, reconnecting as needed (fn("")
	// after a reconnect: "any queue"). SQLite has no cross-process signal:
	// it just waits for ctx.
	ListenJobs(ctx context.Context, fn func(queue string)) error
}

// JobInsert is one job to insert.
type JobInsert struct {
	Kind        string
	Queue       string
	Payload     []byte // valid JSON
	MaxAttempts int
	RunAt       time.Time // after the insert's now: state scheduled
	DedupeKey   string    // "" for none
	// LeaseUntil, when set, inserts the job already claimed: running,
	// attempt 1, leased until then (the inserting engine runs it; nobody
	// is notified of it). InsertJobs and WriteJobBatch honour it.
	LeaseUntil time.Time
}

// JobBatchWriter is implemented by a store whose writes are serialised
// through one writer (SQLite), where every transaction saved is throughput.
// The engine then writes a group commit's inserts, the pending run updates
// and the claims of queues with waiting jobs in one transaction, and
// inserts jobs it will run itself already claimed (JobInsert.LeaseUntil)
// instead of claiming them in a transaction of their own.
type JobBatchWriter interface {
	// WriteJobBatch is InsertJobs, UpdateJobs and ClaimJobs (in that
	// order) in one durable transaction: all of it is written or none.
	WriteJobBatch(ctx context.Context, now time.Time, b JobBatch) (JobBatchResult, error)
}

// JobBatch is one transaction of a JobBatchWriter.
type JobBatch struct {
	Inserts []JobInsert
	Updates JobUpdates
	Claims  []ClaimParams
}

// JobBatchResult answers a JobBatch: one result per insert, the jobs
// claimed per claim.
type JobBatchResult struct {
	Inserted []jobs.EnqueueResult
	Claimed  [][]*jobs.Job
}

// ClaimParams selects jobs to claim.
type ClaimParams struct {
	// SkipLapsed skips the lapsed-lease half of the claim: the engine looks
	// for lapsed leases at most once per poll interval, not on every claim.
	SkipLapsed bool
	Queue      string
	Kinds      []string
	Limit      int
	Now        time.Time
	Lease      time.Duration
}

// JobRef names one run of a job: the fence for writes that end it.
type JobRef struct {
	ID      int64
	Attempt int
}

// LeaseStatus is one answer of ExtendLeases.
type LeaseStatus struct {
	ID              int64
	CancelRequested bool
}

// JobUpdates is one batch of writes from running jobs.
type JobUpdates struct {
	Logs     []JobLogLine
	Progress []JobProgress
	Finishes []JobFinish
}

// Empty reports whether u holds nothing to write.
func (u JobUpdates) Empty() bool { return len(u.Logs)+len(u.Progress)+len(u.Finishes) == 0 }

// JobLogLine is one line of a job's log.
type JobLogLine struct {
	JobID int64     `json:"job_id"`
	At    time.Time `json:"at"`
	Line  string    `json:"line"`
}

// JobProgress is a progress report.
type JobProgress struct {
	JobID   int64
	Percent int
}

// JobFinish is the outcome of one run. State is completed, retrying (RunAt
// is the next attempt) or failed. A failed or retrying outcome of a job
// whose cancel was requested is stored as cancelled instead.
type JobFinish struct {
	JobRef
	State jobs.State
	RunAt time.Time // retrying only
	Error string    // "" keeps last_error
	At    time.Time // when the run ended
}

// JobFilter selects jobs to list. Zero fields do not filter.
type JobFilter struct {
	State jobs.State
	Kind  string
	Queue string
	Limit int // default 100
	// BeforeID pages: only jobs with id < BeforeID.
	BeforeID int64
}

// DeleteJobsParams selects finished jobs to delete.
type DeleteJobsParams struct {
	State          jobs.State // completed, failed or cancelled
	FinishedBefore time.Time
	// Limit bounds one call (a janitor deletes in slices so the writer is
	// not held long); 0 means no limit.
	Limit int
}

// JobCount is one row of CountJobs.
type JobCount struct {
	Queue string
	State jobs.State
	Count int64
}

// LeaderStore elects one instance to run singleton work (cron schedules,
// event polling). On PostgreSQL a session advisory lock held on a dedicated
// connection; on SQLite one process owns the file, so it always leads.
type LeaderStore interface {
	// TryLead tries, without waiting, to become the leader for name. ok is
	// false when another instance leads. A Leadership must be released.
	TryLead(ctx context.Context, name string) (l Leadership, ok bool, err error)
}

// Leadership is held until Release or until Lost closes (the connection
// holding the lock dropped; stop leader work and try again).
type Leadership interface {
	Lost() <-chan struct{}
	Release() error
}
