package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/jobs"
)

// TestConsolePlansUseIndexes: the console's job queries, as the shared
// conditions build them, find each state through the index meant for it
// (the partial state indexes leave out running jobs).
func TestConsolePlansUseIndexes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "plan.db")
	st, err := sqlite.Open(context.Background(), path, store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The engine's claim of due jobs and its count of waiting ones.
	for _, q := range []struct{ sql, index string }{
		{sqlite.ClaimDueSQL, "backlot_jobs_due"},
		{`SELECT queue, state, count(*) FROM backlot_jobs WHERE ` + store.WaitingStatesSQL + ` GROUP BY queue, state`, "USING INDEX backlot_jobs_due"},
	} {
		if plan := queryPlan(t, db, q.sql, 1, "default", 2, 3, "k"); !strings.Contains(plan, q.index) {
			t.Errorf("%s: plan %q does not use %s", q.sql, plan, q.index)
		}
	}
	for _, c := range consolePlanCases {
		for _, count := range []bool{false, true} {
			q, args := consolePlanQuery(c.f, count, func(int) string { return "?" })
			if plan := queryPlan(t, db, q, args...); !strings.Contains(plan, c.index) {
				t.Errorf("%+v (count %v): plan %q does not use %s", c.f, count, plan, c.index)
			}
		}
	}
}

// queryPlan returns the details of q's EXPLAIN QUERY PLAN, joined by "; ".
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "; ")
	}
	return plan.String()
}

// consolePlanCases: a filter and the index its queries must use.
var consolePlanCases = []struct {
	f     store.ConsoleJobFilter
	index string
}{
	{store.ConsoleJobFilter{State: jobs.StateFailed}, "backlot_jobs_state_id"},
	{store.ConsoleJobFilter{State: jobs.StateAvailable}, "backlot_jobs_state_id"},
	{store.ConsoleJobFilter{State: jobs.StateCancelled, BeforeID: 500}, "backlot_jobs_state_id"},
	{store.ConsoleJobFilter{Kind: "k", State: jobs.StateRetrying}, "backlot_jobs_kind_state_id"},
	{store.ConsoleJobFilter{Kind: "k", State: jobs.StateScheduled}, "backlot_jobs_kind_state_id"},
	{store.ConsoleJobFilter{State: jobs.StateRunning}, "backlot_jobs_running"},
	{store.ConsoleJobFilter{Kind: "k"}, "backlot_jobs_kind_id"},
	{store.ConsoleJobFilter{State: jobs.StateCompleted}, "backlot_jobs_state_id"},
	{store.ConsoleJobFilter{Kind: "k", State: jobs.StateCompleted}, "backlot_jobs_kind_state_id"},
}

// consolePlanQuery is the shape of the console's list and count queries.
func consolePlanQuery(f store.ConsoleJobFilter, count bool, ph store.Placeholder) (string, []any) {
	c := store.ConsoleJobConds(f, ph)
	from := sqlite.JobsFrom(f)
	if count {
		return `SELECT count(*) FROM (SELECT 1 FROM ` + from + c.Where() + ` LIMIT ` + c.Arg(10001) + `) AS capped`, c.Args()
	}
	return `SELECT id FROM ` + from + c.Where() + ` ORDER BY id DESC LIMIT ` + c.Arg(50), c.Args()
}
