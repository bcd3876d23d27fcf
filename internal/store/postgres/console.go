package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/backlothq/backlot/internal/store"
)

// consoleWhere builds the WHERE clause of a console job query, numbering
// placeholders after the arguments already in args.
func consoleWhere(f store.ConsoleJobFilter, args []any) (string, []any) {
	var where []string
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.State != "" {
		add("state = $%d", string(f.State))
	}
	if f.Kind != "" {
		add("kind = $%d", f.Kind)
	}
	if f.Queue != "" {
		add("queue = $%d", f.Queue)
	}
	if f.DedupePrefix != "" {
		add(`dedupe_key LIKE $%d ESCAPE '\'`, store.EscapeLike(f.DedupePrefix)+"%")
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	if len(where) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// ListJobSummaries lists a page of jobs with payloads cut short (left()
// counts characters; the byte cut is made in Go).
func (db *DB) ListJobSummaries(ctx context.Context, f store.ConsoleJobFilter) ([]store.JobSummary, error) {
	f = f.WithDefaults()
	where, args := consoleWhere(f, []any{f.PayloadMax + 1})
	args = append(args, f.Limit)
	q := `SELECT id, kind, queue, left(payload::text, $1), state, attempt, max_attempts, run_at, lease_until,
		last_error, progress, COALESCE(dedupe_key, ''), created_at, finished_at
		FROM backlot_jobs` + where + fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	js, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	out := make([]store.JobSummary, len(js))
	for i, j := range js {
		var cut bool
		j.Payload, cut = store.CutPayload(j.Payload, f.PayloadMax)
		out[i] = store.JobSummary{Job: j, PayloadCut: cut}
	}
	return out, nil
}

// CountJobsCapped counts matching jobs, reading at most limit+1 rows.
func (db *DB) CountJobsCapped(ctx context.Context, f store.ConsoleJobFilter, limit int) (int64, error) {
	where, args := consoleWhere(f, nil)
	args = append(args, limit+1)
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM backlot_jobs`+where+
		fmt.Sprintf(` LIMIT $%d) AS capped`, len(args)), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return n, nil
}

// JobKinds skip-scans the (kind, id) index: one probe per distinct kind.
func (db *DB) JobKinds(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `WITH RECURSIVE k(kind) AS (
			SELECT min(kind) FROM backlot_jobs
			UNION ALL
			SELECT (SELECT min(kind) FROM backlot_jobs WHERE kind > k.kind) FROM k WHERE k.kind IS NOT NULL
		) SELECT kind FROM k WHERE kind IS NOT NULL LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("job kinds: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("job kinds: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// ListConnectionSummaries pages connections without their ciphertext.
func (db *DB) ListConnectionSummaries(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error) {
	where := []string{"(scope, name) > ($1, $2)"}
	args := []any{f.AfterScope, f.AfterName}
	if f.Name != "" {
		args = append(args, f.Name)
		where = append(where, fmt.Sprintf("name = $%d", len(args)))
	}
	if f.State != "" {
		args = append(args, f.State)
		where = append(where, fmt.Sprintf("state = $%d", len(args)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.ConsolePageDefault
	}
	args = append(args, limit)
	rows, err := db.pool.Query(ctx, `SELECT scope, name, key_id, ''::bytea, state, scopes, expires_at, failures, retry_at, created_at, updated_at
		FROM connections WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY scope, name LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("list connections: %w", err)
		}
		c.Ciphertext = nil
		out = append(out, c)
	}
	return out, rows.Err()
}
