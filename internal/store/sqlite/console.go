package sqlite

import (
	"context"
	"fmt"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// ListJobSummaries lists a page of jobs with payloads cut short. substr
// counts characters of TEXT, so it returns at most 4 bytes a character;
// the cut to PayloadMax bytes is then made in Go at a rune boundary.
func (db *DB) ListJobSummaries(ctx context.Context, f store.ConsoleJobFilter) ([]store.JobSummary, error) {
	f = f.WithDefaults()
	c := store.ConsoleJobConds(f, placeholder, f.PayloadMax+1)
	q := `SELECT id, kind, queue, substr(payload, 1, ?), state, attempt, max_attempts, run_at, lease_until,
		last_error, progress, dedupe_key, created_at, finished_at
		FROM ` + jobsFrom(f) + c.Where() + ` ORDER BY id DESC LIMIT ` + c.Arg(f.Limit)
	rows, err := db.r.QueryContext(ctx, q, c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	js, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	return store.Summaries(js, f.PayloadMax), nil
}

// jobsFrom names the jobs table for a console query. Running jobs are not in
// the partial state indexes: without statistics SQLite would rather walk
// every id newest first (no sort) than the few rows of backlot_jobs_running,
// so it is told.
func jobsFrom(f store.ConsoleJobFilter) string {
	if f.State == jobs.StateRunning {
		return "backlot_jobs INDEXED BY backlot_jobs_running"
	}
	return "backlot_jobs"
}

// CountJobsCapped counts matching jobs, reading at most limit+1 index
// entries.
func (db *DB) CountJobsCapped(ctx context.Context, f store.ConsoleJobFilter, limit int) (int64, error) {
	c := store.ConsoleJobConds(f, placeholder)
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+jobsFrom(f)+c.Where()+` LIMIT `+c.Arg(limit+1)+`)`,
		c.Args()...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return n, nil
}

// JobKinds skip-scans the (kind, id) index (see store.JobKinds).
func (db *DB) JobKinds(ctx context.Context, limit int) ([]string, error) {
	return store.JobKinds(ctx, db.query, placeholder, limit)
}

// ListConnectionSummaries pages connections without their ciphertext.
func (db *DB) ListConnectionSummaries(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error) {
	c := store.NewConds(placeholder)
	c.Add("(scope > %s OR (scope = %s AND name > %s))", f.AfterScope, f.AfterScope, f.AfterName)
	store.ConnectionConds(c, f)
	rows, err := db.query(ctx, `SELECT scope, name, key_id, x'', state, scopes, expires_at, failures, retry_at, created_at, updated_at
		FROM connections`+c.Where()+` ORDER BY scope, name LIMIT `+c.Arg(f.PageLimit()), c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	out, err := store.CollectRows(rows, store.ScanConnectionSummary)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out, nil
}
