package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// InsertRef adds the row behind a sealed reference.
func (db *DB) InsertRef(ctx context.Context, r store.Ref) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO refs (name, scope, key_id, ciphertext, expires_at, single_use, used_by, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Name, r.Scope, r.KeyID, r.Ciphertext, r.ExpiresAt.UnixMilli(), r.SingleUse, r.UsedBy, r.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert reference %s: %w", r.Scope, err)
	}
	return nil
}

// GetRef reads one reference row.
func (db *DB) GetRef(ctx context.Context, name string) (store.Ref, error) {
	r := store.Ref{Name: name}
	var expires, created int64
	err := db.r.QueryRowContext(ctx,
		`SELECT scope, key_id, ciphertext, expires_at, single_use, used_by, created_at FROM refs WHERE name = ?`,
		name).Scan(&r.Scope, &r.KeyID, &r.Ciphertext, &expires, &r.SingleUse, &r.UsedBy, &created)
	if err != nil {
		return store.Ref{}, fmt.Errorf("get reference: %w", notFound(err))
	}
	r.ExpiresAt = time.UnixMilli(expires).UTC()
	r.CreatedAt = time.UnixMilli(created).UTC()
	return r, nil
}

// UseRef marks a single-use row as opened by consumer, in one statement so
// two openers cannot both win.
func (db *DB) UseRef(ctx context.Context, name, consumer string) error {
	n, err := affected(db.w.ExecContext(ctx,
		`UPDATE refs SET used_by = ? WHERE name = ? AND (used_by = '' OR used_by = ?)`, consumer, name, consumer))
	return store.RefUsed(ctx, n, err, db.GetRef, name)
}

// DeleteRef removes one reference row.
func (db *DB) DeleteRef(ctx context.Context, name string) error {
	if err := store.Found(affected(db.w.ExecContext(ctx, `DELETE FROM refs WHERE name = ?`, name))); err != nil {
		return fmt.Errorf("delete reference: %w", err)
	}
	return nil
}

// PruneRefs deletes up to limit expired reference rows.
func (db *DB) PruneRefs(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := affected(db.w.ExecContext(ctx,
		`DELETE FROM refs WHERE name IN (SELECT name FROM refs WHERE expires_at < ? LIMIT ?)`, before.UnixMilli(), limit))
	if err != nil {
		return 0, fmt.Errorf("prune references: %w", err)
	}
	return n, nil
}
