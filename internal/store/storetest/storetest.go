// Package storetest is the shared suite every store.Store implementation
// must pass: the same cases run against SQLite and PostgreSQL. One file per
// area (core.go, sessions.go, jobs.go, …), each with an unexported
// runArea(t, open) that Run calls.
package storetest

import (
	"testing"

	"github.com/backlothq/backlot/internal/store"
)

// Run runs the whole suite. open must return a fresh, migrated store for
// the calling (sub)test and close it at the test's cleanup; cases call it
// from parallel subtests, so each gets its own database.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	runCore(t, open)
	runSessions(t, open)
	runJobs(t, open)
	runTx(t, open)
	runSecrets(t, open)
	runMarketplace(t, open)
	runRefs(t, open)
	runAudit(t, open)
}
