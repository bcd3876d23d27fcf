package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/console"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
)

// benchRows is the size of the job table the console must stay fast on.
const benchRows = 1_000_000

// fillJobs inserts n jobs in one statement: a recursive CTE generates the
// rows inside SQLite, so a million take seconds, not minutes. States in a
// fixed mix (60% completed, 10% each failed,
// available, retrying, cancelled), twenty kinds, payloads of ~250 bytes.
func fillJobs(tb testing.TB, st store.Store, n int) {
	tb.Helper()
	now := time.Now().UnixMicro()
	err := st.RunTx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO backlot_jobs
			(kind, queue, payload, state, attempt, max_attempts, run_at, last_error, created_at, finished_at)
			WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $1)
			SELECT 'kind.' || (i % 20), 'default',
				'{"i":' || i || ',"pad":"' || hex(zeroblob(100)) || '"}',
				CASE WHEN i % 10 < 6 THEN 'completed' WHEN i % 10 = 6 THEN 'failed' WHEN i % 10 = 7 THEN 'available'
				     WHEN i % 10 = 8 THEN 'retrying' ELSE 'cancelled' END,
				1, 3, $2 + i, CASE WHEN i % 10 = 6 THEN 'boom: upstream 503' ELSE '' END, $2 + i,
				CASE WHEN i % 10 < 7 OR i % 10 = 9 THEN $2 + i END
			FROM c`, n, now)
		return err
	})
	if err != nil {
		tb.Fatalf("fill %d jobs: %v", n, err)
	}
}

// BenchmarkJobListPages renders console pages over a million job rows on
// SQLite through the whole handler (authentication included) and reports
// the 95th percentile per page as p95-ms. The target is under 100 ms.
//
//	go test -run '^$' -bench BenchmarkJobListPages -benchtime 200x ./internal/console/
func BenchmarkJobListPages(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"), store.Options{Migrate: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	fillJobs(b, st, benchRows)
	// A few running jobs spread through the table: running jobs are not in
	// the partial state indexes, so their page walks backlot_jobs_running.
	err = st.RunTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE backlot_jobs SET state = 'running', lease_until = $1, finished_at = NULL
			WHERE id % 50000 = 1`, time.Now().Add(time.Hour).UnixMicro())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d jobs in %s", benchRows, time.Since(start).Round(time.Millisecond))

	const key = "blk_bench-console-key-0123456789"
	sum := sha256.Sum256([]byte(key))
	set, err := authn.NewSet(map[string]config.Authenticator{
		"ops": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "ops", SHA256: hex.EncodeToString(sum[:])}}},
	}, nil, authn.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(config.Jobs{}, nil, st, engine.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	con, err := console.New(console.Config{
		Console: config.Console{Path: "/_/", Auth: []string{"ops"}, Admin: []string{"ops"}},
		Store:   st, Engine: eng, Auth: set,
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	con.Register(mux)

	deep := strconv.Itoa(benchRows / 2) // a page half way down the keyset
	for _, page := range []struct{ name, url string }{
		{"first", "/_/jobs"},
		{"deep", "/_/jobs?before=" + deep},
		{"state=failed", "/_/jobs?state=failed"},
		{"state=completed", "/_/jobs?state=completed"},
		{"state=running", "/_/jobs?state=running"},
		{"kind+completed", "/_/jobs?kind=kind.7&state=completed"},
		{"kind", "/_/jobs?kind=kind.7"},
		{"kind+state", "/_/jobs?kind=kind.7&state=failed"},
		{"kind+state deep", "/_/jobs?kind=kind.7&state=failed&before=" + deep},
		{"bulk dry run", "/_/jobs/bulk?action=retry&state=failed"},
		{"job", "/_/jobs/" + deep},
		{"audit", "/_/audit"},
	} {
		b.Run(page.name, func(b *testing.B) {
			durs := make([]time.Duration, 0, b.N)
			for b.Loop() {
				req := httptest.NewRequest("GET", page.url, nil)
				req.Header.Set("Authorization", "Bearer "+key)
				w := httptest.NewRecorder()
				t0 := time.Now()
				mux.ServeHTTP(w, req)
				durs = append(durs, time.Since(t0))
				if w.Code != 200 {
					b.Fatalf("%s: %d %s", page.url, w.Code, w.Body.String())
				}
				io.Copy(io.Discard, w.Body)
			}
			slices.Sort(durs)
			p := func(q float64) float64 {
				return float64(durs[min(len(durs)-1, int(q*float64(len(durs))))].Microseconds()) / 1000
			}
			b.ReportMetric(p(0.50), "p50-ms")
			b.ReportMetric(p(0.95), "p95-ms")
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "bench.db")); err == nil {
		b.Logf("database: %d MB", fi.Size()>>20)
	}
}

// TestFillJobsCounts keeps the benchmark's fill honest at a small size:
// the states come out in the stated mix and the capped count stops at the
// cap.
func TestFillJobsCounts(t *testing.T) {
	t.Parallel()
	st := testutil.SQLite(t)
	fillJobs(t, st, 20000)
	ctx := context.Background()
	for _, tt := range []struct {
		f    store.ConsoleJobFilter
		want int64
	}{
		{store.ConsoleJobFilter{State: "failed"}, 2000},
		{store.ConsoleJobFilter{State: "completed"}, store.CountCap + 1},
		{store.ConsoleJobFilter{Kind: "kind.3"}, 1000},
		{store.ConsoleJobFilter{Kind: "kind.3", State: "failed"}, 0}, // i%20==3 never has i%10==6
		{store.ConsoleJobFilter{Kind: "kind.6", State: "failed"}, 1000},
	} {
		n, err := st.CountJobsCapped(ctx, tt.f, store.CountCap)
		if err != nil || n != tt.want {
			t.Errorf("count %+v = %d, %v; want %d", tt.f, n, err, tt.want)
		}
	}
}
