package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

// TestConsolePlansUseIndexes: the console's job queries, as the shared
// conditions build them, can use the partial state indexes (which leave
// out running jobs). Sequential scans are disabled so the
// plan shows whether the index is usable at all, whatever the table's size.
func TestConsolePlansUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testutil.Postgres(t)
	open(t, url, store.Options{Migrate: true})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	ph := func(n int) string { return "$" + strconv.Itoa(n) }
	for _, c := range []struct {
		f     store.ConsoleJobFilter
		index string
	}{
		// Either partial state index serves a state alone (PostgreSQL may
		// scan (kind, state, id) for the state).
		{store.ConsoleJobFilter{State: jobs.StateFailed}, "state_id"},
		{store.ConsoleJobFilter{State: jobs.StateAvailable, BeforeID: 500}, "state_id"},
		{store.ConsoleJobFilter{Kind: "k", State: jobs.StateCancelled}, "backlot_jobs_kind_state_id"},
		{store.ConsoleJobFilter{Kind: "k", State: jobs.StateCompleted}, "backlot_jobs_kind_state_id"},
		{store.ConsoleJobFilter{State: jobs.StateCompleted}, "state_id"},
		{store.ConsoleJobFilter{State: jobs.StateRunning}, "backlot_jobs_running"},
		{store.ConsoleJobFilter{Kind: "k"}, "backlot_jobs_kind_id"},
	} {
		for _, count := range []bool{false, true} {
			cs := store.ConsoleJobConds(c.f, ph)
			q := `SELECT id FROM backlot_jobs` + cs.Where() + ` ORDER BY id DESC LIMIT ` + cs.Arg(50)
			if count {
				q = `SELECT count(*) FROM (SELECT 1 FROM backlot_jobs` + cs.Where() + ` LIMIT ` + cs.Arg(10001) + `) AS capped`
			}
			// A generic plan: the values are not known when it is made, as
			// for a statement prepared once and run many times.
			vals := make([]string, len(cs.Args()))
			types := make([]string, len(cs.Args()))
			for i, a := range cs.Args() {
				if s, ok := a.(string); ok {
					vals[i], types[i] = "'"+s+"'", "text" // the cases' values hold no quote
				} else {
					vals[i], types[i] = fmt.Sprint(a), "bigint"
				}
			}
			res, err := conn.PgConn().Exec(ctx, `SET plan_cache_mode = force_generic_plan; DEALLOCATE ALL; PREPARE p(`+
				strings.Join(types, ", ")+`) AS `+q+
				`; EXPLAIN EXECUTE p(`+strings.Join(vals, ", ")+`)`).ReadAll()
			if err != nil {
				t.Fatalf("%+v: %v", c.f, err)
			}
			var plan strings.Builder
			for _, r := range res {
				for _, row := range r.Rows {
					plan.Write(row[0])
					plan.WriteByte('\n')
				}
			}
			if !strings.Contains(plan.String(), c.index) {
				t.Errorf("%+v (count %v): plan does not use %s:\n%s", c.f, count, c.index, plan.String())
			}
		}
	}
}
