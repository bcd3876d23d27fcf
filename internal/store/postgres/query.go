package postgres

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/backlothq/backlot/internal/store"
)

// placeholder is PostgreSQL's store.Placeholder: "$n".
func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// query is the store.QueryFunc of the pool, for the shared loops.
func (db *DB) query(ctx context.Context, q string, args ...any) (store.Rows, error) {
	return db.pool.Query(ctx, q, args...)
}

// affected returns the rows an Exec changed, taking Exec's results as
// they come.
func affected(tag pgconn.CommandTag, err error) (int64, error) {
	return tag.RowsAffected(), err
}
