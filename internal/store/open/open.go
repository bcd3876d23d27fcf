// Package open opens the store a store URL names: sqlite://path for the
// embedded default, postgres://… for several instances. It is separate
// from package store so that store does not import its implementations.
package open

import (
	"context"
	"fmt"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/sqlite"
)

// Store opens the store at url. With opts.Migrate false, a database whose
// schema is behind the binary is refused (store.ErrSchemaBehind).
func Store(ctx context.Context, url string, opts store.Options) (store.Store, error) {
	backend, dsn, err := store.ParseURL(url)
	if err != nil {
		return nil, err
	}
	switch backend {
	case store.BackendSQLite:
		db, err := sqlite.Open(ctx, dsn, opts)
		if err != nil {
			return nil, err
		}
		return db, nil
	case store.BackendPostgres:
		db, err := postgres.Open(ctx, dsn, opts)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, fmt.Errorf("store url %q: unsupported backend %q", url, backend)
}
