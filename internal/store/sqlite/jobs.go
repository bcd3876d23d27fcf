package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// Job times are stored as unix microseconds.
func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

const jobCols = `id, kind, queue, payload, state, attempt, max_attempts, run_at, lease_until,
	last_error, progress, dedupe_key, created_at, finished_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanJob(r rowScanner) (*jobs.Job, error) {
	var (
		j                 jobs.Job
		payload           string
		state             string
		runAt, createdAt  int64
		lease, finishedAt sql.NullInt64
		dedupe            sql.NullString
	)
	if err := r.Scan(&j.ID, &j.Kind, &j.Queue, &payload, &state, &j.Attempt, &j.MaxAttempts, &runAt, &lease,
		&j.LastError, &j.Progress, &dedupe, &createdAt, &finishedAt); err != nil {
		return nil, err
	}
	j.Payload = []byte(payload)
	j.State = jobs.State(state)
	j.RunAt = fromUS(runAt)
	j.CreatedAt = fromUS(createdAt)
	j.DedupeKey = dedupe.String
	if lease.Valid {
		t := fromUS(lease.Int64)
		j.LeaseUntil = &t
	}
	if finishedAt.Valid {
		t := fromUS(finishedAt.Int64)
		j.FinishedAt = &t
	}
	return &j, nil
}

func scanJobs(rows *sql.Rows) ([]*jobs.Job, error) {
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

// InsertJobs inserts a batch in one transaction on the writer connection.
// SQLite has no cross-process notification; the engine wakes its own
// fetchers after the commit.
func (db *DB) InsertJobs(ctx context.Context, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	if err := db.prepareJobStmts(ctx); err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(batch), err)
	}
	res, err := store.InTxResult(func(fn func(*sql.Tx) error) error { return db.WriteTx(ctx, fn) },
		func(tx *sql.Tx) ([]jobs.EnqueueResult, error) { return db.insertJobs(ctx, tx, now, batch) })
	if err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(batch), err)
	}
	return res, nil
}

// InsertJobsTx inserts a batch inside the caller's transaction, which must
// have been begun by this store (RunTx).
func (db *DB) InsertJobsTx(ctx context.Context, tx store.Tx, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	t, err := db.sqlTx(tx)
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}
	// No prepareJobStmts here: the caller's transaction holds the writer.
	res, err := db.insertJobs(ctx, t, now, batch)
	if err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(batch), err)
	}
	return res, nil
}

// insertJobs writes a whole batch with a few multi-row statements (see
// execChunks). Ids are assigned here from sqlite_sequence, which the single
// writer makes safe, so every input knows its id without relying on
// RETURNING order.
func (db *DB) insertJobs(ctx context.Context, tx *sql.Tx, now time.Time, batch []store.JobInsert) ([]jobs.EnqueueResult, error) {
	res := make([]jobs.EnqueueResult, len(batch))
	var (
		known map[string]int64 // dedupe key → job id
		keys  []string         // distinct dedupe keys of the batch
		args  []any
	)
	for _, j := range batch {
		if j.DedupeKey == "" {
			continue
		}
		if known == nil {
			known = make(map[string]int64, len(batch))
		}
		if _, ok := known[j.DedupeKey]; !ok {
			known[j.DedupeKey] = 0
			keys = append(keys, j.DedupeKey)
		}
	}
	if len(keys) > 0 {
		clear(known)
		for start := 0; start < len(keys); start += maxChunk {
			chunk := keys[start:min(len(keys), start+maxChunk)]
			st, size, err := db.chunkStmt(ctx, tx, chunkFindKeys, len(chunk))
			if err != nil {
				return nil, fmt.Errorf("dedupe keys: %w", err)
			}
			args = args[:0]
			for _, k := range chunk {
				args = append(args, k)
			}
			for i := len(chunk); i < size; i++ {
				args = append(args, nil)
			}
			if err := findKeys(ctx, st, args, known); err != nil {
				return nil, fmt.Errorf("dedupe keys: %w", err)
			}
		}
	}
	var seq int64
	st, err := db.stmt(ctx, tx, stmtSeq)
	if err != nil {
		return nil, fmt.Errorf("job ids: %w", err)
	}
	err = st.QueryRowContext(ctx).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job ids: %w", err)
	}
	// fresh lists the inputs to insert, in order; their ids follow seq.
	fresh := make([]int, 0, len(batch))
	keys = keys[:0]
	for i, j := range batch {
		if j.DedupeKey != "" {
			if id, ok := known[j.DedupeKey]; ok {
				res[i] = jobs.EnqueueResult{ID: id, Duplicate: true}
				continue
			}
		}
		seq++
		res[i] = jobs.EnqueueResult{ID: seq}
		fresh = append(fresh, i)
		if j.DedupeKey != "" {
			known[j.DedupeKey] = seq
			keys = append(keys, j.DedupeKey)
		}
	}
	if len(fresh) == 0 {
		return res, nil
	}
	head := []any{us(now)}
	args, err = db.execChunks(ctx, tx, chunkInsertJobs, len(fresh), insertJobCols, head, args, func(args []any, i int) []any {
		j := &batch[fresh[i]]
		state := jobs.StateAvailable
		runAt := j.RunAt
		if runAt.IsZero() || !runAt.After(now) {
			runAt = now
		} else {
			state = jobs.StateScheduled
		}
		var key, lease any
		if j.DedupeKey != "" {
			key = j.DedupeKey
		}
		attempt := int64(0)
		if !j.LeaseUntil.IsZero() { // claimed by the inserting engine (WriteJobBatch)
			state, attempt, lease = jobs.StateRunning, 1, us(j.LeaseUntil)
		}
		return append(args, res[fresh[i]].ID, j.Kind, j.Queue, string(j.Payload), string(state),
			attempt, int64(j.MaxAttempts), us(runAt), lease, key)
	})
	if err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	if len(keys) > 0 {
		_, err = db.execChunks(ctx, tx, chunkInsertKeys, len(keys), insertKeyCols, head, args, func(args []any, i int) []any {
			return append(args, keys[i], known[keys[i]])
		})
		if err != nil {
			return nil, fmt.Errorf("dedupe keys: %w", err)
		}
	}
	return res, nil
}

// findKeys adds the known ones of the keys in args to known.
func findKeys(ctx context.Context, st *sql.Stmt, args []any, known map[string]int64) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			return err
		}
		known[k] = id
	}
	return rows.Err()
}

// ClaimJobs claims due jobs: lapsed leases first (crash recovery), then
// jobs in run_at order. The single writer makes this race-free.
func (db *DB) ClaimJobs(ctx context.Context, p store.ClaimParams) ([]*jobs.Job, error) {
	if p.Limit <= 0 || len(p.Kinds) == 0 {
		return nil, nil
	}
	var out []*jobs.Job
	err := db.relaxedTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = db.claimJobs(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim jobs of queue %s: %w", p.Queue, err)
	}
	return out, nil
}

// claimJobs is ClaimJobs in tx.
func (db *DB) claimJobs(ctx context.Context, tx *sql.Tx, p store.ClaimParams) ([]*jobs.Job, error) {
	if p.Limit <= 0 || len(p.Kinds) == 0 {
		return nil, nil
	}
	now, lease := us(p.Now), us(p.Now.Add(p.Lease))
	// Parameters: lease_until, queue, now, limit, then the kinds as
	// parameters padded with NULL (matches no kind) or, beyond maxKindsIn,
	// as one JSON array.
	args := make([]any, claimKindsParam-1, claimKindsParam-1+1<<sizeIndex(len(p.Kinds)))
	args[0], args[1], args[2] = lease, p.Queue, now
	inline := len(p.Kinds) <= maxKindsIn
	if inline {
		for _, k := range p.Kinds {
			args = append(args, k)
		}
		for i := len(p.Kinds); i < 1<<sizeIndex(len(p.Kinds)); i++ {
			args = append(args, nil)
		}
	} else {
		kinds, err := json.Marshal(p.Kinds)
		if err != nil {
			return nil, err
		}
		args = append(args, string(kinds))
	}
	var out []*jobs.Job
	claim := func(lapsed bool, limit int) error {
		var (
			st  *sql.Stmt
			err error
		)
		switch {
		case inline && lapsed:
			st, _, err = db.chunkStmt(ctx, tx, chunkClaimLapsed, len(p.Kinds))
		case inline:
			st, _, err = db.chunkStmt(ctx, tx, chunkClaimDue, len(p.Kinds))
		case lapsed:
			st, err = db.stmt(ctx, tx, stmtClaimLapsed)
		default:
			st, err = db.stmt(ctx, tx, stmtClaimDue)
		}
		if err != nil {
			return err
		}
		args[3] = int64(limit)
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		js, err := scanJobs(rows)
		out = append(out, js...)
		return err
	}
	if !p.SkipLapsed {
		if err := claim(true, p.Limit); err != nil {
			return nil, err
		}
	}
	if n := p.Limit - len(out); n > 0 {
		if err := claim(false, n); err != nil {
			return nil, err
		}
	}
	store.SortClaimed(out)
	return out, nil
}

// ExtendLeases renews the leases of running jobs.
func (db *DB) ExtendLeases(ctx context.Context, until time.Time, refs []store.JobRef) ([]store.LeaseStatus, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var out []store.LeaseStatus
	err := db.relaxedTx(ctx, func(tx *sql.Tx) error {
		st, err := db.stmt(ctx, tx, stmtExtend)
		if err != nil {
			return err
		}
		for _, r := range refs {
			var c bool
			err := st.QueryRowContext(ctx, us(until), r.ID, r.Attempt).Scan(&c)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, store.LeaseStatus{ID: r.ID, CancelRequested: c})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("extend %d leases: %w", len(refs), err)
	}
	return out, nil
}

// finishUpdate ends runs, all of a chunk in one statement: the outcomes
// are the rows of f (id, attempt, state, run_at, err, at). A failed or
// retrying outcome of a job whose cancel was requested becomes cancelled;
// an empty error keeps last_error.
const finishUpdate = `UPDATE OR FAIL backlot_jobs SET
	state = CASE WHEN cancel_requested AND f.state <> 'completed' THEN 'cancelled' ELSE f.state END,
	run_at = CASE WHEN f.state = 'retrying' AND NOT cancel_requested THEN f.run_at ELSE backlot_jobs.run_at END,
	last_error = CASE WHEN f.err = '' THEN last_error ELSE f.err END,
	lease_until = NULL,
	finished_at = CASE WHEN f.state = 'retrying' AND NOT cancel_requested THEN NULL ELSE f.at END
	FROM f
	WHERE backlot_jobs.id = f.id AND backlot_jobs.attempt = f.attempt AND backlot_jobs.state = 'running'`

// UpdateJobs writes logs, progress and outcomes in one transaction.
func (db *DB) UpdateJobs(ctx context.Context, u store.JobUpdates) error {
	if u.Empty() {
		return nil
	}
	err := db.relaxedTx(ctx, func(tx *sql.Tx) error { return db.updateJobs(ctx, tx, u) })
	if err != nil {
		return fmt.Errorf("update jobs: %w", err)
	}
	return nil
}

// WriteJobBatch implements store.JobBatchWriter: one group commit's
// inserts, the pending run updates and the claims of queues with waiting
// jobs in one transaction with synchronous=FULL, so the single writer makes
// one commit (and one fsync) where it made three (insert, claim, outcome).
func (db *DB) WriteJobBatch(ctx context.Context, now time.Time, b store.JobBatch) (store.JobBatchResult, error) {
	var out store.JobBatchResult
	if err := db.prepareJobStmts(ctx); err != nil {
		return out, fmt.Errorf("write %d jobs: %w", len(b.Inserts), err)
	}
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if len(b.Inserts) > 0 {
			if out.Inserted, err = db.insertJobs(ctx, tx, now, b.Inserts); err != nil {
				return err
			}
		}
		if !b.Updates.Empty() {
			if err := db.updateJobs(ctx, tx, b.Updates); err != nil {
				return fmt.Errorf("update jobs: %w", err)
			}
		}
		for _, p := range b.Claims {
			got, err := db.claimJobs(ctx, tx, p)
			if err != nil {
				return fmt.Errorf("claim jobs of queue %s: %w", p.Queue, err)
			}
			out.Claimed = append(out.Claimed, got)
		}
		return nil
	})
	if err != nil {
		return store.JobBatchResult{}, fmt.Errorf("write %d jobs: %w", len(b.Inserts), err)
	}
	return out, nil
}

// updateJobs writes logs, progress and outcomes in tx.
func (db *DB) updateJobs(ctx context.Context, tx *sql.Tx, u store.JobUpdates) error {
	if len(u.Logs) > 0 {
		st, err := db.stmt(ctx, tx, stmtLog)
		if err != nil {
			return err
		}
		for _, l := range u.Logs {
			if _, err := st.ExecContext(ctx, l.JobID, us(l.At), l.Line); err != nil {
				return err
			}
		}
	}
	if len(u.Progress) > 0 {
		st, err := db.stmt(ctx, tx, stmtProgress)
		if err != nil {
			return err
		}
		for _, p := range u.Progress {
			if _, err := st.ExecContext(ctx, p.Percent, p.JobID); err != nil {
				return err
			}
		}
	}
	if len(u.Finishes) > 0 {
		_, err := db.execChunks(ctx, tx, chunkFinish, len(u.Finishes), finishCols, nil, nil, func(args []any, i int) []any {
			f := &u.Finishes[i]
			return append(args, f.ID, int64(f.Attempt), string(f.State), us(f.RunAt), f.Error, us(f.At))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ReleaseJobs hands running jobs back without counting the attempt.
func (db *DB) ReleaseJobs(ctx context.Context, now time.Time, refs []store.JobRef) error {
	if len(refs) == 0 {
		return nil
	}
	err := db.relaxedTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE backlot_jobs
			SET state = 'available', attempt = attempt - 1, lease_until = NULL, run_at = ?
			WHERE id = ? AND attempt = ? AND state = 'running'`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range refs {
			if _, err := st.ExecContext(ctx, us(now), r.ID, r.Attempt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %d jobs: %w", len(refs), err)
	}
	return nil
}

