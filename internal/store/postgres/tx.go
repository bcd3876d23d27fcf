package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
)

// tx is the store.Tx of this backend.
type tx struct {
	db *DB
	tx pgx.Tx
}

var _ store.Tx = (*tx)(nil)

func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return row{t.tx.QueryRow(ctx, query, args...)}
}

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error { return notFound(r.r.Scan(dest...)) }

// RunTx is WriteTx behind the backend-neutral store.Tx.
func (db *DB) RunTx(ctx context.Context, fn func(store.Tx) error) error {
	return db.WriteTx(ctx, func(t pgx.Tx) error { return fn(&tx{db: db, tx: t}) })
}

// pgxTx returns the pgx.Tx of a store.Tx begun by this store.
func (db *DB) pgxTx(t store.Tx) (pgx.Tx, error) {
	st, ok := t.(*tx)
	if !ok || st.db != db {
		return nil, errors.New("postgres: transaction was not begun by this store")
	}
	return st.tx, nil
}
