package backlot

import (
	"context"

	"github.com/backlothq/backlot/internal/store"
)

// Tx is a write transaction on backlot's store (the SQLite file or the
// PostgreSQL database), begun by App.WriteTx. Your own statements and
// Jobs.EnqueueTx inside it commit together or not at all, so a job is
// never enqueued for a row that was rolled back. Queries use $1, $2, …
// placeholders on both backends.
type Tx struct {
	tx store.Tx
}

// Exec runs a statement and returns the number of rows it affected.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return t.tx.Exec(ctx, query, args...)
}

// QueryRow runs a query expected to return at most one row.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	return &Row{r: t.tx.QueryRow(ctx, query, args...)}
}

// Row is the result of Tx.QueryRow.
type Row struct {
	r store.Row
}

// Scan copies the row's columns into dest; with no row it returns an error
// matching ErrNotFound.
func (r *Row) Scan(dest ...any) error { return public(r.r.Scan(dest...)) }

// WriteTx runs fn in one write transaction and commits if fn returns nil;
// otherwise, or if fn panics, everything it did is rolled back. On SQLite
// the transaction holds the single writer: keep it short and do no network
// calls inside it.
func (a *App) WriteTx(ctx context.Context, fn func(tx *Tx) error) error {
	return public(a.store.RunTx(ctx, func(t store.Tx) error { return fn(&Tx{tx: t}) }))
}
