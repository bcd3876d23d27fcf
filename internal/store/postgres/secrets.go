package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
)

// PutSecret inserts or replaces a secret.
func (db *DB) PutSecret(ctx context.Context, s store.Secret) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO secrets (scope, name, key_id, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (scope, name) DO UPDATE SET
		     key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		s.Scope, s.Name, s.KeyID, s.Ciphertext, s.UpdatedAt.Truncate(time.Millisecond))
	if err != nil {
		return fmt.Errorf("put secret %s %q: %w", s.Scope, s.Name, err)
	}
	return nil
}

// GetSecret reads one secret.
func (db *DB) GetSecret(ctx context.Context, scope, name string) (store.Secret, error) {
	s := store.Secret{Scope: scope, Name: name}
	err := db.pool.QueryRow(ctx,
		`SELECT key_id, ciphertext, updated_at FROM secrets WHERE scope = $1 AND name = $2`,
		scope, name).Scan(&s.KeyID, &s.Ciphertext, &s.UpdatedAt)
	if err != nil {
		return store.Secret{}, fmt.Errorf("get secret %s %q: %w", scope, name, notFound(err))
	}
	s.UpdatedAt = s.UpdatedAt.UTC()
	return s, nil
}

// DeleteSecret removes one secret.
func (db *DB) DeleteSecret(ctx context.Context, scope, name string) error {
	err := store.Found(affected(db.pool.Exec(ctx, `DELETE FROM secrets WHERE scope = $1 AND name = $2`, scope, name)))
	if err != nil {
		return fmt.Errorf("delete secret %s %q: %w", scope, name, err)
	}
	return nil
}

// CountByKeyID counts the rows of every encrypted table per key id.
func (db *DB) CountByKeyID(ctx context.Context) ([]store.KeyCount, error) {
	return store.CountByKeyID(ctx, db.query, func(table string) string {
		return `SELECT key_id, count(*) FROM ` + table + ` GROUP BY key_id ORDER BY key_id COLLATE "C"`
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
	err := db.WriteTx(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range batch {
			t, err := store.EncryptedTableOf(r.Old.Kind)
			if err != nil {
				return err
			}
			b.Queue(`UPDATE `+t.Table+` SET key_id = $1, ciphertext = $2 WHERE scope = $3 AND name = $4 AND ciphertext = $5`,
				r.KeyID, r.Ciphertext, r.Old.Scope, r.Old.Name, r.Old.Ciphertext)
		}
		res := tx.SendBatch(ctx, &b)
		for _, r := range batch {
			tag, err := res.Exec()
			if err != nil {
				res.Close()
				return fmt.Errorf("%s %s %q: %w", r.Old.Kind, r.Old.Scope, r.Old.Name, err)
			}
			n += tag.RowsAffected()
		}
		return res.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("re-encrypt %d rows: %w", len(batch), err)
	}
	return n, nil
}
