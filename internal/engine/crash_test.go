package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

// Environment of a helper process (TestHelperProcess).
const (
	envHelper = "BACKLOT_JOBS_HELPER" // kill | work
	envStore  = "BACKLOT_JOBS_STORE"  // sqlite://path or postgres://…
)

const crashLease = 5 * time.Second

// TestHelperProcess is not a test: it is the body of a child process the
// crash tests start. It runs an engine on the store named in the
// environment until killed. Mode "kill": the worker SIGKILLs its own
// process mid-job. Mode "work": the worker logs its pid and completes; a
// schedule fires "tick" every second.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		return // a normal test run
	}
	ctx := context.Background()
	var st store.Store
	var err error
	backend, dsn, _ := store.ParseURL(os.Getenv(envStore))
	if backend == store.BackendSQLite {
		st, err = sqlite.Open(ctx, dsn, store.Options{})
	} else {
		st, err = postgres.Open(ctx, dsn, store.Options{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open store:", err)
		os.Exit(2)
	}
	cfg := config.Jobs{Lease: config.Duration(crashLease)}
	scheds := []config.Schedule{{Name: "tick", Cron: "@every 1s", Job: "tick"}}
	e, err := New(cfg, scheds, st, Deps{LeaderRetry: 500 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	e.Register("crash", func(ctx context.Context, j *jobs.Job) error {
		if mode == "kill" {
			jobs.Logf(ctx, "about to die")
			time.Sleep(200 * time.Millisecond) // the claim and log are written
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		jobs.Logf(ctx, "ran in %d", os.Getpid())
		return nil
	})
	e.Register("tick", func(ctx context.Context, j *jobs.Job) error {
		jobs.Logf(ctx, "tick in %d", os.Getpid())
		return nil
	})
	if err := e.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	select {} // until killed
}

// startHelper runs TestHelperProcess in a child process; it is killed at
// cleanup if still running.
func startHelper(t *testing.T, mode, storeURL string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envStore+"="+storeURL)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// TestCrashRerun: a worker SIGKILLs its own process mid-job; after a
// restart the job runs again within 15 s (lease 5 s).
func TestCrashRerun(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var url string
			var st store.Store
			if backend == store.BackendSQLite {
				path := filepath.Join(t.TempDir(), "crash.db")
				url = "sqlite://" + path
				db, err := sqlite.Open(context.Background(), path, store.Options{Migrate: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				st = db
			} else {
				url = testutil.Postgres(t)
				st = openPG(t, url)
			}
			e, err := New(config.Jobs{}, nil, st, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			r := enqueue(t, e, "crash", `{}`, nil)

			first := startHelper(t, "kill", url)
			err = first.Wait()
			ws, ok := first.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("first child ended with %v, want SIGKILL", err)
			}
			j, err := st.GetJob(context.Background(), r.ID)
			if err != nil || j.State != jobs.StateRunning || j.Attempt != 1 {
				t.Fatalf("after the crash: %+v, %v; want running, attempt 1", j, err)
			}

			restart := time.Now()
			startHelper(t, "work", url)
			j = waitState(t, st, r.ID, jobs.StateCompleted, 15*time.Second)
			took := time.Since(restart)
			t.Logf("re-ran %s after the restart (lease %s)", took.Round(time.Millisecond), crashLease)
			if j.Attempt != 2 {
				t.Fatalf("attempt %d, want 2", j.Attempt)
			}
			logs, err := st.JobLogs(context.Background(), r.ID)
			if err != nil || len(logs) != 2 || logs[0].Line != "about to die" || !strings.HasPrefix(logs[1].Line, "ran in ") {
				t.Fatalf("logs = %+v, %v", logs, err)
			}
		})
	}
}

// TestTwoProcessesOnePostgres: two backlot processes on one PostgreSQL
// database: each job runs once, and the schedule fires once per tick.
func TestTwoProcessesOnePostgres(t *testing.T) {
	t.Parallel()
	url := testutil.Postgres(t)
	st := openPG(t, url)
	ctx := context.Background()
	startHelper(t, "work", url)
	startHelper(t, "work", url)
	e, err := New(config.Jobs{}, nil, st, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	ids := make([]int64, n)
	for i := range n {
		ids[i] = enqueue(t, e, "crash", fmt.Sprintf(`{"i":%d}`, i), nil).ID
	}
	t0 := time.Now()
	pids := map[string]int{}
	for _, id := range ids {
		waitState(t, st, id, jobs.StateCompleted, 30*time.Second)
		logs, err := st.JobLogs(ctx, id)
		if err != nil || len(logs) != 1 {
			t.Fatalf("job %d: %d runs (%+v), %v; want exactly 1", id, len(logs), logs, err)
		}
		pids[logs[0].Line]++
	}
	t.Logf("runs per process: %v", pids)
	// Let the schedule tick for a while, then count ticks: one leader fires
	// about one per second; two would fire about two.
	time.Sleep(time.Until(t0.Add(5 * time.Second)))
	ticks, err := st.ListJobs(ctx, store.JobFilter{Kind: "tick", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, j := range ticks {
		if keys[j.DedupeKey] {
			t.Fatalf("tick %s fired twice", j.DedupeKey)
		}
		keys[j.DedupeKey] = true
	}
	var first, last time.Time
	for i, j := range ticks {
		if i == 0 || j.CreatedAt.Before(first) {
			first = j.CreatedAt
		}
		if j.CreatedAt.After(last) {
			last = j.CreatedAt
		}
	}
	if len(ticks) < 2 {
		t.Fatalf("%d ticks", len(ticks))
	}
	span := last.Sub(first).Seconds()
	if float64(len(ticks)) > span+1.5 {
		t.Fatalf("%d ticks in %.1fs: more than one per second, two leaders fired", len(ticks), span)
	}
}
