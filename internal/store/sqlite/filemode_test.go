package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
)

// The database, its WAL and its shared-memory file hold every job payload
// and session: they are created readable by their owner only, whatever
// the process umask. Not parallel: the umask is process-wide.
func TestFilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0) // the most permissive umask
	defer syscall.Umask(old)

	path := filepath.Join(t.TempDir(), "backlot.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: %s has mode %#o, want 0600", when, filepath.Base(p), m)
			}
		}
	}
	db, err := sqlite.Open(context.Background(), path, store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	check("after creating")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, SQLite creates the WAL and shm files anew.
	db, err = sqlite.Open(context.Background(), path, store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check("after reopening")
}
