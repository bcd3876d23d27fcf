package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

const connectionCols = store.ConnectionCols

// PutConnectState records a pending login and prunes expired ones.
func (db *DB) PutConnectState(ctx context.Context, s store.ConnectState) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM connect_states WHERE expires_at < ?`, time.Now().UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO connect_states (state_hash, connection, authenticator, tenant, subject, binding_hash, verifier, expires_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			s.Hash, s.Connection, s.Authenticator, s.Tenant, s.Subject, s.BindingHash, s.Verifier, store.Millis(s.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("put connect state of %q: %w", s.Connection, err)
	}
	return nil
}

// TakeConnectState deletes and returns one pending login.
func (db *DB) TakeConnectState(ctx context.Context, hash []byte) (store.ConnectState, error) {
	s := store.ConnectState{Hash: hash}
	var exp int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`DELETE FROM connect_states WHERE state_hash = ?
			 RETURNING connection, authenticator, tenant, subject, binding_hash, verifier, expires_at`, hash).
			Scan(&s.Connection, &s.Authenticator, &s.Tenant, &s.Subject, &s.BindingHash, &s.Verifier, &exp)
	})
	if err != nil {
		return store.ConnectState{}, fmt.Errorf("take connect state: %w", notFound(err))
	}
	s.ExpiresAt = store.FromMillis(exp)
	return s, nil
}

// GetConnection reads one connection.
func (db *DB) GetConnection(ctx context.Context, scope, name string) (store.Connection, error) {
	c, err := store.ScanConnection(db.r.QueryRowContext(ctx,
		`SELECT `+connectionCols+` FROM connections WHERE scope = ? AND name = ?`, scope, name))
	if err != nil {
		return store.Connection{}, fmt.Errorf("get connection %s %q: %w", scope, name, notFound(err))
	}
	return c, nil
}

// PutConnection inserts or replaces a connection.
func (db *DB) PutConnection(ctx context.Context, c store.Connection) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO connections (`+connectionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (scope, name) DO UPDATE SET
		     key_id = excluded.key_id, ciphertext = excluded.ciphertext, state = excluded.state,
		     scopes = excluded.scopes, expires_at = excluded.expires_at, failures = excluded.failures,
		     retry_at = excluded.retry_at, created_at = excluded.created_at, updated_at = excluded.updated_at`,
		c.Scope, c.Name, c.KeyID, c.Ciphertext, c.State, c.Scopes, store.Millis(c.ExpiresAt), c.Failures,
		store.Millis(c.RetryAt), store.Millis(c.CreatedAt), store.Millis(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put connection %s %q: %w", c.Scope, c.Name, err)
	}
	return nil
}

// DeleteConnection removes one connection.
func (db *DB) DeleteConnection(ctx context.Context, scope, name string) error {
	err := store.Found(affected(db.w.ExecContext(ctx, `DELETE FROM connections WHERE scope = ? AND name = ?`, scope, name)))
	if err != nil {
		return fmt.Errorf("delete connection %s %q: %w", scope, name, err)
	}
	return nil
}

// LockConnection runs fn holding the single writer (BEGIN IMMEDIATE), so
// no other writer in any process can change the row until it returns.
func (db *DB) LockConnection(ctx context.Context, scope, name string, fn func(store.Tx, store.Connection) error) error {
	return db.WriteTx(ctx, func(t *sql.Tx) error {
		c, err := store.ScanConnection(t.QueryRowContext(ctx,
			`SELECT `+connectionCols+` FROM connections WHERE scope = ? AND name = ?`, scope, name))
		if err != nil {
			return fmt.Errorf("lock connection %s %q: %w", scope, name, notFound(err))
		}
		return fn(&tx{db: db, tx: t}, c)
	})
}

// UpdateConnectionTx rewrites a connection inside tx.
func (db *DB) UpdateConnectionTx(ctx context.Context, t store.Tx, c store.Connection) error {
	st, err := db.sqlTx(t)
	if err != nil {
		return err
	}
	err = store.Found(affected(st.ExecContext(ctx,
		`UPDATE connections SET key_id = ?, ciphertext = ?, state = ?, scopes = ?, expires_at = ?,
		     failures = ?, retry_at = ?, updated_at = ? WHERE scope = ? AND name = ?`,
		c.KeyID, c.Ciphertext, c.State, c.Scopes, store.Millis(c.ExpiresAt), c.Failures,
		store.Millis(c.RetryAt), store.Millis(c.UpdatedAt), c.Scope, c.Name)))
	if err != nil {
		return fmt.Errorf("update connection %s %q: %w", c.Scope, c.Name, err)
	}
	return nil
}
