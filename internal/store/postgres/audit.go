package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// InsertAudit appends one audit entry.
func (db *DB) InsertAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, store.AuditInsertSQL+` RETURNING id`, store.AuditArgs(e)...).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert audit entry %s: %w", e.Action, err)
	}
	return id, nil
}

// InsertAuditTx appends one audit entry inside tx.
func (db *DB) InsertAuditTx(ctx context.Context, t store.Tx, e store.AuditEntry) error {
	if _, err := db.pgxTx(t); err != nil {
		return err
	}
	if err := store.InsertAuditTx(ctx, t, e); err != nil {
		return fmt.Errorf("insert audit entry %s: %w", e.Action, err)
	}
	return nil
}

// ListAudit lists audit entries newest first.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	q := `SELECT id, at, actor, action, target, count, detail, address FROM backlot_audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Count, &e.Detail, &e.Address); err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		e.At = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// DeleteAudit deletes entries older than before.
func (db *DB) DeleteAudit(ctx context.Context, before time.Time, limit int) (int64, error) {
	q := `DELETE FROM backlot_audit WHERE at < $1`
	args := []any{before.UnixMicro()}
	if limit > 0 {
		q = `DELETE FROM backlot_audit WHERE id IN (SELECT id FROM backlot_audit WHERE at < $1 ORDER BY at LIMIT $2)`
		args = append(args, limit)
	}
	tag, err := db.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete audit entries: %w", err)
	}
	return tag.RowsAffected(), nil
}