// GetJob reads one job.
func (db *DB) GetJob(ctx context.Context, id int64) (*jobs.Job, error) {
	j, err := scanJob(db.r.QueryRowContext(ctx, `SELECT `+jobCols+` FROM backlot_jobs WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, notFound(err))
	}
	return j, nil
}

// ListJobs lists jobs newest first.
func (db *DB) ListJobs(ctx context.Context, f store.JobFilter) ([]*jobs.Job, error) {
	c := store.JobConds(f, placeholder)
	q := `SELECT ` + jobCols + ` FROM backlot_jobs` + c.Where() + ` ORDER BY id DESC LIMIT ` + c.Arg(f.PageLimit())
	rows, err := db.r.QueryContext(ctx, q, c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	js, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// JobLogs reads a job's log.
func (db *DB) JobLogs(ctx context.Context, id int64) ([]store.JobLogLine, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT at, line FROM backlot_job_logs WHERE job_id = ? ORDER BY rowid`, id)
	if err != nil {
		return nil, fmt.Errorf("logs of job %d: %w", id, err)
	}
	defer rows.Close()
	var out []store.JobLogLine
	for rows.Next() {
		l := store.JobLogLine{JobID: id}
		var at int64
		if err := rows.Scan(&at, &l.Line); err != nil {
			return nil, fmt.Errorf("logs of job %d: %w", id, err)
		}
		l.At = fromUS(at)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logs of job %d: %w", id, err)
	}
	return out, nil
}

// RetryJob makes a job available again now.
func (db *DB) RetryJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error) {
	return db.transition(ctx, "retry", id, `UPDATE backlot_jobs SET state = 'available', run_at = ?1,
		finished_at = NULL, lease_until = NULL, cancel_requested = 0,
		max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END
		WHERE id = ?2 AND state IN ('failed', 'cancelled', 'retrying', 'scheduled') RETURNING `+jobCols, now, "")
}

