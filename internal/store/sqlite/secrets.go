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
	res, err := db.w.ExecContext(ctx, `DELETE FROM secrets WHERE scope = ? AND name = ?`, scope, name)
	if err != nil {
		return fmt.Errorf("delete secret %s %q: %w", scope, name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete secret %s %q: %w", scope, name, err)
	}
	if n == 0 {
		return fmt.Errorf("delete secret %s %q: %w", scope, name, store.ErrNotFound)
	}
	return nil
}

// CountByKeyID counts the rows of every encrypted table per key id.
func (db *DB) CountByKeyID(ctx context.Context) ([]store.KeyCount, error) {
	var out []store.KeyCount
	for _, t := range store.EncryptedTables() {
		rows, err := db.r.QueryContext(ctx,
			`SELECT key_id, count(*) FROM `+t.Table+` GROUP BY key_id ORDER BY key_id`)
		if err != nil {
			return nil, fmt.Errorf("count %s rows by key: %w", t.Table, err)
		}
		for rows.Next() {
			c := store.KeyCount{Kind: t.Kind}
			if err := rows.Scan(&c.KeyID, &c.Rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("count %s rows by key: %w", t.Table, err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("count %s rows by key: %w", t.Table, err)
		}
	}
	return out, nil
}

// ListEncrypted pages through the rows of every encrypted table not sealed
// under p.ExceptKeyID, walking each table's primary key.
func (db *DB) ListEncrypted(ctx context.Context, p store.ListEncryptedParams) ([]store.EncryptedRow, error) {
	if p.Limit <= 0 {
		return nil, fmt.Errorf("list encrypted rows: limit %d, want a positive number", p.Limit)
	}
	var out []store.EncryptedRow
	for _, t := range store.EncryptedTables() {
		if len(out) >= p.Limit {
			break
		}
		q := `SELECT scope, name, key_id, ciphertext FROM ` + t.Table + ` WHERE key_id <> ?`
		args := []any{p.ExceptKeyID}
		if p.After != nil {
			if t.Kind < p.After.Kind {
				continue
			}
			if t.Kind == p.After.Kind {
				q += ` AND (scope, name) > (?, ?)`
				args = append(args, p.After.Scope, p.After.Name)
			}
		}
		q += ` ORDER BY scope, name LIMIT ?`
		args = append(args, p.Limit-len(out))
		rows, err := db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("list encrypted rows of %s: %w", t.Table, err)
		}
		for rows.Next() {
			r := store.EncryptedRow{EncryptedRef: store.EncryptedRef{Kind: t.Kind}}
			if err := rows.Scan(&r.Scope, &r.Name, &r.KeyID, &r.Ciphertext); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list encrypted rows of %s: %w", t.Table, err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("list encrypted rows of %s: %w", t.Table, err)
		}
	}
	return out, nil
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
