package sqlite

// The writer's transaction flavours and prepared-statement cache for the
// job engine's hot paths; the queries themselves are in jobs.go.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/backlothq/backlot/internal/store"
)

// relaxedTx is WriteTx with synchronous=NORMAL: the commit is not fsynced.
// It is for the engine's own bookkeeping (claims, leases, outcomes, logs),
// which nobody was promised durability for: in WAL mode a NORMAL commit
// survives a process crash, and power loss can only undo the last few, which
// at-least-once delivery absorbs (a lost claim or outcome means the job
// runs again). An fsynced commit after them (an enqueue) makes them durable
// too, since the WAL is written in order. Saving the fsync matters: the
// single writer would otherwise spend most of its time waiting on the disk.
func (db *DB) relaxedTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	if err := db.prepareJobStmts(ctx); err != nil {
		return err
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	defer func() {
		// Everyone else relies on FULL: if it cannot be restored, the
		// connection is thrown away (database/sql opens a fresh one, which
		// gets FULL from the DSN).
		if _, rerr := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); rerr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("writer: restore synchronous: %w", rerr))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return inTx(tx, fn)
}

// jobStmts holds the writer's prepared statements for the engine's hot
// paths: compiling them on every transaction was a fifth of the engine's
// CPU. They are prepared once on the writer, outside any transaction (the
// writer has one connection, so preparing inside one would wait on itself),
// and bound to each transaction with Tx.StmtContext, which reuses the
// connection's compiled statement.
type jobStmts struct {
	mu     sync.Mutex
	ready  bool
	st     [numStmts]*sql.Stmt
	chunks [numChunked][numSizes]*sql.Stmt // by chunked statement, size index
}

const (
	stmtSeq = iota
	stmtClaimLapsed
	stmtClaimDue
	stmtExtend
	stmtLog
	stmtProgress
	numStmts
)

// jobStmtSQL returns the text of every cached statement.
func jobStmtSQL() [numStmts]string {
	return [numStmts]string{
		stmtSeq: `SELECT seq FROM sqlite_sequence WHERE name = 'backlot_jobs'`,
		// Claims of more kinds than maxKindsIn: the kinds travel as JSON.
		stmtClaimLapsed: strings.Replace(claimLapsedSQL, claimKindsFilter, `SELECT value FROM json_each(?5)`, 1),
		stmtClaimDue:    strings.Replace(claimDueSQL, claimKindsFilter, `SELECT value FROM json_each(?5)`, 1),
		stmtExtend: `UPDATE backlot_jobs SET lease_until = ?
			WHERE id = ? AND attempt = ? AND state = 'running' RETURNING cancel_requested`,
		stmtLog:      `INSERT INTO backlot_job_logs (job_id, at, line) VALUES (?, ?, ?)`,
		stmtProgress: `UPDATE backlot_jobs SET progress = ? WHERE id = ?`,
	}
}

// Both claims take lease_until, queue, now, limit, then the kinds, which
// replace claimKindsFilter: ?5, ?6, … or one JSON array.
//
// The limit is written ?4+0 on purpose: SQLite plans a bare LIMIT ? with
// the bound value and marks the statement for re-preparation whenever
// that value changes, which the engine's limit (its free slots) does on
// almost every claim. Re-parsing the claim cost three times its running.
const (
	claimKindsFilter = `KINDS`
	claimKindsParam  = 5
	claimLapsedSQL   = `UPDATE OR FAIL backlot_jobs SET state = 'running', attempt = attempt + 1, lease_until = ?1
			WHERE id IN (SELECT id FROM backlot_jobs WHERE queue = ?2
				AND state = 'running' AND lease_until < ?3 AND attempt < max_attempts
				AND kind IN (KINDS)
				ORDER BY lease_until LIMIT ?4+0) RETURNING ` + jobCols
	claimDueSQL = `UPDATE OR FAIL backlot_jobs SET state = 'running', attempt = attempt + 1, lease_until = ?1
			WHERE id IN (SELECT id FROM backlot_jobs WHERE queue = ?2
				AND ` + store.WaitingStatesSQL + ` AND run_at <= ?3
				AND kind IN (KINDS)
				ORDER BY run_at, id LIMIT ?4+0) RETURNING ` + jobCols
)

// prepareJobStmts prepares the statements once. Call it before taking the
// writer.
func (db *DB) prepareJobStmts(ctx context.Context) error {
	db.jobs.mu.Lock()
	defer db.jobs.mu.Unlock()
	if db.jobs.ready {
		return nil
	}
	for i, q := range jobStmtSQL() {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			db.closeJobStmts()
			return fmt.Errorf("prepare: %w", err)
		}
		db.jobs.st[i] = st
	}
	for k := range db.jobs.chunks {
		for i := range chunkSizes(k) {
			st, err := db.w.PrepareContext(ctx, chunkSQL(k, 1<<i))
			if err != nil {
				db.closeJobStmts()
				return fmt.Errorf("prepare: %w", err)
			}
			db.jobs.chunks[k][i] = st
		}
	}
	db.jobs.ready = true
	return nil
}

// closeJobStmts closes what a failed prepareJobStmts prepared. Called with
// db.jobs.mu held.
func (db *DB) closeJobStmts() {
	for i, st := range db.jobs.st {
		if st != nil {
			st.Close()
			db.jobs.st[i] = nil
		}
	}
	for k := range db.jobs.chunks {
		for i, st := range db.jobs.chunks[k] {
			if st != nil {
				st.Close()
				db.jobs.chunks[k][i] = nil
			}
		}
	}
}

// stmt binds prepared statement i to tx; the result is closed with tx.
// Before prepareJobStmts has run (InsertJobsTx, inside a caller's
// transaction that holds the writer) it prepares on tx instead.
func (db *DB) stmt(ctx context.Context, tx *sql.Tx, i int) (*sql.Stmt, error) {
	var st *sql.Stmt
	ready := false
	// TryLock, not Lock: prepareJobStmts holds mu while it waits for the
	// writer, which tx may be holding (InsertJobsTx inside RunTx); waiting
	// here would deadlock, so prepare on tx instead.
	if db.jobs.mu.TryLock() {
		st, ready = db.jobs.st[i], db.jobs.ready
		db.jobs.mu.Unlock()
	}
	if ready {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, jobStmtSQL()[i])
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st, nil
}