// CancelJob cancels a waiting job, or asks a running one to stop.
func (db *DB) CancelJob(ctx context.Context, id int64, now time.Time) (*jobs.Job, error) {
	return db.transition(ctx, "cancel", id, `UPDATE backlot_jobs SET
		state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
		cancel_requested = CASE WHEN state = 'running' THEN 1 ELSE cancel_requested END,
		finished_at = CASE WHEN state = 'running' THEN finished_at ELSE ?1 END
		WHERE id = ?2 AND state IN ('scheduled', 'available', 'retrying', 'running') RETURNING `+jobCols, now, jobs.StateCancelled)
}

// transition runs a one-row state change (see store.Transition).
func (db *DB) transition(ctx context.Context, op string, id int64, q string, now time.Time, okState jobs.State) (*jobs.Job, error) {
	var j *jobs.Job
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = store.Transition(
			func() (*jobs.Job, error) {
				j, err := scanJob(tx.QueryRowContext(ctx, q, us(now), id))
				return j, notFound(err)
			},
			func() (*jobs.Job, error) {
				return scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM backlot_jobs WHERE id = ?`, id))
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
	limit := p.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	sel := `SELECT id FROM backlot_jobs WHERE state = ? AND finished_at < ? ORDER BY finished_at, id LIMIT ?`
	args := []any{string(p.State), us(p.FinishedBefore), limit}
	var n int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM backlot_job_logs WHERE job_id IN (`+sel+`)`, args...); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM backlot_jobs WHERE id IN (`+sel+`)`, args...)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s jobs: %w", p.State, err)
	}
	return n, nil
}

// FailLostJobs fails running jobs whose lease lapsed on their last attempt.
func (db *DB) FailLostJobs(ctx context.Context, now time.Time) (int64, error) {
	r, err := db.w.ExecContext(ctx, `UPDATE backlot_jobs SET state = 'failed', finished_at = ?1, lease_until = NULL,
		last_error = 'lease expired on the last attempt (worker lost)'
		WHERE state = 'running' AND lease_until < ?1 AND attempt >= max_attempts`, us(now))
	if err != nil {
		return 0, fmt.Errorf("fail lost jobs: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("fail lost jobs: %w", err)
	}
	return n, nil
}

// DeleteDedupeKeys forgets old dedupe keys.
func (db *DB) DeleteDedupeKeys(ctx context.Context, before time.Time) (int64, error) {
	r, err := db.w.ExecContext(ctx, `DELETE FROM backlot_job_dedupe WHERE created_at < ?`, us(before))
	if err != nil {
		return 0, fmt.Errorf("delete dedupe keys: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete dedupe keys: %w", err)
	}
	return n, nil
}

// CountJobs counts unfinished jobs by queue and state. Two queries, each
// matching a partial index, so finished jobs are never scanned.
func (db *DB) CountJobs(ctx context.Context) ([]store.JobCount, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT queue, state, count(*) FROM backlot_jobs
		WHERE `+store.WaitingStatesSQL+` GROUP BY queue, state
		UNION ALL
		SELECT queue, state, count(*) FROM backlot_jobs WHERE state = 'running' GROUP BY queue, state
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	var out []store.JobCount
	for rows.Next() {
		var c store.JobCount
		var state string
		if err := rows.Scan(&c.Queue, &state, &c.Count); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		c.State = jobs.State(state)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// ListenJobs waits for ctx: SQLite has no cross-process notification (the
// engine wakes its fetchers in-process and polls for the rest).
func (db *DB) ListenJobs(ctx context.Context, fn func(queue string)) error {
	<-ctx.Done()
	return nil
}

// TryLead always succeeds: one process owns a SQLite file.
func (db *DB) TryLead(ctx context.Context, name string) (store.Leadership, bool, error) {
	return soleLeader{}, true, nil
}

type soleLeader struct{}

func (soleLeader) Lost() <-chan struct{} { return nil } // never closes
func (soleLeader) Release() error        { return nil }
