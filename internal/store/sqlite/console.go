package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/backlothq/backlot/internal/store"
)

// consoleWhere builds the WHERE clause of a console job query.
func consoleWhere(f store.ConsoleJobFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.Queue != "" {
		where, args = append(where, "queue = ?"), append(args, f.Queue)
	}
	if f.DedupePrefix != "" {
		where, args = append(where, `dedupe_key LIKE ? ESCAPE '\'`), append(args, store.EscapeLike(f.DedupePrefix)+"%")
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// ListJobSummaries lists a page of jobs with payloads cut short. substr
// counts characters of TEXT, so it returns at most 4 bytes a character;
// the cut to PayloadMax bytes is then made in Go at a rune boundary.
func (db *DB) ListJobSummaries(ctx context.Context, f store.ConsoleJobFilter) ([]store.JobSummary, error) {
	f = f.WithDefaults()
	where, args := consoleWhere(f)
	q := `SELECT id, kind, queue, substr(payload, 1, ?), state, attempt, max_attempts, run_at, lease_until,
		last_error, progress, dedupe_key, created_at, finished_at
		FROM backlot_jobs` + where + ` ORDER BY id DESC LIMIT ?`
	args = append([]any{f.PayloadMax + 1}, args...)
	rows, err := db.r.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list job summaries: %w", err)
	}
	js, err := scanJobs(rows)
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

// CountJobsCapped counts matching jobs, reading at most limit+1 index
// entries.
func (db *DB) CountJobsCapped(ctx context.Context, f store.ConsoleJobFilter, limit int) (int64, error) {
	where, args := consoleWhere(f)
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM backlot_jobs`+where+` LIMIT ?)`,
		append(args, limit+1)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return n, nil
}

// JobKinds skip-scans the (kind, id) index: one probe per distinct kind.
func (db *DB) JobKinds(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `WITH RECURSIVE k(kind) AS (
			SELECT min(kind) FROM backlot_jobs
			UNION ALL
			SELECT (SELECT min(kind) FROM backlot_jobs WHERE kind > k.kind) FROM k WHERE k.kind IS NOT NULL
		) SELECT kind FROM k WHERE kind IS NOT NULL LIMIT ?`, limit)
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
	where := []string{"(scope > ? OR (scope = ? AND name > ?))"}
	args := []any{f.AfterScope, f.AfterScope, f.AfterName}
	if f.Name != "" {
		where, args = append(where, "name = ?"), append(args, f.Name)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.ConsolePageDefault
	}
	rows, err := db.r.QueryContext(ctx, `SELECT scope, name, key_id, x'', state, scopes, expires_at, failures, retry_at, created_at, updated_at
		FROM connections WHERE `+strings.Join(where, " AND ")+` ORDER BY scope, name LIMIT ?`, append(args, limit)...)
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
