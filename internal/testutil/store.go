package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/sqlite"
)

// SQLite opens a migrated SQLite store in a fresh temporary directory and
// closes it at cleanup.
func SQLite(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "backlot.db"), store.Options{Migrate: true})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return db
}

// PostgresStore opens a migrated PostgreSQL store on a fresh database of
// the shared server (see Postgres) and closes it at cleanup.
func PostgresStore(t testing.TB) *postgres.DB {
	t.Helper()
	url := Postgres(t)
	db, err := postgres.Open(context.Background(), url, store.Options{Migrate: true})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close postgres: %v", err)
		}
	})
	return db
}
