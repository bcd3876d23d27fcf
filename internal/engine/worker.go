package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

var (
	errStopping  = errors.New("jobs engine stopping")
	errLeaseLost = errors.New("lease lost")
	errTimeout   = errors.New("job timed out")
)

// queue is one worker pool.
type queue struct {
	name  string
	conc  int
	busy  atomic.Int64  // slots taken: running jobs and reservations
	wake  chan struct{} // buffered 1: work may be waiting
	freed chan struct{} // buffered 1: a slot came free
	// backlog is set while due jobs may wait in the store unclaimed;
	// jobs are claimed at insert (writeLoop) only while it is clear, so
	// fresh jobs do not overtake waiting ones. The fetcher clears it when
	// a claim comes back short (nothing due is left).
	backlog atomic.Bool
	// turning: the batch writeLoop is building takes slots of this
	// queue. Only writeLoop uses it.
	turning bool
}

// reserve takes up to n free slots and returns how many it took.
func (q *queue) reserve(n int) int {
	for {
		busy := q.busy.Load()
		k := min(int64(n), int64(q.conc)-busy)
		if k <= 0 {
			return 0
		}
		if q.busy.CompareAndSwap(busy, busy+k) {
			return int(k)
		}
	}
}

// release gives back n slots: reserved and not used, or freed by a run
// that ended.
func (q *queue) release(n int) {
	if n <= 0 {
		return
	}
	q.busy.Add(int64(-n))
	select {
	case q.freed <- struct{}{}:
	default:
	}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run is one job being worked on by this engine.
type run struct {
	job      *jobs.Job
	cancel   context.CancelCauseFunc
	released atomic.Bool // handed back by Stop: drop its outcome
}

// fetchLoop claims jobs for q's free slots. After a claim that filled
// every free slot it claims again as soon as a slot frees; otherwise it
// sleeps until woken (enqueue, NOTIFY) or PollInterval passes.
func (e *Engine) fetchLoop(ctx context.Context, q *queue) {
	defer e.fetchWG.Done()
	poll := time.NewTimer(0)
	defer poll.Stop()
	var lapsedAt time.Time // last look for lapsed leases
	for ctx.Err() == nil {
		free := q.conc - int(q.busy.Load())
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-q.freed:
			}
			continue
		}
		// Lapsed leases are a recovery path: looking once per poll
		// interval is enough, and saves a statement on every claim.
		skip := e.now().Sub(lapsedAt) < e.deps.PollInterval
		if skip && e.writerHot() {
			// Under load the writer claims for queues with waiting jobs
			// in its own transactions: look again once it cools down.
			poll.Reset(claimHot)
			select {
			case <-ctx.Done():
			case <-poll.C:
			}
			continue
		}
		if !skip {
			lapsedAt = e.now()
			// Jobs the writer did not insert may have come due meanwhile
			// (retries, scheduled jobs, EnqueueTx): until a claim comes back
			// short, the writer claims oldest first rather than at insert,
			// so they are not overtaken for as long as the load lasts.
			q.backlog.Store(true)
		}
		_, kinds := e.worker("")
		n := q.reserve(min(free, maxClaim))
		if n == 0 {
			continue // taken meanwhile (a claim at insert): wait for a slot
		}
		var got []*jobs.Job
		var err error
		if len(kinds) > 0 {
			got, err = e.st.ClaimJobs(ctx, store.ClaimParams{
				Queue: q.name, Kinds: kinds, Limit: n, Now: e.now(), Lease: e.cfg.Lease.D(), SkipLapsed: skip,
			})
			if err != nil && ctx.Err() == nil {
				e.log.Error("claim jobs", "queue", q.name, "error", err)
			}
		}
		q.release(n - len(got))
		for _, j := range got {
			e.start(q, j)
		}
		if err == nil && len(got) < n {
			q.backlog.Store(false) // nothing due is left
		}
		if len(got) == n && len(got) > 0 {
			continue // maybe more: claim again (waits for a slot if none free)
		}
		poll.Reset(e.deps.PollInterval)
		select {
		case <-ctx.Done():
		case <-q.wake:
		case <-poll.C:
		}
	}
}

// start runs one claimed job in its own goroutine, in a slot reserved
// for it.
func (e *Engine) start(q *queue, j *jobs.Job) {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &run{job: j, cancel: cancel}
	e.runMu.Lock()
	e.running[j.ID] = r
	e.runMu.Unlock()
	e.runWG.Add(1)
	go func() {
		defer e.runWG.Done()
		defer func() {
			cancel(nil)
			q.release(1)
		}()
		e.work(ctx, r)
	}()
}

// work calls the handler and records the outcome.
func (e *Engine) work(ctx context.Context, r *run) {
	j := r.job
	fn, _ := e.worker(j.Kind)
	timeout := e.timeoutOf(j.Kind)
	tctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()
	tctx = jobs.WithRecorder(tctx, recorder{e: e, id: j.ID})
	began := e.now()
	err := call(tctx, fn, j)
	if err != nil && errors.Is(context.Cause(tctx), errTimeout) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	e.m.duration.WithLabelValues(j.Kind).Observe(e.now().Sub(began).Seconds())

	e.runMu.Lock()
	delete(e.running, j.ID)
	e.runMu.Unlock()
	if r.released.Load() {
		return // handed back by Stop; another run owns the job now
	}
	now := e.now()
	f := store.JobFinish{JobRef: store.JobRef{ID: j.ID, Attempt: j.Attempt}, At: now}
	switch {
	case err == nil:
		f.State = jobs.StateCompleted
	case j.Attempt >= j.MaxAttempts:
		f.State = jobs.StateFailed
	default:
		f.State = jobs.StateRetrying
		d := e.backoff(j.Attempt)
		var ra *jobs.RetryAfterError
		if errors.As(err, &ra) {
			d = max(ra.After, 0)
		}
		f.RunAt = now.Add(d)
	}
	if err != nil {
		f.Error = cleanText(err.Error(), maxErrorLen)
		e.log.Warn("job failed", "id", j.ID, "kind", j.Kind, "attempt", j.Attempt, "next", f.State, "error", err)
	}
	label := f.State
	if err != nil && errors.Is(context.Cause(ctx), jobs.ErrCancelled) {
		label = jobs.StateCancelled // the store turns the outcome into cancelled
	}
	e.m.total.WithLabelValues(j.Kind, string(label)).Inc()
	e.push(update{finish: &f})
}

