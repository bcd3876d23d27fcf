package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

type enqueueReq struct {
	ins  store.JobInsert
	done chan enqueueRes // buffered 1
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
// is "{}".
func (e *Engine) prepare(kind string, payload []byte, opts *jobs.EnqueueOpts) (store.JobInsert, error) {
	if kind == "" {
		return store.JobInsert{}, fmt.Errorf("enqueue: empty kind")
	}
	if err := checkText("kind", kind, maxKindLen); err != nil {
		return store.JobInsert{}, fmt.Errorf("enqueue: %w", err)
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	} else if !jsonValid(payload) {
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
	ins, err := e.prepare(kind, payload, opts)
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
		req.ins = store.JobInsert{}
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
	ins, err := e.prepare(kind, payload, opts)
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
		ins = ins[:0]
		for _, r := range batch {
			ins = append(ins, r.ins)
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeWriteTimeout)
		res, err := e.st.InsertJobs(ctx, e.now(), ins)
		cancel()
		e.m.batch.Observe(float64(len(batch)))
		if err != nil {
			e.log.Error("enqueue batch failed", "jobs", len(batch), "error", err)
			for _, r := range batch {
				r.done <- enqueueRes{err: err}
			}
			continue
		}
		for i, r := range batch {
			r.done <- enqueueRes{res: res[i]}
		}
		e.enqueued(ins, res)
	}
}

// enqueued counts new jobs and wakes the fetchers of their queues.
func (e *Engine) enqueued(ins []store.JobInsert, res []jobs.EnqueueResult) {
	var last string
	now := e.now()
	for i, r := range res {
		if r.Duplicate {
			continue
		}
		e.m.total.WithLabelValues(ins[i].Kind, "enqueued").Inc()
		if q := ins[i].Queue; q != last && !ins[i].RunAt.After(now) {
			e.wake(q)
			last = q
		}
	}
}
