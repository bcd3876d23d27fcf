package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// InsertAudit appends one audit entry.
func (db *DB) InsertAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	res, err := db.w.ExecContext(ctx, store.AuditInsertSQL, store.AuditArgs(e)...)
	if err != nil {
		return 0, fmt.Errorf("insert audit entry %s: %w", e.Action, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert audit entry %s: %w", e.Action, err)
	}
	return id, nil
}

// InsertAuditTx appends one audit entry inside tx.
func (db *DB) InsertAuditTx(ctx context.Context, t store.Tx, e store.AuditEntry) error {
	if _, err := db.sqlTx(t); err != nil {
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
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := `SELECT id, at, actor, action, target, count, detail, address FROM backlot_audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := db.r.QueryContext(ctx, q, append(args, limit)...)
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
		e.At = fromUS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// DeleteAudit deletes entries older than before.
func (db *DB) DeleteAudit(ctx context.Context, before time.Time, limit int) (int64, error) {
	q := `DELETE FROM backlot_audit WHERE at < ?`
	args := []any{before.UnixMicro()}
	if limit > 0 {
		q = `DELETE FROM backlot_audit WHERE id IN (SELECT id FROM backlot_audit WHERE at < ? ORDER BY at LIMIT ?)`
		args = append(args, limit)
	}
	res, err := db.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete audit entries: %w", err)
	}
	return res.RowsAffected()
}
