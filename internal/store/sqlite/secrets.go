package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// PutSecret inserts or replaces a secret.
func (db *DB) PutSecret(ctx context.Context, s store.Secret) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO secrets (scope, name, key_id, ciphertext, updated_at) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (scope, name) DO UPDATE SET
		     key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		s.Scope, s.Name, s.KeyID, s.Ciphertext, s.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("put secret %s %q: %w", s.Scope, s.Name, err)
	}
	return nil
}

// GetSecret reads one secret.
func (db *DB) GetSecret(ctx context.Context, scope, name string) (store.Secret, error) {
	s := store.Secret{Scope: scope, Name: name}
	var updated int64
	err := db.r.QueryRowContext(ctx,
		`SELECT key_id, ciphertext, updated_at FROM secrets WHERE scope = ? AND name = ?`,
		scope, name).Scan(&s.KeyID, &s.Ciphertext, &updated)
	if err != nil {
		return store.Secret{}, fmt.Errorf("get secret %s %q: %w", scope, name, notFound(err))
	}
	s.UpdatedAt = time.UnixMilli(updated).UTC()
	return s, nil
}

// DeleteSecret removes one secret.
func (db *DB) DeleteSecret(ctx context.Context, scope, name string) error {
	err := store.Found(affected(db.w.ExecContext(ctx, `DELETE FROM secrets WHERE scope = ? AND name = ?`, scope, name)))
	if err != nil {
		return fmt.Errorf("delete secret %s %q: %w", scope, name, err)
	}
	return nil
}

// CountByKeyID counts the rows of every encrypted table per key id.
func (db *DB) CountByKeyID(ctx context.Context) ([]store.KeyCount, error) {
	return store.CountByKeyID(ctx, db.query, func(table string) string {
		return `SELECT key_id, count(*) FROM ` + table + ` GROUP BY key_id ORDER BY key_id`
	})
}

// ListEncrypted pages through the rows of every encrypted table not sealed
// under p.ExceptKeyID, walking each table's primary key.
func (db *DB) ListEncrypted(ctx context.Context, p store.ListEncryptedParams) ([]store.EncryptedRow, error) {
	return store.ListEncrypted(ctx, db.query, placeholder, p)
}

// ReencryptRows swaps in new ciphertexts in one transaction, each only
// where the old ciphertext is still in place.
func (db *DB) ReencryptRows(ctx context.Context, batch []store.Reencrypt) (int64, error) {
	var n int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, r := range batch {
			t, err := store.EncryptedTableOf(r.Old.Kind)
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx,
				`UPDATE `+t.Table+` SET key_id = ?, ciphertext = ? WHERE scope = ? AND name = ? AND ciphertext = ?`,
				r.KeyID, r.Ciphertext, r.Old.Scope, r.Old.Name, r.Old.Ciphertext)
			if err != nil {
				return fmt.Errorf("%s %s %q: %w", t.Table, r.Old.Scope, r.Old.Name, err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s %s %q: %w", t.Table, r.Old.Scope, r.Old.Name, err)
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("re-encrypt %d rows: %w", len(batch), err)
	}
	return n, nil
}