// call runs fn, turning a panic into an error carrying a short stack. A
// missing worker (unregistered after the claim) is an error too.
func call(ctx context.Context, fn jobs.WorkFunc, j *jobs.Job) (err error) {
	if fn == nil {
		return fmt.Errorf("no worker registered for kind %q", j.Kind)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, shortStack(debug.Stack()))
			jobs.Logf(ctx, "%v", err)
		}
	}()
	return fn(ctx, j)
}

// shortStack keeps the frames below the panic, at most 16 lines.
func shortStack(st []byte) string {
	lines := strings.Split(string(st), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			lines = lines[i:]
			break
		}
	}
	if len(lines) > 16 {
		lines = lines[:16]
	}
	return strings.Join(lines, "\n")
}

// heartbeatLoop renews the leases of every running job every lease/3, in
// one write, and cancels runs whose cancel was requested or whose lease
// was lost.
func (e *Engine) heartbeatLoop(ctx context.Context) {
	defer e.bgWG.Done()
	t := time.NewTicker(max(e.cfg.Lease.D()/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.heartbeat(ctx)
	}
}

func (e *Engine) heartbeat(ctx context.Context) {
	e.runMu.Lock()
	refs := make([]store.JobRef, 0, len(e.running))
	runs := make(map[int64]*run, len(e.running))
	for id, r := range e.running {
		refs = append(refs, store.JobRef{ID: id, Attempt: r.job.Attempt})
		runs[id] = r
	}
	e.runMu.Unlock()
	if len(refs) == 0 {
		return
	}
	st, err := e.st.ExtendLeases(ctx, e.now().Add(e.cfg.Lease.D()), refs)
	if err != nil {
		e.log.Error("extend leases", "jobs", len(refs), "error", err)
		return // try again next tick; the lease has lease·2/3 left
	}
	held := make(map[int64]bool, len(st))
	for _, s := range st {
		held[s.ID] = true
		if s.CancelRequested {
			runs[s.ID].cancel(jobs.ErrCancelled)
		}
	}
	for id, r := range runs {
		if !held[id] {
			e.runMu.Lock()
			_, still := e.running[id]
			e.runMu.Unlock()
			if still { // not finished meanwhile: someone else owns it now
				e.log.Warn("job lease lost", "id", id, "kind", r.job.Kind)
				r.cancel(errLeaseLost)
			}
		}
	}
}

// update is one write for the updater: a log line, a progress report or an
// outcome.
type update struct {
	log      *store.JobLogLine
	progress *store.JobProgress
	finish   *store.JobFinish
}

// push hands u to the updater; after Stop it is dropped (a lapsed lease
// brings the job back).
func (e *Engine) push(u update) {
	select {
	case e.updates <- u:
	case <-e.updDone:
	}
}

// recorder is the jobs.Recorder of one running job.
type recorder struct {
	e  *Engine
	id int64
}

func (r recorder) Log(line string) {
	r.e.push(update{log: &store.JobLogLine{JobID: r.id, At: r.e.now(), Line: cleanText(line, maxErrorLen)}})
}

func (r recorder) SetProgress(pct int) {
	r.e.push(update{progress: &store.JobProgress{JobID: r.id, Percent: pct}})
}

// updateLoop writes updates in batches: it blocks for one, takes whatever
// else is queued (up to 1024) and writes them in one transaction. On Stop
// it drains what is left.
func (e *Engine) updateLoop() {
	defer e.updWG.Done()
	var u pendingUpdates
	for {
		select {
		case x := <-e.updates:
			u.add(x)
		case <-e.updDone:
			for {
				select {
				case x := <-e.updates:
					u.add(x)
					continue
				default:
				}
				break
			}
			e.flush(&u)
			return
		}
	drain:
		for n := 1; n < 1024; n++ {
			select {
			case x := <-e.updates:
				u.add(x)
			default:
				break drain
			}
		}
		e.flush(&u)
	}
}

// pendingUpdates gathers updates for one write.
type pendingUpdates struct{ store.JobUpdates }

func (u *pendingUpdates) add(x update) {
	switch {
	case x.log != nil:
		u.Logs = append(u.Logs, *x.log)
	case x.progress != nil:
		u.Progress = append(u.Progress, *x.progress)
	case x.finish != nil:
		u.Finishes = append(u.Finishes, *x.finish)
	}
}

func (u *pendingUpdates) reset() {
	u.Logs, u.Progress, u.Finishes = u.Logs[:0], u.Progress[:0], u.Finishes[:0]
}

// flush writes u on its own (retrying) and empties it.
func (e *Engine) flush(u *pendingUpdates) {
	if u.Empty() {
		return
	}
	var err error
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), storeWriteTimeout)
		err = e.st.UpdateJobs(ctx, u.JobUpdates)
		cancel()
		if err == nil {
			break
		}
		<-e.deps.After(time.Duration(try+1) * 100 * time.Millisecond)
	}
	if err != nil {
		// Outcomes lost here come back when their leases lapse.
		e.log.Error("write job updates", "finishes", len(u.Finishes), "logs", len(u.Logs), "error", err)
	}
	u.reset()
}
