package sqlite

import (
	"context"
	"database/sql"

	"github.com/backlothq/backlot/internal/store"
)

// placeholder is SQLite's store.Placeholder: "?" whatever the position.
func placeholder(int) string { return "?" }

// query is the store.QueryFunc of the reader pool, for the shared loops.
func (db *DB) query(ctx context.Context, q string, args ...any) (store.Rows, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err // not a nil *sql.Rows inside a non-nil store.Rows
	}
	return rows, nil
}

// affected returns the rows an Exec changed, taking ExecContext's results
// as they come.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
