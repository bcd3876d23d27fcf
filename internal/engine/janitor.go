package engine

import (
	"context"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// janitorSlice bounds one delete, so the SQLite writer is not held long.
const janitorSlice = 5000

// janitorLoop runs retention every JanitorInterval, starting at once. Every
// instance runs it (the deletes are idempotent).
func (e *Engine) janitorLoop(ctx context.Context) {
	defer e.bgWG.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.cleanup(ctx)
		t.Reset(e.deps.JanitorInterval)
	}
}

// cleanup fails jobs lost on their last attempt, deletes completed jobs
// after retention.completed, failed and cancelled ones after
// retention.failed (by finished_at), and dedupe keys after DedupeRetention.
func (e *Engine) cleanup(ctx context.Context) {
	now := e.now()
	if n, err := e.st.FailLostJobs(ctx, now); err != nil {
		e.log.Error("janitor: fail lost jobs", "error", err)
	} else if n > 0 {
		e.log.Warn("janitor: jobs lost on their last attempt marked failed", "jobs", n)
	}
	for _, r := range []struct {
		state jobs.State
		keep  time.Duration
	}{
		{jobs.StateCompleted, e.cfg.Retention.Completed.D()},
		{jobs.StateFailed, e.cfg.Retention.Failed.D()},
		{jobs.StateCancelled, e.cfg.Retention.Failed.D()},
	} {
		for ctx.Err() == nil {
			n, err := e.st.DeleteJobs(ctx, store.DeleteJobsParams{
				State: r.state, FinishedBefore: now.Add(-r.keep), Limit: janitorSlice,
			})
			if err != nil {
				e.log.Error("janitor: delete jobs", "state", r.state, "error", err)
				break
			}
			if n < janitorSlice {
				break
			}
		}
	}
	if _, err := e.st.DeleteDedupeKeys(ctx, now.Add(-e.deps.DedupeRetention)); err != nil {
		e.log.Error("janitor: delete dedupe keys", "error", err)
	}
}

// depthLoop refreshes backlot_jobs_queue_depth.
func (e *Engine) depthLoop(ctx context.Context) {
	defer e.bgWG.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.refreshDepth(ctx)
		t.Reset(DepthIntervalDefault)
	}
}

func (e *Engine) refreshDepth(ctx context.Context) {
	counts, err := e.st.CountJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("count jobs", "error", err)
		}
		return
	}
	e.m.depth.Reset()
	for q := range e.queues {
		for _, s := range []jobs.State{jobs.StateScheduled, jobs.StateAvailable, jobs.StateRunning, jobs.StateRetrying} {
			e.m.depth.WithLabelValues(q, string(s)).Set(0)
		}
	}
	for _, c := range counts {
		e.m.depth.WithLabelValues(c.Queue, string(c.State)).Set(float64(c.Count))
	}
}
