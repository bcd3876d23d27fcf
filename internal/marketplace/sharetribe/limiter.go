package sharetribe

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"
)

// Kind says whether a call reads (a query) or writes (a command):
// Sharetribe rate-limits the two separately.
type Kind int

// The kinds of call.
const (
	Query Kind = iota
	Command
)

func (k Kind) String() string {
	if k == Command {
		return "command"
	}
	return "query"
}

// Limiter paces calls to Sharetribe. Sharetribe counts per client IP, so
// every process behind one address must share one budget: the in-process
// LocalLimiter does for one process; a limiter shared through the database
// does for several.
type Limiter interface {
	// Wait blocks until a call of kind may be made, or ctx is done.
	Wait(ctx context.Context, kind Kind) error
}

// Environment is a Sharetribe marketplace environment; rate limits differ
// between them.
type Environment string

// Sharetribe's environments.
const (
	EnvDev  Environment = "dev"
	EnvTest Environment = "test"
	EnvLive Environment = "live"
)

// Limits are token-bucket rates and bursts for queries and commands.
type Limits struct {
	QueriesPerSecond  float64
	QueryBurst        int
	CommandsPerSecond float64
	CommandBurst      int
}

// DefaultLimits returns the limits to keep to in env. Dev and test:
// Sharetribe's own limits, 1 query per second and 1 command per 2 seconds,
// with small bursts (the API tolerates larger ones, but a process that
// never spends them cannot be the one that pushes a shared address over).
// Live, which Sharetribe does not limit today: 8 queries and 4 commands
// per second, Sharetribe's recommendation. An unknown environment gets the
// dev limits.
func DefaultLimits(env Environment) Limits {
	if env == EnvLive {
		return Limits{QueriesPerSecond: 8, QueryBurst: 8, CommandsPerSecond: 4, CommandBurst: 4}
	}
	return Limits{QueriesPerSecond: 1, QueryBurst: 5, CommandsPerSecond: 0.5, CommandBurst: 3}
}

// LocalLimiter is an in-process Limiter: two token buckets.
type LocalLimiter struct {
	query, command *rate.Limiter
}

var _ Limiter = (*LocalLimiter)(nil)

// NewLocalLimiter returns a limiter that keeps to l. A burst below 1 is
// taken as 1; a rate of zero allows the burst and then nothing more.
func NewLocalLimiter(l Limits) *LocalLimiter {
	return &LocalLimiter{
		query:   rate.NewLimiter(rate.Limit(l.QueriesPerSecond), max(l.QueryBurst, 1)),
		command: rate.NewLimiter(rate.Limit(l.CommandsPerSecond), max(l.CommandBurst, 1)),
	}
}

// Wait implements Limiter.
func (l *LocalLimiter) Wait(ctx context.Context, kind Kind) error {
	lim := l.query
	if kind == Command {
		lim = l.command
	}
	if err := lim.Wait(ctx); err != nil {
		return fmt.Errorf("sharetribe: wait for the %s rate limit: %w", kind, err)
	}
	return nil
}
