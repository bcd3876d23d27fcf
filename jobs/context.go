package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Recorder receives what a running job reports about itself. The engine
// puts one in the context it passes to a WorkFunc; handlers use Logf and
// SetProgress rather than calling it directly.
type Recorder interface {
	// Log appends one line to the job's log.
	Log(line string)
	// SetProgress records progress, 0–100.
	SetProgress(pct int)
}

type recorderKey struct{}

// WithRecorder returns ctx carrying r, for Logf and SetProgress.
func WithRecorder(ctx context.Context, r Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// Logf appends a line to the log of the job running in ctx (shown by the
// console and `backlot jobs show`). Outside a job it does nothing. Writes
// are batched: a line is durable shortly after the call, and always before
// the job's outcome is recorded.
func Logf(ctx context.Context, format string, args ...any) {
	if r, ok := ctx.Value(recorderKey{}).(Recorder); ok {
		r.Log(fmt.Sprintf(format, args...))
	}
}

// SetProgress records the progress (clamped to 0–100) of the job running
// in ctx. Outside a job it does nothing. Like Logf, writes are batched.
func SetProgress(ctx context.Context, pct int) {
	if r, ok := ctx.Value(recorderKey{}).(Recorder); ok {
		r.SetProgress(min(max(pct, 0), 100))
	}
}

// ErrCancelled is the cause of a running job's context when the job was
// cancelled (by Cancel, or because the engine lost its lease).
var ErrCancelled = errors.New("job cancelled")

// RetryAfterError asks for the next attempt no sooner than After from now,
// instead of the configured backoff (an upstream's Retry-After). It still
// uses up an attempt: after max_attempts the job fails regardless.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// RetryAfter wraps err so the job's next attempt runs after d.
func RetryAfter(d time.Duration, err error) error {
	return &RetryAfterError{After: d, Err: err}
}

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.After)
	}
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }
