package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

const jobCols = `id, kind, queue, payload::text, state, attempt, max_attempts, run_at, lease_until,
	last_error, progress, COALESCE(dedupe_key, ''), created_at, finished_at`

// jobColsJ is jobCols qualified by the alias j, for UPDATE … FROM.
const jobColsJ = `j.id, j.kind, j.queue, j.payload::text, j.state, j.attempt, j.max_attempts, j.run_at, j.lease_until,
	j.last_error, j.progress, COALESCE(j.dedupe_key, ''), j.created_at, j.finished_at`

func scanJob(r pgx.Row) (*jobs.Job, error) {
	var (
		j                 jobs.Job
		payload, state    string
		lease, finishedAt *time.Time
	)
	if err := r.Scan(&j.ID, &j.Kind, &j.Queue, &payload, &state, &j.Attempt, &j.MaxAttempts, &j.RunAt, &lease,
		&j.LastError, &j.Progress, &j.DedupeKey, &j.CreatedAt, &finishedAt); err != nil {
		return nil, err
	}
	j.Payload = []byte(payload)
	j.State = jobs.State(state)
	j.RunAt = j.RunAt.UTC()
	j.CreatedAt = j.CreatedAt.UTC()
	if lease != nil {
		t := lease.UTC()
		j.LeaseUntil = &t
	}
	if finishedAt != nil {
		t := finishedAt.UTC()
		j.FinishedAt = &t
	}
	return &j, nil
}

func collectJobs(rows pgx.Rows) ([]*jobs.Job, error) {
	defer rows.Close()
	var out []*jobs.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// relaxedTx is WriteTx with synchronous_commit off for this transaction:
// the commit does not wait for the WAL flush. It is for the engine's own
// bookkeeping (claims, leases, outcomes, logs), which nobody was promised
// durability for: a server crash can lose only the last few such commits
// (never corrupt anything), and at-least-once delivery absorbs that (a lost
// claim or outcome means the job runs again). Enqueues keep full
// durability.
func (db *DB) relaxedTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// InsertJobs inserts a batch in one transaction and NOTIFYs once.
func (db *DB) InsertJobs(ctx context.Context, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	res, err := store.InTxResult(func(fn func(pgx.Tx) error) error { return db.WriteTx(ctx, fn) },
		func(tx pgx.Tx) ([]jobs.EnqueueResult, error) { return insertJobs(ctx, tx, now, batch) })
	if err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(batch), err)
	}
	return res, nil
}

// InsertJobsTx inserts a batch inside the caller's transaction, which must
// have been begun by this store (RunTx); the NOTIFY is delivered when the
// caller commits.
func (db *DB) InsertJobsTx(ctx context.Context, tx store.Tx, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	t, err := db.pgxTx(tx)
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}
	res, err := insertJobs(ctx, t, now, batch)
	if err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(batch), err)
	}
	return res, nil
}

// insertJobs reserves ids from the sequence, claims dedupe keys with ON
// CONFLICT DO NOTHING (a concurrent transaction holding the same key makes
// us wait for its outcome, so two instances cannot both win), then inserts
// the winners with one multi-row INSERT over arrays.
func insertJobs(ctx context.Context, tx pgx.Tx, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	res := make([]jobs.EnqueueResult, len(batch))
	first := map[string]int{} // dedupe key → index of its first use in batch
	var uniq []int
	for i, j := range batch {
		if j.DedupeKey != "" {
			if f, ok := first[j.DedupeKey]; ok {
				res[i].Duplicate = true
				res[i].ID = int64(-1 - f) // resolved below
				continue
			}
			first[j.DedupeKey] = i
		}
		uniq = append(uniq, i)
	}
	rows, err := tx.Query(ctx, `SELECT nextval('backlot_jobs_id_seq') FROM generate_series(1, $1)`, len(uniq))
	if err != nil {
		return nil, fmt.Errorf("reserve ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reserve ids: %w", err)
	}
	for k, i := range uniq {
		res[i].ID = ids[k]
	}
	if len(first) > 0 {
		keys := make([]string, 0, len(first))
		for k := range first {
			keys = append(keys, k)
		}
		sort.Strings(keys) // one lock order for every transaction: no deadlocks
		kids := make([]int64, len(keys))
		for n, k := range keys {
			kids[n] = res[first[k]].ID
		}
		rows, err := tx.Query(ctx, `INSERT INTO backlot_job_dedupe (key, job_id, created_at)
			SELECT k, id, $3 FROM unnest($1::text[], $2::bigint[]) AS u(k, id)
			ON CONFLICT (key) DO NOTHING RETURNING key`, keys, kids, now)
		if err != nil {
			return nil, fmt.Errorf("dedupe keys: %w", err)
		}
		won, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("dedupe keys: %w", err)
		}
		if len(won) < len(keys) {
			lost := slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(won, k) })
			rows, err := tx.Query(ctx, `SELECT key, job_id FROM backlot_job_dedupe WHERE key = ANY($1)`, lost)
			if err != nil {
				return nil, fmt.Errorf("dedupe keys: %w", err)
			}
			var k string
			var id int64
			_, err = pgx.ForEachRow(rows, []any{&k, &id}, func() error {
				i := first[k]
				res[i] = jobs.EnqueueResult{ID: id, Duplicate: true}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("dedupe keys: %w", err)
			}
		}
	}
	n := len(uniq)
	var (
		jid      = make([]int64, 0, n)
		kind     = make([]string, 0, n)
		queue    = make([]string, 0, n)
		payload  = make([]string, 0, n)
		state    = make([]string, 0, n)
		attempt  = make([]int32, 0, n)
		lease    = make([]*time.Time, 0, n)
		maxAtt   = make([]int32, 0, n)
		runAt    = make([]time.Time, 0, n)
		dedupe   = make([]string, 0, n)
		queueSet = map[string]bool{} // queues of rows left for a claim: NOTIFYed
	)
	for _, i := range uniq {
		if res[i].Duplicate {
			continue
		}
		j := batch[i]
		st, ra := jobs.StateAvailable, j.RunAt
		if ra.IsZero() || !ra.After(now) {
			ra = now
		} else {
			st = jobs.StateScheduled
		}
		var att int32
		var lu *time.Time
		if !j.LeaseUntil.IsZero() { // claimed by the inserting engine
			st, att, lu = jobs.StateRunning, 1, &batch[i].LeaseUntil
		} else {
			queueSet[j.Queue] = true
		}
		jid = append(jid, res[i].ID)
		kind = append(kind, j.Kind)
		queue = append(queue, j.Queue)
		payload = append(payload, string(j.Payload))
		state = append(state, string(st))
		attempt = append(attempt, att)
		lease = append(lease, lu)
		maxAtt = append(maxAtt, int32(j.MaxAttempts))
		runAt = append(runAt, ra)
		dedupe = append(dedupe, j.DedupeKey)
	}
	if len(jid) > 0 {
		qs := make([]string, 0, len(queueSet))
		for q := range queueSet {
			qs = append(qs, q)
		}
		sort.Strings(qs)
		// The NOTIFY rides in the same statement: one round trip fewer.
		// Rows inserted already claimed wake nobody.
		_, err = tx.Exec(ctx, `WITH ins AS (INSERT INTO backlot_jobs
			(id, kind, queue, payload, state, attempt, lease_until, max_attempts, run_at, dedupe_key, created_at)
			SELECT id, kind, queue, payload::json, state, attempt, lease_until, max_attempts, run_at, NULLIF(dedupe_key, ''), $11
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[],
				$8::int[], $9::timestamptz[], $10::text[])
			AS u(id, kind, queue, payload, state, attempt, lease_until, max_attempts, run_at, dedupe_key))
			SELECT pg_notify($12, $13) WHERE $13 <> ''`,
			jid, kind, queue, payload, state, attempt, lease, maxAtt, runAt, dedupe, now, store.JobsChannel, strings.Join(qs, ","))
		if err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
	}
	for i := range res {
		if res[i].ID < 0 { // duplicate of an earlier entry of this batch
			res[i].ID = res[-1-int(res[i].ID)].ID
		}
	}
	return res, nil
}

// ClaimJobs claims due jobs with FOR UPDATE SKIP LOCKED: lapsed leases
// first (crash recovery), then jobs in run_at order.
func (db *DB) ClaimJobs(ctx context.Context, p store.ClaimParams) ([]*jobs.Job, error) {
	if p.Limit <= 0 || len(p.Kinds) == 0 {
		return nil, nil
	}
	lease := p.Now.Add(p.Lease)
	var q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}
	claim := func(where, order string, limit int) ([]*jobs.Job, error) {
		rows, err := q.Query(ctx, `WITH c AS (
			SELECT id FROM backlot_jobs WHERE queue = $1 AND kind = ANY($2) AND `+where+`
			ORDER BY `+order+` LIMIT $4 FOR UPDATE SKIP LOCKED)
			UPDATE backlot_jobs j SET state = 'running', attempt = j.attempt + 1, lease_until = $5
			FROM c WHERE j.id = c.id RETURNING `+jobColsJ, p.Queue, p.Kinds, p.Now, limit, lease)
		if err != nil {
			return nil, err
		}
		return collectJobs(rows)
	}
	var out []*jobs.Job
	err := db.relaxedTx(ctx, func(tx pgx.Tx) error {
		q = tx
		out = out[:0]
		if !p.SkipLapsed {
			got, err := claim(`state = 'running' AND lease_until < $3 AND attempt < max_attempts`, `lease_until`, p.Limit)
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
		if n := p.Limit - len(out); n > 0 {
			got, err := claim(`state IN ('available', 'scheduled', 'retrying') AND run_at <= $3`, `run_at, id`, n)
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim jobs of queue %s: %w", p.Queue, err)
	}
	store.SortClaimed(out)
	return out, nil
}

func refArrays(refs []store.JobRef) ([]int64, []int32) {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, func(a, b store.JobRef) int { return int(a.ID - b.ID) })
	ids, att := make([]int64, len(refs)), make([]int32, len(refs))
	for i, r := range refs {
		ids[i], att[i] = r.ID, int32(r.Attempt)
	}
	return ids, att
}

// ExtendLeases renews the leases of running jobs in one statement.
func (db *DB) ExtendLeases(ctx context.Context, until time.Time, refs []store.JobRef) ([]store.LeaseStatus, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ids, att := refArrays(refs)
	var out []store.LeaseStatus
	err := db.relaxedTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE backlot_jobs j SET lease_until = $1
			FROM unnest($2::bigint[], $3::int[]) AS r(id, attempt)
			WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = 'running'
			RETURNING j.id, j.cancel_requested`, until, ids, att)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.LeaseStatus, error) {
			var s store.LeaseStatus
			err := r.Scan(&s.ID, &s.CancelRequested)
			return s, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("extend %d leases: %w", len(refs), err)
	}
	return out, nil
}

// UpdateJobs writes logs, progress and outcomes in one transaction, one
// statement each.
func (db *DB) UpdateJobs(ctx context.Context, u store.JobUpdates) error {
	if u.Empty() {
		return nil
	}
	err := db.relaxedTx(ctx, func(tx pgx.Tx) error {
		if n := len(u.Logs); n > 0 {
			ids, at, lines := make([]int64, n), make([]time.Time, n), make([]string, n)
			for i, l := range u.Logs {
				ids[i], at[i], lines[i] = l.JobID, l.At, l.Line
			}
			if _, err := tx.Exec(ctx, `INSERT INTO backlot_job_logs (job_id, at, line)
				SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[])`, ids, at, lines); err != nil {
				return fmt.Errorf("logs: %w", err)
			}
		}
		if n := len(u.Progress); n > 0 {
			last := map[int64]int{} // one row per job: UPDATE … FROM applies only one
			for _, p := range u.Progress {
				last[p.JobID] = p.Percent
			}
			ids, pct := make([]int64, 0, len(last)), make([]int32, 0, len(last))
			for id, p := range last {
				ids, pct = append(ids, id), append(pct, int32(p))
			}
			if _, err := tx.Exec(ctx, `UPDATE backlot_jobs j SET progress = p.pct
				FROM unnest($1::bigint[], $2::int[]) AS p(id, pct) WHERE j.id = p.id`, ids, pct); err != nil {
				return fmt.Errorf("progress: %w", err)
			}
		}
		if n := len(u.Finishes); n > 0 {
			fs := slices.Clone(u.Finishes)
			slices.SortFunc(fs, func(a, b store.JobFinish) int { return int(a.ID - b.ID) })
			var (
				ids   = make([]int64, n)
				att   = make([]int32, n)
				state = make([]string, n)
				runAt = make([]time.Time, n)
				errs  = make([]string, n)
				at    = make([]time.Time, n)
			)
			for i, f := range fs {
				ids[i], att[i], state[i], runAt[i], errs[i], at[i] = f.ID, int32(f.Attempt), string(f.State), f.RunAt, f.Error, f.At
			}
			if _, err := tx.Exec(ctx, `UPDATE backlot_jobs j SET
				state = CASE WHEN j.cancel_requested AND f.state <> 'completed' THEN 'cancelled' ELSE f.state END,
				run_at = CASE WHEN f.state = 'retrying' AND NOT j.cancel_requested THEN f.run_at ELSE j.run_at END,
				last_error = CASE WHEN f.err = '' THEN j.last_error ELSE f.err END,
				lease_until = NULL,
				finished_at = CASE WHEN f.state = 'retrying' AND NOT j.cancel_requested THEN NULL ELSE f.at END
				FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::text[], $6::timestamptz[])
				AS f(id, attempt, state, run_at, err, at)
				WHERE j.id = f.id AND j.attempt = f.attempt AND j.state = 'running'`,
				ids, att, state, runAt, errs, at); err != nil {
				return fmt.Errorf("finish: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update jobs: %w", err)
	}
	return nil
}

// ReleaseJobs hands running jobs back without counting the attempt.
func (db *DB) ReleaseJobs(ctx context.Context, now time.Time, refs []store.JobRef) error {
	if len(refs) == 0 {
		return nil
	}
	ids, att := refArrays(refs)
	_, err := db.pool.Exec(ctx, `UPDATE backlot_jobs j
		SET state = 'available', attempt = j.attempt - 1, lease_until = NULL, run_at = $1
		FROM unnest($2::bigint[], $3::int[]) AS r(id, attempt)
		WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = 'running'`, now, ids, att)
	if err != nil {
		return fmt.Errorf("release %d jobs: %w", len(refs), err)
	}
	return nil
}

// GetJob reads one job.
func (db *DB) GetJob(ctx context.Context, id int64) (*jobs.Job, error) {
	j, err := scanJob(db.pool.QueryRow(ctx, `SELECT `+jobCols+` FROM backlot_jobs WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, notFound(err))
	}
	return j, nil
}

