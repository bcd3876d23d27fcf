package store

import (
	"context"
	"time"
)

// RateLimitStore keeps rate-limit budgets in the database, so every
// instance sharing it draws from one budget. Sharetribe counts requests
// per client IP: several instances behind one address, each with its own
// in-process limiter, would together exceed the limit.
type RateLimitStore interface {
	// ReserveRate reserves one request under the limit named key: a
	// steady rate of one request per interval with bursts of up to burst
	// requests (GCRA, the token bucket written as one timestamp). It
	// returns how long the caller must wait, from now, before making the
	// request; 0 means at once. The reservation is taken whatever the
	// caller does next, so a caller that gives up wastes one slot, which
	// errs on the side of staying under the limit. interval must be
	// positive and burst at least 1. Instances must agree on the time
	// (NTP); a skew shows up as a skew in the shared budget.
	ReserveRate(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (time.Duration, error)
}

// EventCheckpoint is where a marketplace's event poller stands.
type EventCheckpoint struct {
	// Marketplace is the marketplace's configured name.
	Marketplace string
	// SequenceID is the sequence id of the last event turned into a job;
	// 0 with HasSequence false before the first event.
	SequenceID  int64
	HasSequence bool
	// EventAt is the creation time of that event (zero before the first).
	EventAt time.Time
	// StartAt is where polling began when it started at "now": events
	// created from then on are wanted until the first one arrives.
	StartAt time.Time
	// UpdatedAt is when the checkpoint was last written.
	UpdatedAt time.Time
}

// EventCheckpointStore keeps the event pollers' checkpoints. The
// checkpoint is written in the same transaction as the jobs of the events
// it moves past, so a crash between fetching and committing loses nothing
// and commits nothing twice.
type EventCheckpointStore interface {
	// EventCheckpoint returns the checkpoint of marketplace, ErrNotFound
	// before the first write.
	EventCheckpoint(ctx context.Context, marketplace string) (EventCheckpoint, error)
	// PutEventCheckpointTx inserts or replaces a checkpoint inside tx (a
	// transaction begun by RunTx of the same store).
	PutEventCheckpointTx(ctx context.Context, tx Tx, cp EventCheckpoint) error
}

// RateWait turns the theoretical arrival time a reservation stored (Unix
// seconds, already advanced by interval) into the wait before the request
// may go: what lies beyond the burst's allowance.
func RateWait(tat float64, now time.Time, interval time.Duration, burst int) time.Duration {
	w := tat - float64(burst)*interval.Seconds() - float64(now.UnixNano())/1e9
	if w <= 0 {
		return 0
	}
	return time.Duration(w * float64(time.Second))
}

// UnixSeconds is t as fractional Unix seconds, the unit of the stored
// arrival times.
func UnixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
