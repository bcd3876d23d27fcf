package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/backlothq/backlot/jobs"
)

// This file holds the query-building and row-reading logic both backends
// share. Their SQL differs in placeholder style ("?" against "$1") and in
// the driver that runs it (database/sql against pgx); the helpers here
// take the one as a Placeholder and the other through Rows.

// Placeholder writes the placeholder of a statement's n-th argument,
// counted from 1: "?" on SQLite, "$n" on PostgreSQL.
type Placeholder func(n int) string

// Conds collects the conditions of a WHERE clause with their arguments,
// writing each argument's placeholder in the backend's style, so a filter
// is turned into conditions once for both backends.
type Conds struct {
	ph    Placeholder
	conds []string
	args  []any
}

// NewConds starts a clause whose placeholders are numbered after args
// (arguments that come earlier in the statement, such as a SELECT list's).
func NewConds(ph Placeholder, args ...any) *Conds {
	return &Conds{ph: ph, args: args}
}

// Add appends cond, in which each %s stands for the placeholder of the
// next of args (a literal % is written %%).
func (c *Conds) Add(cond string, args ...any) {
	ps := make([]any, len(args))
	for i, a := range args {
		ps[i] = c.Arg(a)
	}
	c.conds = append(c.conds, fmt.Sprintf(cond, ps...))
}

// Arg appends an argument that is not part of a condition (a LIMIT) and
// returns its placeholder.
func (c *Conds) Arg(v any) string {
	c.args = append(c.args, v)
	return c.ph(len(c.args))
}

// Where returns " WHERE " and the conditions joined by AND, or "" when
// there are none.
func (c *Conds) Where() string {
	if len(c.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.conds, " AND ")
}

// Args returns every argument, in placeholder order.
func (c *Conds) Args() []any { return c.args }

// Conditions of the partial job indexes, written in the migrations (00009)
// with the same text, which queries repeat so the planner sees they fit.
const (
	// WaitingStatesSQL: the due index on (queue, run_at, id). A chain of
	// OR, not an IN list: SQLite evaluates an index's IN list through a
	// temporary table built for every row it writes, which cost more than
	// the rest of a job's completion.
	WaitingStatesSQL = `(state = 'available' OR state = 'scheduled' OR state = 'retrying')`
	// IndexedStatesSQL: the indexes on (state, id) and (kind, state, id).
	// Every job passes through running, most only for a moment: leaving it
	// out spares the ingest path two index writes on insert and two on
	// completion. Running jobs are few and found through their own index.
	IndexedStatesSQL = `state <> 'running'`
)

// ConsoleJobConds returns the conditions of a console job query, with
// placeholders numbered after args.
func ConsoleJobConds(f ConsoleJobFilter, ph Placeholder, args ...any) *Conds {
	c := NewConds(ph, args...)
	if f.State != "" {
		c.Add("state = %s", string(f.State))
		// The same condition in the text, so the planner can use the index
		// that fits (a bound value does not tell it which one does).
		if f.State == jobs.StateRunning {
			c.Add("state = 'running'") // backlot_jobs_running
		} else {
			c.Add(IndexedStatesSQL)
		}
	}
	if f.Kind != "" {
		c.Add("kind = %s", f.Kind)
	}
	if f.Queue != "" {
		c.Add("queue = %s", f.Queue)
	}
	if f.DedupePrefix != "" {
		c.Add(`dedupe_key LIKE %s ESCAPE '\'`, EscapeLike(f.DedupePrefix)+"%")
	}
	if f.BeforeID > 0 {
		c.Add("id < %s", f.BeforeID)
	}
	return c
}

// JobConds returns the conditions of ListJobs: the console's filter
// without the dedupe prefix.
func JobConds(f JobFilter, ph Placeholder) *Conds {
	return ConsoleJobConds(ConsoleJobFilter{State: f.State, Kind: f.Kind, Queue: f.Queue, BeforeID: f.BeforeID}, ph)
}

// PageLimit is f.Limit, or 100 when unset.
func (f JobFilter) PageLimit() int {
	if f.Limit <= 0 {
		return 100
	}
	return f.Limit
}

