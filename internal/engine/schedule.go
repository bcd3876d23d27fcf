package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/backlothq/backlot/jobs"
)

// scheduleLoop fires the cron schedules while this engine leads. Leading
// is a LeaderStore lock (an advisory lock on PostgreSQL; always on
// SQLite); a non-leader tries again every LeaderRetry. Each tick enqueues
// with the dedupe key schedule:<name>:<tick unix>, so a tick fires at most
// once even if two leaders overlap for a moment. Ticks that passed while
// no one led are skipped, not caught up.
func (e *Engine) scheduleLoop(ctx context.Context) {
	defer e.bgWG.Done()
	if len(e.schedules) == 0 {
		return
	}
	for ctx.Err() == nil {
		l, ok, err := e.st.TryLead(ctx, leaderName)
		if err != nil && ctx.Err() == nil {
			e.log.Error("schedules: try to lead", "error", err)
		}
		if ok {
			e.leading.Store(true)
			e.log.Info("schedules: leading")
			e.fireSchedules(ctx, l.Lost())
			e.leading.Store(false)
			_ = l.Release()
		}
		select {
		case <-ctx.Done():
		case <-e.deps.After(e.deps.LeaderRetry):
		}
	}
}

// fireSchedules runs until ctx ends or lost closes.
func (e *Engine) fireSchedules(ctx context.Context, lost <-chan struct{}) {
	next := make([]time.Time, len(e.schedules))
	now := e.now()
	for i, s := range e.schedules {
		next[i] = s.sched.Next(now)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		earliest := next[0]
		for _, n := range next[1:] {
			if n.Before(earliest) {
				earliest = n
			}
		}
		t.Reset(max(earliest.Sub(e.now()), 0))
		select {
		case <-ctx.Done():
			return
		case <-lost:
			e.log.Warn("schedules: leadership lost")
			return
		case <-t.C:
		}
		now := e.now()
		for i, s := range e.schedules {
			if next[i].After(now) {
				continue
			}
			tick := next[i]
			key := fmt.Sprintf("schedule:%s:%d", s.cfg.Name, tick.Unix())
			res, err := e.Enqueue(ctx, s.cfg.Job, s.payload, &jobs.EnqueueOpts{DedupeKey: key})
			if err != nil {
				e.log.Error("schedules: fire", "schedule", s.cfg.Name, "error", err)
			} else {
				e.log.Debug("schedules: fired", "schedule", s.cfg.Name, "job", res.ID, "duplicate", res.Duplicate)
			}
			next[i] = s.sched.Next(now)
		}
	}
}
