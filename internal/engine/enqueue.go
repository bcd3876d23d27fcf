package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

type enqueueReq struct {
	ins  store.JobInsert
	done chan enqueueRes // buffered 1
	// deferred: writeLoop held it back one batch for a worker slot.
	deferred bool
}

type enqueueRes struct {
	res jobs.EnqueueResult
	err error
}

// jsonValid accepts JSON in valid UTF-8 (both databases refuse anything
// else, and one refused row would fail its whole batch).
func jsonValid(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// Limits on the text fields of a job. They are checked before a job joins
// a batch: a value the database refuses would fail every job of the batch.
const (
	maxKindLen      = 200
	maxDedupeKeyLen = 1000
)

// checkText rejects what PostgreSQL's text type refuses (invalid UTF-8,
// NUL) and overlong values.
func checkText(what, s string, maxLen int) error {
	switch {
	case len(s) > maxLen:
		return fmt.Errorf("%s longer than %d bytes", what, maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

// prepare checks an enqueue and fills in defaults. A nil or empty payload
// is "{}". valid says the caller has checked payload (JSON in valid UTF-8).
func (e *Engine) prepare(kind string, payload []byte, opts *jobs.EnqueueOpts, valid bool) (store.JobInsert, error) {
	if kind == "" {
		return store.JobInsert{}, fmt.Errorf("enqueue: empty kind")
	}
	if err := checkText("kind", kind, maxKindLen); err != nil {
		return store.JobInsert{}, fmt.Errorf("enqueue: %w", err)
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	} else if !valid && !jsonValid(payload) {
		return store.JobInsert{}, fmt.Errorf("enqueue %s: %w", kind, ErrInvalidPayload)
	}
	q := e.queueOf(kind, opts)
	if _, ok := e.queues[q]; !ok {
		return store.JobInsert{}, fmt.Errorf("enqueue %s: %w %q", kind, ErrUnknownQueue, q)
	}
	ins := store.JobInsert{Kind: kind, Queue: q, Payload: payload, MaxAttempts: e.cfg.Retry.MaxAttempts}
	if k, ok := e.cfg.Kinds[kind]; ok && k.MaxAttempts > 0 {
		ins.MaxAttempts = k.MaxAttempts
	}
	if opts != nil {
		if opts.MaxAttempts > 0 {
			ins.MaxAttempts = opts.MaxAttempts
		}
		ins.RunAt = opts.RunAt
		if err := checkText("dedupe key", opts.DedupeKey, maxDedupeKeyLen); err != nil {
			return store.JobInsert{}, fmt.Errorf("enqueue %s: %w", kind, err)
		}
		ins.DedupeKey = opts.DedupeKey
	}
	return ins, nil
}

// Enqueue adds a job durably: it returns once the job is committed (or
// with the error of the transaction its batch shared). payload must be JSON
// (nil means {}). A DedupeKey seen before (within DedupeRetention) returns
// the first job's id with Duplicate set and adds nothing.
//
// Concurrent calls are group-committed by one goroutine. Before Start and
// after Stop each call commits on its own.
func (e *Engine) Enqueue(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	return e.enqueue(ctx, kind, payload, opts, false)
}

// EnqueueValid is Enqueue for a payload the caller has already checked to
// be JSON in valid UTF-8 (the webhook ingest does, before it answers a bad
// body 400): checking it again was a few percent of an ingest's CPU. An
// invalid payload given here would fail its whole batch.
func (e *Engine) EnqueueValid(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	return e.enqueue(ctx, kind, payload, opts, true)
}

func (e *Engine) enqueue(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts, valid bool) (jobs.EnqueueResult, error) {
	ins, err := e.prepare(kind, payload, opts, valid)
	if err != nil {
		return jobs.EnqueueResult{}, err
	}
	e.mu.RLock()
	if !e.committing {
		e.mu.RUnlock()
		res, err := e.st.InsertJobs(ctx, e.now(), []store.JobInsert{ins})
		if err != nil {
			return jobs.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", kind, err)
		}
		e.enqueued([]store.JobInsert{ins}, res)
		return res[0], nil
	}
	req := e.reqPool.Get().(*enqueueReq)
	req.ins = ins
	select {
	case e.enq <- req:
		e.mu.RUnlock()
	case <-ctx.Done():
		e.mu.RUnlock()
		e.reqPool.Put(req)
		return jobs.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", kind, ctx.Err())
	}
	select {
	case r := <-req.done:
		req.ins, req.deferred = store.JobInsert{}, false
		e.reqPool.Put(req)
		if r.err != nil {
			return jobs.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", kind, r.err)
		}
		return r.res, nil
	case <-ctx.Done():
		// The batch may still commit; req is dropped, not reused.
		return jobs.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", kind, ctx.Err())
	}
}

// EnqueueTx adds a job inside the caller's transaction: a *sql.Tx begun
// with the SQLite store's WriteTx, or a pgx.Tx of the PostgreSQL store's
// pool. The job exists once the caller commits, and not if it rolls back.
// It bypasses group commit. On PostgreSQL the NOTIFY rides on the caller's
// commit; on SQLite the job is picked up at the next poll (PollInterval).
func (e *Engine) EnqueueTx(ctx context.Context, tx store.Tx, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	ins, err := e.prepare(kind, payload, opts, false)
	if err != nil {
		return jobs.EnqueueResult{}, err
	}
	res, err := e.st.InsertJobsTx(ctx, tx, e.now(), []store.JobInsert{ins})
	if err != nil {
		return jobs.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return res[0], nil
}

// commitLoop is the group committer: it blocks for one request, takes
// whatever else is already queued, commits the lot in one transaction and
// answers every caller. It returns when enq is closed and drained.
func (e *Engine) commitLoop() {
	defer e.commitWG.Done()
	batch := make([]*enqueueReq, 0, MaxEnqueueBatch)
	ins := make([]store.JobInsert, 0, MaxEnqueueBatch)
	qs := make([]*queue, 0, MaxEnqueueBatch)
	for {
		r, ok := <-e.enq
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	drain:
		for len(batch) < MaxEnqueueBatch {
			select {
			case r, ok := <-e.enq:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		// A due job this engine runs, in a queue with no jobs waiting
		// before it, is inserted already claimed when a worker slot is
		// free, and started once committed: no claim transaction and no
		// second write of its row (the store honours JobInsert.LeaseUntil).
		now := e.now()
		lease := now.Add(e.cfg.Lease.D())
		ins, qs = ins[:0], qs[:0]
		e.insertClaimMu.RLock()
		for _, r := range batch {
			in := r.ins
			var q *queue
			if qu := e.insertClaimQueue(&in, now); qu != nil && !qu.backlog.Load() && qu.reserve(1) == 1 {
				q, in.LeaseUntil = qu, lease
			}
			ins, qs = append(ins, in), append(qs, q)
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeWriteTimeout)
		res, err := e.st.InsertJobs(ctx, now, ins)
		cancel()
		e.m.batch.Observe(float64(len(batch)))
		if err != nil {
			for _, q := range qs {
				if q != nil {
					q.release(1)
				}
			}
			e.insertClaimMu.RUnlock()
			e.log.Error("enqueue batch failed", "jobs", len(batch), "error", err)
			for _, r := range batch {
				r.done <- enqueueRes{err: err}
			}
			continue
		}
		e.startClaimed(qs, ins, res, now)
		e.insertClaimMu.RUnlock()
		clear(qs)
		for i, r := range batch {
			r.done <- enqueueRes{res: res[i]}
		}
		e.enqueued(ins, res)
	}
}

// enqueued counts new jobs and wakes the fetchers of the queues of those
// due and not claimed at insert (their queue has a backlog from now on).
func (e *Engine) enqueued(ins []store.JobInsert, res []jobs.EnqueueResult) {
	var last string
	now := e.now()
	for i, r := range res {
		if r.Duplicate {
			continue
		}
		e.m.total.WithLabelValues(ins[i].Kind, "enqueued").Inc()
		if q := ins[i].Queue; q != last && ins[i].LeaseUntil.IsZero() && !ins[i].RunAt.After(now) {
			if qu := e.queues[q]; qu != nil {
				qu.backlog.Store(true)
				qu.signal()
			}
			last = q
		}
	}
}

// writeLoop replaces commitLoop and updateLoop on a store with one writer
// (store.JobBatchWriter, SQLite). One goroutine gathers both the queued
// enqueues and the run updates (outcomes, log lines, progress) and writes
// them in one transaction; jobs this engine can run now are inserted
// already claimed and started from what it just inserted. Per job the
// writer then commits once for its insert and claim and shares a second
// commit for its outcome with the next batch's inserts, where the separate
// committer, fetcher and updater made three transactions. The commit is
// the enqueue's synchronous=FULL one, so nothing acknowledged gets weaker.
//
// When enq is closed (Stop) it writes what it holds and carries on as the
// plain updateLoop, which drains the updates until updDone.
func (e *Engine) writeLoop() {
	batch := make([]*enqueueReq, 0, MaxEnqueueBatch)
	var u pendingUpdates
	w := batchScratch{ins: make([]store.JobInsert, 0, MaxEnqueueBatch)}
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	var lastCommit time.Time // wall clock: a scheduling matter, not job time
	var carry []*enqueueReq  // held back by the last batch (see writeBatch)
	for open := true; open || len(carry) > 0; {
		batch = append(batch[:0], carry...)
		carry = carry[:0]
		if len(batch) == 0 {
			select {
			case r, ok := <-e.enq:
				if ok {
					batch = append(batch, r)
				} else {
					open = false
				}
			case x := <-e.updates:
				u.add(x)
			}
		}
		if open && len(batch) == 0 && time.Since(lastCommit) < gatherHot {
			// Updates alone under load: wait a moment for an enqueue to
			// share its commit rather than write them in one of their own.
			gather.Reset(updatesWait)
			select {
			case r, ok := <-e.enq:
				gather.Stop()
				if ok {
					batch = append(batch, r)
				} else {
					open = false
				}
			case <-gather.C:
			}
		}
	drain:
		for open && len(batch) < MaxEnqueueBatch {
			select {
			case r, ok := <-e.enq:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		// Under sustained load (the previous commit just ended), gather
		// for a moment before committing. With few cores, and with one
		// (GOMAXPROCS=1) above all, the first caller's send wakes this
		// goroutine ahead of the other requests already waiting on their
		// sockets, and its short syscalls never hand the processor over:
		// without a pause every commit (and fsync) carried one or two
		// jobs. Blocking here lets the scheduler poll the network and
		// run those handlers, which join this batch. The pause ends once
		// no caller joined for gatherGap, and after gatherMax at most.
		if open && len(batch) > 0 && len(batch) < MaxEnqueueBatch && time.Since(lastCommit) < gatherHot {
			deadline := time.Now().Add(gatherMax)
		gathering:
			for len(batch) < MaxEnqueueBatch {
				wait := min(gatherGap, time.Until(deadline))
				if wait <= 0 {
					break
				}
				gather.Reset(wait)
				select {
				case r, ok := <-e.enq:
					gather.Stop()
					if !ok {
						open = false
						break gathering
					}
					batch = append(batch, r)
				case <-gather.C:
					break gathering
				}
			}
		}
	updates:
		for range 1024 {
			select {
			case x := <-e.updates:
				u.add(x)
			default:
				break updates
			}
		}
		if len(batch) == 0 {
			e.flush(&u)
			continue
		}
		carry = e.writeBatch(batch, &u, &w, carry)
		lastCommit = time.Now()
		e.lastCommit.Store(lastCommit.UnixNano())
	}
	e.commitWG.Done()
	e.updateLoop()
}

// writeLoop's gathering pause (see there).
const (
	gatherHot = 2 * time.Millisecond   // a commit ended this recently: under load
	gatherGap = 100 * time.Microsecond // no caller joined for this long: commit
	gatherMax = time.Millisecond       // never pause longer
	// updatesWait is how long run updates wait under load for an enqueue
	// to share its commit.
	updatesWait = 5 * time.Millisecond
	// claimHot: the writer committed this recently, so it claims for
	// queues with waiting jobs and their fetchers leave it to it. Longer
	// than gatherHot: on one busy core a commit cycle (gathering, writing,
	// fsync) takes several milliseconds.
	claimHot = 10 * time.Millisecond
)

// insertClaimQueue returns the queue of in when in may be inserted
// already claimed by this engine (due now, of a kind it runs, the engine
// not stopping), nil when not. The caller then takes a worker slot (see
// queue.reserve) or leaves it to a later claim. Called with insertClaimMu
// held.
func (e *Engine) insertClaimQueue(in *store.JobInsert, now time.Time) *queue {
	if e.noInsertClaim || in.RunAt.After(now) {
		return nil
	}
	qu := e.queues[in.Queue]
	if qu == nil {
		return nil
	}
	if fn, _ := e.worker(in.Kind); fn == nil {
		return nil
	}
	return qu
}

// startClaimed starts the jobs inserted already claimed (qs[i] is the
// queue whose slot insert i took, nil if it took none) once their insert
// committed at now, and gives back the slots of those that turned out to
// be duplicates. Called with insertClaimMu held.
func (e *Engine) startClaimed(qs []*queue, ins []store.JobInsert, res []jobs.EnqueueResult, now time.Time) {
	created := now.Truncate(time.Microsecond).UTC() // as the store keeps it
	for i, q := range qs {
		if q == nil {
			continue
		}
		if res[i].Duplicate {
			q.release(1)
			continue
		}
		in := &ins[i]
		lu := in.LeaseUntil.Truncate(time.Microsecond).UTC()
		e.start(q, &jobs.Job{
			ID: res[i].ID, Kind: in.Kind, Queue: in.Queue,
			Payload: bytes.Clone(in.Payload), // the caller may reuse its buffer once answered
			State:   jobs.StateRunning, Attempt: 1, MaxAttempts: in.MaxAttempts,
			RunAt: created, LeaseUntil: &lu, DedupeKey: in.DedupeKey, CreatedAt: created,
		})
	}
}

// batchScratch is writeLoop's reusable space.
type batchScratch struct {
	ins    []store.JobInsert
	q      []*queue // queue whose slot a claimed insert holds, by index; nil if not claimed
	claims []store.ClaimParams
	claimQ []*queue
	reqs   []*enqueueReq // the batch's requests written now, by index of ins
}

// writerHot reports whether writeLoop committed a moment ago: it is under
// load and claims for queues with waiting jobs in its own transactions.
func (e *Engine) writerHot() bool {
	return e.bw != nil && time.Since(time.Unix(0, e.lastCommit.Load())) < claimHot
}

// writeBatch writes one group commit with the pending updates and the
// claims of queues with waiting jobs, answers the callers and starts the
// jobs claimed.
//
// A due job this engine runs that finds no free worker slot, in a queue
// whose slots are turning over (this batch takes some), is held back
// once, appended to carry for the next batch, instead of being inserted
// available: under load fast jobs finish while the writer writes, and the
// next batch inserts it claimed, where inserted now it would cost a claim
// (rewriting its row and indexes) in a later batch. Its caller waits one
// commit longer; it is held back at most once, and never when the queue's
// slots are all taken by running jobs.
func (e *Engine) writeBatch(batch []*enqueueReq, u *pendingUpdates, w *batchScratch, carry []*enqueueReq) []*enqueueReq {
	now := e.now()
	lease := now.Add(e.cfg.Lease.D())
	// Held until the claimed jobs are started, so Stop cannot begin
	// waiting on runWG in between.
	e.insertClaimMu.RLock()
	defer e.insertClaimMu.RUnlock()
	w.ins, w.q, w.claims, w.claimQ, w.reqs = w.ins[:0], w.q[:0], w.claims[:0], w.claimQ[:0], w.reqs[:0]
	if _, kinds := e.worker(""); !e.noInsertClaim && len(kinds) > 0 {
		// Queues with waiting jobs get their free slots filled in the same
		// transaction, oldest first (this batch's inserts included), where
		// their fetchers would claim in one of their own.
		for _, qu := range e.queues {
			if !qu.backlog.Load() {
				continue
			}
			if n := qu.reserve(maxClaim); n > 0 {
				w.claims = append(w.claims, store.ClaimParams{
					Queue: qu.name, Kinds: kinds, Limit: n, Now: now, Lease: e.cfg.Lease.D(), SkipLapsed: true,
				})
				w.claimQ = append(w.claimQ, qu)
				qu.turning = true
			}
		}
	}
	for _, r := range batch {
		in := r.ins
		var q *queue
		if qu := e.insertClaimQueue(&in, now); qu != nil {
			switch {
			case !qu.backlog.Load() && qu.reserve(1) == 1:
				q = qu
				in.LeaseUntil = lease
				qu.turning = true
			case qu.turning && !r.deferred:
				// Slots are coming free (this batch takes some):
				// next batch rather than a claim later.
				r.deferred = true
				carry = append(carry, r)
				continue
			}
		}
		w.reqs = append(w.reqs, r)
		w.ins = append(w.ins, in)
		w.q = append(w.q, q)
	}
	for _, qu := range e.queues {
		qu.turning = false
	}
	if len(w.reqs) == 0 && len(w.claims) == 0 && u.Empty() {
		return carry // all held back, nothing to write
	}
	batch = w.reqs
	ctx, cancel := context.WithTimeout(context.Background(), storeWriteTimeout)
	out, err := e.bw.WriteJobBatch(ctx, now, store.JobBatch{Inserts: w.ins, Updates: u.JobUpdates, Claims: w.claims})
	cancel()
	e.m.batch.Observe(float64(len(batch)))
	if err != nil {
		e.log.Error("enqueue batch failed", "jobs", len(batch), "error", err)
		for i, r := range batch {
			if w.q[i] != nil {
				w.q[i].release(1)
			}
			r.done <- enqueueRes{err: err}
		}
		for i, c := range w.claims {
			w.claimQ[i].release(c.Limit)
		}
		e.flush(u) // the updates on their own, with retries
		return carry
	}
	u.reset()
	res := out.Inserted
	e.startClaimed(w.q, w.ins, res, now)
	for i, r := range batch {
		r.done <- enqueueRes{res: res[i]}
	}
	e.enqueued(w.ins, res)
	for i, got := range out.Claimed {
		qu, n := w.claimQ[i], w.claims[i].Limit
		qu.release(n - len(got))
		for _, j := range got {
			e.start(qu, j)
		}
		if len(got) < n {
			qu.backlog.Store(false) // nothing due is left
		}
	}
	clear(w.q)
	clear(w.claimQ)
	clear(w.reqs)
	return carry
}