// ConnectionConds adds the name and state conditions of f to c, which
// holds the backend's keyset condition (row-value comparison is written
// differently on each).
func ConnectionConds(c *Conds, f ConnectionFilter) {
	if f.Name != "" {
		c.Add("name = %s", f.Name)
	}
	if f.State != "" {
		c.Add("state = %s", f.State)
	}
}

// PageLimit is f.Limit, or ConsolePageDefault when unset.
func (f ConnectionFilter) PageLimit() int {
	if f.Limit <= 0 {
		return ConsolePageDefault
	}
	return f.Limit
}

// Rows is a driver's result set as the shared loops read it: both
// *sql.Rows and pgx.Rows have these methods. Their Close methods differ
// (one returns an error), so CollectRows finds Close by itself.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// QueryFunc runs a query on a backend's reading connections.
type QueryFunc func(ctx context.Context, query string, args ...any) (Rows, error)

// CollectRows reads every row of rows with scan and closes rows.
func CollectRows[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	defer closeRows(rows)
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// closeRows closes *sql.Rows (Close() error) or pgx.Rows (Close()); an
// error closing a read result set says nothing Err did not.
func closeRows(rows Rows) {
	switch r := rows.(type) {
	case interface{ Close() error }:
		_ = r.Close()
	case interface{ Close() }:
		r.Close()
	}
}

// ScanValue scans a one-column row.
func ScanValue[T any](r Row) (T, error) {
	var v T
	err := r.Scan(&v)
	return v, err
}

// Found turns the row count of a one-row Exec (delete, update) into an
// error: ErrNotFound when it changed no row.
func Found(n int64, err error) error {
	if err == nil && n == 0 {
		return ErrNotFound
	}
	return err
}

// ListAudit is both backends' ListAudit: the audit table has the same
// columns and types on both (times as Unix microseconds).
func ListAudit(ctx context.Context, query QueryFunc, ph Placeholder, f AuditFilter) ([]AuditEntry, error) {
	c := NewConds(ph)
	if f.Action != "" {
		c.Add("action = %s", f.Action)
	}
	if f.Actor != "" {
		c.Add("actor = %s", f.Actor)
	}
	if f.BeforeID > 0 {
		c.Add("id < %s", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT id, at, actor, action, target, count, detail, address FROM backlot_audit` + c.Where() +
		" ORDER BY id DESC LIMIT " + c.Arg(limit)
	rows, err := query(ctx, q, c.Args()...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	out, err := CollectRows(rows, func(r Row) (AuditEntry, error) {
		var e AuditEntry
		var at int64
		err := r.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Count, &e.Detail, &e.Address)
		e.At = time.UnixMicro(at).UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// CountByKeyID is both backends' EncryptedStore.CountByKeyID; countSQL
// returns the backend's count statement over one table (their ORDER BY
// collations differ).
func CountByKeyID(ctx context.Context, query QueryFunc, countSQL func(table string) string) ([]KeyCount, error) {
	var out []KeyCount
	for _, t := range EncryptedTables() {
		rows, err := query(ctx, countSQL(t.Table))
		if err != nil {
			return nil, fmt.Errorf("count %s rows by key: %w", t.Table, err)
		}
		cs, err := CollectRows(rows, func(r Row) (KeyCount, error) {
			c := KeyCount{Kind: t.Kind}
			err := r.Scan(&c.KeyID, &c.Rows)
			return c, err
		})
		if err != nil {
			return nil, fmt.Errorf("count %s rows by key: %w", t.Table, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// ListEncrypted is both backends' EncryptedStore.ListEncrypted: it pages
// through the rows of every encrypted table not sealed under
// p.ExceptKeyID, walking each table's primary key (collated bytewise on
// both, see EncryptedTable).
func ListEncrypted(ctx context.Context, query QueryFunc, ph Placeholder, p ListEncryptedParams) ([]EncryptedRow, error) {
	if p.Limit <= 0 {
		return nil, fmt.Errorf("list encrypted rows: limit %d, want a positive number", p.Limit)
	}
	var out []EncryptedRow
	for _, t := range EncryptedTables() {
		if len(out) >= p.Limit {
			break
		}
		c := NewConds(ph)
		c.Add("key_id <> %s", p.ExceptKeyID)
		if p.After != nil {
			if t.Kind < p.After.Kind {
				continue
			}
			if t.Kind == p.After.Kind {
				c.Add("(scope, name) > (%s, %s)", p.After.Scope, p.After.Name)
			}
		}
		q := `SELECT scope, name, key_id, ciphertext FROM ` + t.Table + c.Where() +
			` ORDER BY scope, name LIMIT ` + c.Arg(p.Limit-len(out))
		rows, err := query(ctx, q, c.Args()...)
		if err != nil {
			return nil, fmt.Errorf("list encrypted rows of %s: %w", t.Table, err)
		}
		rs, err := CollectRows(rows, func(r Row) (EncryptedRow, error) {
			e := EncryptedRow{EncryptedRef: EncryptedRef{Kind: t.Kind}}
			err := r.Scan(&e.Scope, &e.Name, &e.KeyID, &e.Ciphertext)
			return e, err
		})
		if err != nil {
			return nil, fmt.Errorf("list encrypted rows of %s: %w", t.Table, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// RefUsed completes UseRef after its conditional update changed n rows
// (err is the update's): one row means consumer holds the reference;
// none means it is absent (ErrNotFound, from get) or opened by another
// consumer (ErrRefUsed).
func RefUsed(ctx context.Context, n int64, err error, get func(context.Context, string) (Ref, error), name string) error {
	switch {
	case err != nil:
	case n == 1:
		return nil
	default:
		if _, err = get(ctx, name); err == nil {
			err = ErrRefUsed
		}
	}
	return fmt.Errorf("use reference: %w", err)
}

// ConnectionCols are the columns of the connections table in the order
// ScanConnection reads them.
const ConnectionCols = `scope, name, key_id, ciphertext, state, scopes, expires_at, failures, retry_at, created_at, updated_at`

// ScanConnection reads a row of ConnectionCols. Times are Unix
// milliseconds on both backends; failures is read as int64 since
// PostgreSQL's column is a BIGINT.
func ScanConnection(r Row) (Connection, error) {
	var c Connection
	var exp, retry, created, updated, failures int64
	if err := r.Scan(&c.Scope, &c.Name, &c.KeyID, &c.Ciphertext, &c.State, &c.Scopes, &exp, &failures, &retry, &created, &updated); err != nil {
		return Connection{}, err
	}
	c.Failures = int(failures)
	c.ExpiresAt, c.RetryAt = FromMillis(exp), FromMillis(retry)
	c.CreatedAt, c.UpdatedAt = FromMillis(created), FromMillis(updated)
	return c, nil
}

// ScanConnectionSummary scans a connection listed without its ciphertext.
func ScanConnectionSummary(r Row) (Connection, error) {
	c, err := ScanConnection(r)
	c.Ciphertext = nil
	return c, err
}

// Summaries turns jobs into console summaries, their payloads cut to at
// most payloadMax bytes.
func Summaries(js []*jobs.Job, payloadMax int) []JobSummary {
	out := make([]JobSummary, len(js))
	for i, j := range js {
		var cut bool
		j.Payload, cut = CutPayload(j.Payload, payloadMax)
		out[i] = JobSummary{Job: j, PayloadCut: cut}
	}
	return out
}

// CheckRate refuses a rate ReserveRate cannot keep.
func CheckRate(interval time.Duration, burst int) error {
	if interval <= 0 || burst < 1 {
		return errors.New("interval must be positive and burst at least 1")
	}
	return nil
}

// JobKinds returns up to limit distinct job kinds in name order by an index
// skip-scan of (kind, id): one probe per distinct kind, on either backend.
func JobKinds(ctx context.Context, query QueryFunc, ph Placeholder, limit int) ([]string, error) {
	rows, err := query(ctx, `WITH RECURSIVE k(kind) AS (
			SELECT min(kind) FROM backlot_jobs
			UNION ALL
			SELECT (SELECT min(kind) FROM backlot_jobs WHERE kind > k.kind) FROM k WHERE k.kind IS NOT NULL
		) SELECT kind FROM k WHERE kind IS NOT NULL LIMIT `+ph(1), limit)
	if err != nil {
		return nil, fmt.Errorf("job kinds: %w", err)
	}
	out, err := CollectRows(rows, ScanValue[string])
	if err != nil {
		return nil, fmt.Errorf("job kinds: %w", err)
	}
	return out, nil
}
