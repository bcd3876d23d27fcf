package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/backlothq/backlot/internal/store"
)

// tx is the store.Tx of this backend: a transaction on the writer.
type tx struct {
	db *DB
	tx *sql.Tx
}

var _ store.Tx = (*tx)(nil)

func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return row{t.tx.QueryRowContext(ctx, query, args...)}
}

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error { return notFound(r.r.Scan(dest...)) }

// RunTx is WriteTx behind the backend-neutral store.Tx.
func (db *DB) RunTx(ctx context.Context, fn func(store.Tx) error) error {
	return db.WriteTx(ctx, func(t *sql.Tx) error { return fn(&tx{db: db, tx: t}) })
}

// sqlTx returns the *sql.Tx of a store.Tx begun by this store.
func (db *DB) sqlTx(t store.Tx) (*sql.Tx, error) {
	st, ok := t.(*tx)
	if !ok || st.db != db {
		return nil, fmt.Errorf("sqlite %s: transaction was not begun by this store (%T)", db.path, t)
	}
	return st.tx, nil
}
