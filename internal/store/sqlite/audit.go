package sqlite

import (
	"context"
	"fmt"
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
	return store.InsertAuditTx(ctx, t, e)
}

// ListAudit lists audit entries newest first.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return store.ListAudit(ctx, db.query, placeholder, f)
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
