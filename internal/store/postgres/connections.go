package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
)

const connectionCols = store.ConnectionCols

// PutConnectState records a pending login and prunes expired ones.
func (db *DB) PutConnectState(ctx context.Context, s store.ConnectState) error {
	err := db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connect_states WHERE expires_at < $1`, time.Now().UnixMilli()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO connect_states (state_hash, connection, authenticator, tenant, subject, binding_hash, verifier, expires_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
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
	err := db.pool.QueryRow(ctx,
		`DELETE FROM connect_states WHERE state_hash = $1
		 RETURNING connection, authenticator, tenant, subject, binding_hash, verifier, expires_at`, hash).
		Scan(&s.Connection, &s.Authenticator, &s.Tenant, &s.Subject, &s.BindingHash, &s.Verifier, &exp)
	if err != nil {
		return store.ConnectState{}, fmt.Errorf("take connect state: %w", notFound(err))
	}
	s.ExpiresAt = store.FromMillis(exp)
	return s, nil
}

// GetConnection reads one connection.
func (db *DB) GetConnection(ctx context.Context, scope, name string) (store.Connection, error) {
	c, err := store.ScanConnection(db.pool.QueryRow(ctx,
		`SELECT `+connectionCols+` FROM connections WHERE scope = $1 AND name = $2`, scope, name))
	if err != nil {
		return store.Connection{}, fmt.Errorf("get connection %s %q: %w", scope, name, notFound(err))
	}
	return c, nil
}

// PutConnection inserts or replaces a connection.
func (db *DB) PutConnection(ctx context.Context, c store.Connection) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO connections (`+connectionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		 ON CONFLICT (scope, name) DO UPDATE SET
		     key_id = excluded.key_id, ciphertext = excluded.ciphertext, state = excluded.state,
		     scopes = excluded.scopes, expires_at = excluded.expires_at, failures = excluded.failures,
		     retry_at = excluded.retry_at, created_at = excluded.created_at, updated_at = excluded.updated_at`,
		c.Scope, c.Name, c.KeyID, c.Ciphertext, c.State, c.Scopes, store.Millis(c.ExpiresAt), int64(c.Failures),
		store.Millis(c.RetryAt), store.Millis(c.CreatedAt), store.Millis(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put connection %s %q: %w", c.Scope, c.Name, err)
	}
	return nil
}

// DeleteConnection removes one connection.
func (db *DB) DeleteConnection(ctx context.Context, scope, name string) error {
	err := store.Found(affected(db.pool.Exec(ctx, `DELETE FROM connections WHERE scope = $1 AND name = $2`, scope, name)))
	if err != nil {
		return fmt.Errorf("delete connection %s %q: %w", scope, name, err)
	}
	return nil
}

// LockConnection runs fn holding the row's lock (SELECT … FOR UPDATE):
// another instance locking the same row waits until this transaction ends,
// then reads what it committed.
func (db *DB) LockConnection(ctx context.Context, scope, name string, fn func(store.Tx, store.Connection) error) error {
	return db.WriteTx(ctx, func(t pgx.Tx) error {
		c, err := store.ScanConnection(t.QueryRow(ctx,
			`SELECT `+connectionCols+` FROM connections WHERE scope = $1 AND name = $2 FOR UPDATE`, scope, name))
		if err != nil {
			return fmt.Errorf("lock connection %s %q: %w", scope, name, notFound(err))
		}
		return fn(&tx{db: db, tx: t}, c)
	})
}

// UpdateConnectionTx rewrites a connection inside tx.
func (db *DB) UpdateConnectionTx(ctx context.Context, t store.Tx, c store.Connection) error {
	pt, err := db.pgxTx(t)
	if err != nil {
		return err
	}
	err = store.Found(affected(pt.Exec(ctx,
		`UPDATE connections SET key_id = $1, ciphertext = $2, state = $3, scopes = $4, expires_at = $5,
		     failures = $6, retry_at = $7, updated_at = $8 WHERE scope = $9 AND name = $10`,
		c.KeyID, c.Ciphertext, c.State, c.Scopes, store.Millis(c.ExpiresAt), int64(c.Failures),
		store.Millis(c.RetryAt), store.Millis(c.UpdatedAt), c.Scope, c.Name)))
	if err != nil {
		return fmt.Errorf("update connection %s %q: %w", c.Scope, c.Name, err)
	}
	return nil
}
