package postgres

import (
	"context"
	"fmt"
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
	return store.InsertAuditTx(ctx, t, e)
}

// ListAudit lists audit entries newest first.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return store.ListAudit(ctx, db.query, placeholder, f)
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