// ListJobs lists jobs newest first.
func (db *DB) ListJobs(ctx context.Context, f store.JobFilter) ([]*jobs.Job, error) {
	c := store.JobConds(f, placeholder)
	q := `SELECT ` + jobCols + ` FROM backlot_jobs` + c.Where() + ` ORDER BY id DESC LIMIT ` + c.Arg(f.PageLimit())
	rows, err := db.pool.Query(ctx, q, c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	js, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// JobLogs reads a job's log.
func (db *DB) JobLogs(ctx context.Context, id int64) ([]store.JobLogLine, error) {
	// ctid order is insertion order for a table that is only appended to
	// and deleted from by job; good enough, and no extra column.
	rows, err := db.pool.Query(ctx, `SELECT at, line FROM backlot_job_logs WHERE job_id = $1 ORDER BY at, ctid`, id)
	if err != nil {
		return nil, fmt.Errorf("logs of job %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.JobLogLine, error) {
		l := store.JobLogLine{JobID: id}
		err := r.Scan(&l.At, &l.Line)
		l.At = l.At.UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("logs of job %d: %w", id, err)
	}
	return out, nil
}

// RetryJob makes a job available again now and wakes idle fetchers.
func (db *DB) RetryJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error) {
	return db.transition(ctx, "retry", id, `UPDATE backlot_jobs SET state = 'available', run_at = $1,
		finished_at = NULL, lease_until = NULL, cancel_requested = false,
		max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END
		WHERE id = $2 AND state IN ('failed', 'cancelled', 'retrying', 'scheduled') RETURNING `+jobCols, now, "", true)
}

// CancelJob cancels a waiting job, or asks a running one to stop.
func (db *DB) CancelJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error) {
	return db.transition(ctx, "cancel", id, `UPDATE backlot_jobs SET
		state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
		cancel_requested = (state = 'running') OR cancel_requested,
		finished_at = CASE WHEN state = 'running' THEN finished_at ELSE $1 END
		WHERE id = $2 AND state IN ('scheduled', 'available', 'retrying', 'running') RETURNING `+jobCols,
		now, jobs.StateCancelled, false)
}

// transition runs a one-row state change (see store.Transition); a job
// made available again is announced on JobsChannel in the same commit.
func (db *DB) transition(ctx context.Context, op string, id int64, q string, now time.Time, okState jobs.State, notify bool) (*jobs.Job, error) {
	var j *jobs.Job
	err := db.WriteTx(ctx, func(tx pgx.Tx) error {
		var err error
		j, err = store.Transition(
			func() (*jobs.Job, error) {
				j, err := scanJob(tx.QueryRow(ctx, q, now, id))
				if err == nil && notify {
					_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, store.JobsChannel, j.Queue)
				}
				return j, notFound(err)
			},
			func() (*jobs.Job, error) {
				return scanJob(tx.QueryRow(ctx, `SELECT `+jobCols+` FROM backlot_jobs WHERE id = $1`, id))
			}, okState)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s job %d: %w", op, id, err)
	}
	return j, nil
}

// DeleteJobs deletes finished jobs and their logs.
func (db *DB) DeleteJobs(ctx context.Context, p store.DeleteJobsParams) (int64, error) {
	if err := store.CheckDeletable(p.State); err != nil {
		return 0, err
	}
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	var n int64
	err := db.pool.QueryRow(ctx, `WITH d AS (
		DELETE FROM backlot_jobs WHERE id IN (
			SELECT id FROM backlot_jobs WHERE state = $1 AND finished_at < $2 ORDER BY finished_at, id LIMIT $3)
		RETURNING id),
		l AS (DELETE FROM backlot_job_logs WHERE job_id IN (SELECT id FROM d))
		SELECT count(*) FROM d`, string(p.State), p.FinishedBefore, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("delete %s jobs: %w", p.State, err)
	}
	return n, nil
}

// FailLostJobs fails running jobs whose lease lapsed on their last attempt.
func (db *DB) FailLostJobs(ctx context.Context, now time.Time) (int64, error) {
	t, err := db.pool.Exec(ctx, `UPDATE backlot_jobs SET state = 'failed', finished_at = $1, lease_until = NULL,
		last_error = 'lease expired on the last attempt (worker lost)'
		WHERE state = 'running' AND lease_until < $1 AND attempt >= max_attempts`, now)
	if err != nil {
		return 0, fmt.Errorf("fail lost jobs: %w", err)
	}
	return t.RowsAffected(), nil
}

// DeleteDedupeKeys forgets old dedupe keys.
func (db *DB) DeleteDedupeKeys(ctx context.Context, before time.Time) (int64, error) {
	t, err := db.pool.Exec(ctx, `DELETE FROM backlot_job_dedupe WHERE created_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("delete dedupe keys: %w", err)
	}
	return t.RowsAffected(), nil
}

// CountJobs counts unfinished jobs by queue and state. Two queries, each
// matching a partial index, so finished jobs are never scanned.
func (db *DB) CountJobs(ctx context.Context) ([]store.JobCount, error) {
	rows, err := db.pool.Query(ctx, `SELECT queue, state, count(*) FROM backlot_jobs
		WHERE state IN ('available', 'scheduled', 'retrying') GROUP BY queue, state
		UNION ALL
		SELECT queue, state, count(*) FROM backlot_jobs WHERE state = 'running' GROUP BY queue, state
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.JobCount, error) {
		var c store.JobCount
		var state string
		err := r.Scan(&c.Queue, &state, &c.Count)
		c.State = jobs.State(state)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// ListenJobs LISTENs on store.JobsChannel on a connection of its own (not
// from the pool), reconnecting after errors, until ctx ends.
func (db *DB) ListenJobs(ctx context.Context, fn func(queue string)) error {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listen(ctx, fn)
		if ctx.Err() != nil {
			break
		}
		_ = err // the caller polls meanwhile; reconnect with backoff
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	return nil
}

func (db *DB) listen(ctx context.Context, fn func(queue string)) error {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+store.JobsChannel); err != nil {
		return err
	}
	fn("") // anything may have happened while we were not listening
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		for q := range strings.SplitSeq(n.Payload, ",") {
			fn(q)
		}
	}
}

// LeaderPingInterval is how often a leader checks that the connection
// holding its advisory lock is alive.
const LeaderPingInterval = 2 * time.Second

// TryLead takes a session advisory lock named by name on a connection of
// its own and holds it until Release or until that connection fails.
func (db *DB) TryLead(ctx context.Context, name string) (store.Leadership, bool, error) {
	h := fnv.New64a()
	h.Write([]byte("backlot:leader:" + name))
	key := int64(h.Sum64())
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, false, fmt.Errorf("lead %s: %w", name, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, false, fmt.Errorf("lead %s: %w", name, err)
		}
		return nil, false, nil
	}
	l := &leadership{conn: conn, key: key, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, true, nil
}

type leadership struct {
	conn *pgx.Conn
	key  int64
	lost chan struct{} // closed when the lock's connection failed
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (l *leadership) Lost() <-chan struct{} { return l.lost }

// watch owns the connection: it pings it, and on Release unlocks and
// closes it.
func (l *leadership) watch() {
	defer close(l.done)
	t := time.NewTicker(LeaderPingInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
			l.conn.Close(ctx)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), LeaderPingInterval)
			err := l.conn.Ping(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				l.conn.Close(context.Background())
				<-l.stop
				return
			}
		}
	}
}

func (l *leadership) Release() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	return nil
}
