package jobs

import "errors"

// Errors an enqueue or a job operation may return; match them with
// errors.Is. The engine wraps them with what it was doing.
var (
	// ErrUnknownQueue: the queue is not configured under jobs.queues, so
	// no worker would ever fetch the job.
	ErrUnknownQueue = errors.New("unknown queue")
	// ErrInvalidPayload: the payload is not valid JSON (or not UTF-8).
	ErrInvalidPayload = errors.New("payload is not valid JSON")
	// ErrNotFound: no job has that id (it may have been deleted by
	// retention).
	ErrNotFound = errors.New("job not found")
	// ErrJobState: the job is not in a state the operation applies to
	// (retrying a completed job, cancelling a failed one).
	ErrJobState = errors.New("job is not in a state that allows this")
)
