package postgres

import (
	"context"
	"fmt"

	"github.com/backlothq/backlot/internal/store"
)

// ListJobSummaries lists a page of jobs with payloads cut short (left()
// counts characters; the byte cut is made in Go).
func (db *DB) ListJobSummaries(ctx context.Context, f store.ConsoleJobFilter) ([]store.JobSummary, error) {
	f = f.WithDefaults()
	c := store.ConsoleJobConds(f, placeholder, f.PayloadMax+1)
	q := `SELECT id, kind, queue, left(payload::text, $1), state, attempt, max_attempts, run_at, lease_until,
		last_error, progress, COALESCE(dedupe_key, ''), created_at, finished_at
		FROM backlot_jobs` + c.Where() + ` ORDER BY id DESC LIMIT ` + c.Arg(f.Limit)
	rows, err := db.pool.Query(ctx, q, c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	js, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	return store.Summaries(js, f.PayloadMax), nil
}

// CountJobsCapped counts matching jobs, reading at most limit+1 rows.
func (db *DB) CountJobsCapped(ctx context.Context, f store.ConsoleJobFilter, limit int) (int64, error) {
	c := store.ConsoleJobConds(f, placeholder)
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM backlot_jobs`+c.Where()+
		` LIMIT `+c.Arg(limit+1)+`) AS capped`, c.Args()...).Scan(&n)
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
	c.Add("(scope, name) > (%s, %s)", f.AfterScope, f.AfterName)
	store.ConnectionConds(c, f)
	rows, err := db.query(ctx, `SELECT scope, name, key_id, ''::bytea, state, scopes, expires_at, failures, retry_at, created_at, updated_at
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
