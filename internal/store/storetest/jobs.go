package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// runJobs exercises store.JobStore and store.LeaderStore.
func runJobs(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Jobs", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		base := time.Date(2026, 5, 6, 7, 8, 9, 123_456_000, time.UTC)
		job := func(kind string) store.JobInsert {
			return store.JobInsert{Kind: kind, Queue: "default", Payload: []byte(`{"n":[1,2],"k" : "v"}`), MaxAttempts: 3}
		}
		insert := func(t *testing.T, s store.Store, now time.Time, batch ...store.JobInsert) []jobs.EnqueueResult {
			t.Helper()
			res, err := s.InsertJobs(ctx, now, batch)
			if err != nil {
				t.Fatalf("InsertJobs: %v", err)
			}
			if len(res) != len(batch) {
				t.Fatalf("InsertJobs returned %d results for %d jobs", len(res), len(batch))
			}
			return res
		}
		get := func(t *testing.T, s store.Store, id int64) *jobs.Job {
			t.Helper()
			j, err := s.GetJob(ctx, id)
			if err != nil {
				t.Fatalf("GetJob(%d): %v", id, err)
			}
			return j
		}
		claim := func(t *testing.T, s store.Store, now time.Time, limit int, kinds ...string) []*jobs.Job {
			t.Helper()
			js, err := s.ClaimJobs(ctx, store.ClaimParams{Queue: "default", Kinds: kinds, Limit: limit, Now: now, Lease: 10 * time.Second})
			if err != nil {
				t.Fatalf("ClaimJobs: %v", err)
			}
			return js
		}

		t.Run("InsertAndGet", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			in := job("a.kind")
			in.DedupeKey = "k1"
			res := insert(t, s, base, in)
			if res[0].ID <= 0 || res[0].Duplicate {
				t.Fatalf("result = %+v", res[0])
			}
			j := get(t, s, res[0].ID)
			if j.Kind != "a.kind" || j.Queue != "default" || j.State != jobs.StateAvailable || j.Attempt != 0 ||
				j.MaxAttempts != 3 || !j.RunAt.Equal(base) || !j.CreatedAt.Equal(base) || j.DedupeKey != "k1" ||
				j.LeaseUntil != nil || j.FinishedAt != nil || j.Progress != 0 {
				t.Fatalf("job = %+v", j)
			}
			// The payload comes back byte for byte (a webhook body as received).
			if string(j.Payload) != `{"n":[1,2],"k" : "v"}` {
				t.Fatalf("payload = %s", j.Payload)
			}
			if _, err := s.GetJob(ctx, res[0].ID+1000); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetJob(missing) = %v, want ErrNotFound", err)
			}
		})

		t.Run("Dedupe", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			a, b := job("x"), job("x")
			a.DedupeKey, b.DedupeKey = "same", "other"
			// Within one batch: the second "same" is the first's duplicate.
			res := insert(t, s, base, a, b, a, job("x"))
			if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[3].Duplicate {
				t.Fatalf("duplicates = %+v", res)
			}
			if res[2].ID != res[0].ID || res[0].ID == res[1].ID || res[3].ID == res[0].ID {
				t.Fatalf("ids = %+v", res)
			}
			// Across batches.
			res2 := insert(t, s, base, b, a)
			if !res2[0].Duplicate || res2[0].ID != res[1].ID || !res2[1].Duplicate || res2[1].ID != res[0].ID {
				t.Fatalf("second batch = %+v, first = %+v", res2, res)
			}
			all, err := s.ListJobs(ctx, store.JobFilter{})
			if err != nil || len(all) != 3 {
				t.Fatalf("ListJobs = %d jobs, %v; want 3", len(all), err)
			}
			// Keys outlive their jobs, and expire on their own.
			if n, err := s.DeleteDedupeKeys(ctx, base); err != nil || n != 0 {
				t.Fatalf("DeleteDedupeKeys(base) = %d, %v; want 0", n, err)
			}
			if n, err := s.DeleteDedupeKeys(ctx, base.Add(time.Second)); err != nil || n != 2 {
				t.Fatalf("DeleteDedupeKeys(later) = %d, %v; want 2", n, err)
			}
			if res3 := insert(t, s, base, a); res3[0].Duplicate {
				t.Fatalf("after the key expired: %+v, want a new job", res3[0])
			}
		})

		t.Run("ScheduledAndClaimOrder", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			later := job("k")
			later.RunAt = base.Add(time.Minute)
			r := insert(t, s, base, job("k"), later, job("k"), job("other.kind"))
			if j := get(t, s, r[1].ID); j.State != jobs.StateScheduled || !j.RunAt.Equal(base.Add(time.Minute)) {
				t.Fatalf("future job = %s at %s, want scheduled", j.State, j.RunAt)
			}
			q := job("k")
			q.Queue = "other"
			insert(t, s, base, q)

			got := claim(t, s, base, 10, "k")
			if len(got) != 2 || got[0].ID != r[0].ID || got[1].ID != r[2].ID {
				t.Fatalf("claimed %v, want jobs %d and %d in order", ids(got), r[0].ID, r[2].ID)
			}
			for _, j := range got {
				if j.State != jobs.StateRunning || j.Attempt != 1 || j.LeaseUntil == nil || !j.LeaseUntil.Equal(base.Add(10*time.Second)) {
					t.Fatalf("claimed job = %+v", j)
				}
			}
			if got := claim(t, s, base.Add(5*time.Second), 10, "k"); len(got) != 0 {
				t.Fatalf("claimed %v before run_at", ids(got))
			}
			// Due now; the lapsed leases of the first two come back too.
			got = claim(t, s, base.Add(time.Minute), 1, "k")
			if len(got) != 1 {
				t.Fatalf("limit 1: claimed %v", ids(got))
			}
			got = claim(t, s, base.Add(time.Minute), 10, "k")
			if len(got) != 2 {
				t.Fatalf("claimed %v, want the other two", ids(got))
			}
			if got := claim(t, s, base.Add(time.Minute), 10, "k", "other.kind"); len(got) != 1 || got[0].ID != r[3].ID {
				t.Fatalf("claimed %v, want only job %d", ids(got), r[3].ID)
			}
		})

		t.Run("InsertClaimed", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			claimed := job("k")
			claimed.LeaseUntil = base.Add(30 * time.Second)
			r := insert(t, s, base, claimed, job("k"))
			j := get(t, s, r[0].ID)
			if j.State != jobs.StateRunning || j.Attempt != 1 || j.LeaseUntil == nil || !j.LeaseUntil.Equal(claimed.LeaseUntil) {
				t.Fatalf("job inserted claimed = %+v, want running, attempt 1, leased until %s", j, claimed.LeaseUntil)
			}
			if got := claim(t, s, base, 10, "k"); len(got) != 1 || got[0].ID != r[1].ID {
				t.Fatalf("claimed %v, want only job %d (the other is taken)", ids(got), r[1].ID)
			}
			// Its lease lapses like any claim's: then another run may take it.
			if got := claim(t, s, base.Add(31*time.Second), 10, "k"); len(got) != 2 {
				t.Fatalf("after the leases lapsed claimed %v, want both", ids(got))
			}
		})

		t.Run("LeaseExpiryAndFencing", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			in := job("k")
			in.MaxAttempts = 2
			r := insert(t, s, base, in)
			id := r[0].ID
			first := claim(t, s, base, 1, "k")[0]
			st, err := s.ExtendLeases(ctx, base.Add(20*time.Second), []store.JobRef{{ID: id, Attempt: 1}})
			if err != nil || len(st) != 1 || st[0].ID != id || st[0].CancelRequested {
				t.Fatalf("ExtendLeases = %+v, %v", st, err)
			}
			if got := claim(t, s, base.Add(15*time.Second), 1, "k"); len(got) != 0 {
				t.Fatal("claimed a job whose lease was extended")
			}
			second := claim(t, s, base.Add(21*time.Second), 1, "k")
			if len(second) != 1 || second[0].Attempt != 2 {
				t.Fatalf("after the lease lapsed: %+v", second)
			}
			// The first run is fenced out: no lease, no outcome.
			if st, _ := s.ExtendLeases(ctx, base.Add(40*time.Second), []store.JobRef{{ID: id, Attempt: first.Attempt}}); len(st) != 0 {
				t.Fatalf("stale run extended its lease: %+v", st)
			}
			stale := store.JobFinish{JobRef: store.JobRef{ID: id, Attempt: 1}, State: jobs.StateCompleted, At: base}
			if err := s.UpdateJobs(ctx, store.JobUpdates{Finishes: []store.JobFinish{stale}}); err != nil {
				t.Fatal(err)
			}
			if j := get(t, s, id); j.State != jobs.StateRunning || j.Attempt != 2 {
				t.Fatalf("stale outcome applied: %s attempt %d", j.State, j.Attempt)
			}
			// Last attempt lost: not claimed again, failed by FailLostJobs.
			if got := claim(t, s, base.Add(time.Hour), 1, "k"); len(got) != 0 {
				t.Fatal("claimed a lost job with no attempts left")
			}
			if n, err := s.FailLostJobs(ctx, base.Add(time.Hour)); err != nil || n != 1 {
				t.Fatalf("FailLostJobs = %d, %v", n, err)
			}
			if j := get(t, s, id); j.State != jobs.StateFailed || j.FinishedAt == nil || j.LastError == "" {
				t.Fatalf("lost job = %+v", j)
			}
		})

		t.Run("Outcomes", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			r := insert(t, s, base, job("k"), job("k"), job("k"), job("k"))
			got := claim(t, s, base, 4, "k")
			if len(got) != 4 {
				t.Fatalf("claimed %d", len(got))
			}
			at := base.Add(time.Second)
			if _, err := s.CancelJob(ctx, r[3].ID, at); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.ExtendLeases(ctx, base.Add(time.Minute), []store.JobRef{{ID: r[3].ID, Attempt: 1}}); len(st) != 1 || !st[0].CancelRequested {
				t.Fatalf("heartbeat of a cancelled run = %+v, want cancel requested", st)
			}
			err := s.UpdateJobs(ctx, store.JobUpdates{
				Logs: []store.JobLogLine{
					{JobID: r[0].ID, At: base, Line: "first"},
					{JobID: r[0].ID, At: base, Line: "second"},
				},
				Progress: []store.JobProgress{{JobID: r[0].ID, Percent: 40}, {JobID: r[0].ID, Percent: 100}},
				Finishes: []store.JobFinish{
					{JobRef: store.JobRef{ID: r[0].ID, Attempt: 1}, State: jobs.StateCompleted, At: at},
					{JobRef: store.JobRef{ID: r[1].ID, Attempt: 1}, State: jobs.StateRetrying, RunAt: base.Add(time.Hour), Error: "boom", At: at},
					{JobRef: store.JobRef{ID: r[2].ID, Attempt: 1}, State: jobs.StateFailed, Error: "dead", At: at},
					{JobRef: store.JobRef{ID: r[3].ID, Attempt: 1}, State: jobs.StateRetrying, RunAt: base.Add(time.Hour), Error: "ctx", At: at},
				},
			})
			if err != nil {
				t.Fatalf("UpdateJobs: %v", err)
			}
			if j := get(t, s, r[0].ID); j.State != jobs.StateCompleted || j.Progress != 100 || j.FinishedAt == nil || !j.FinishedAt.Equal(at) || j.LeaseUntil != nil {
				t.Fatalf("completed = %+v", j)
			}
			if j := get(t, s, r[1].ID); j.State != jobs.StateRetrying || !j.RunAt.Equal(base.Add(time.Hour)) || j.LastError != "boom" || j.FinishedAt != nil {
				t.Fatalf("retrying = %+v", j)
			}
			if j := get(t, s, r[2].ID); j.State != jobs.StateFailed || j.LastError != "dead" || j.FinishedAt == nil {
				t.Fatalf("failed = %+v", j)
			}
			if j := get(t, s, r[3].ID); j.State != jobs.StateCancelled || j.FinishedAt == nil {
				t.Fatalf("cancel requested then failed = %+v, want cancelled", j)
			}
			logs, err := s.JobLogs(ctx, r[0].ID)
			if err != nil || len(logs) != 2 || logs[0].Line != "first" || logs[1].Line != "second" || !logs[0].At.Equal(base) {
				t.Fatalf("JobLogs = %+v, %v", logs, err)
			}
			// A retrying job comes back at its run_at, attempt 2.
			if got := claim(t, s, base.Add(time.Hour), 10, "k"); len(got) != 1 || got[0].ID != r[1].ID || got[0].Attempt != 2 {
				t.Fatalf("claimed %+v, want job %d attempt 2", got, r[1].ID)
			}
			cs, err := s.CountJobs(ctx)
			if err != nil || len(cs) != 1 || cs[0] != (store.JobCount{Queue: "default", State: jobs.StateRunning, Count: 1}) {
				t.Fatalf("CountJobs = %+v, %v", cs, err)
			}
		})

		t.Run("RetryAndCancel", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			r := insert(t, s, base, job("k"), job("k"), job("k"))
			got := claim(t, s, base, 1, "k")
			fin := func(id int64, attempt int, st jobs.State) {
				t.Helper()
				if err := s.UpdateJobs(ctx, store.JobUpdates{Finishes: []store.JobFinish{{JobRef: store.JobRef{ID: id, Attempt: attempt}, State: st, Error: "x", At: base}}}); err != nil {
					t.Fatal(err)
				}
			}
			fin(got[0].ID, 1, jobs.StateCompleted)
			// Completed: neither retried nor cancelled.
			if _, err := s.RetryJob(ctx, r[0].ID, base); !errors.Is(err, store.ErrJobState) {
				t.Fatalf("RetryJob(completed) = %v, want ErrJobState", err)
			}
			if _, err := s.CancelJob(ctx, r[0].ID, base); !errors.Is(err, store.ErrJobState) {
				t.Fatalf("CancelJob(completed) = %v, want ErrJobState", err)
			}
			if _, err := s.RetryJob(ctx, 999999, base); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("RetryJob(missing) = %v, want ErrNotFound", err)
			}
			if _, err := s.CancelJob(ctx, 999999, base); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("CancelJob(missing) = %v, want ErrNotFound", err)
			}
			// Available → cancelled at once; twice is fine.
			for range 2 {
				j, err := s.CancelJob(ctx, r[1].ID, base)
				if err != nil || j.State != jobs.StateCancelled {
					t.Fatalf("CancelJob(available) = %+v, %v", j, err)
				}
			}
			if got := claim(t, s, base, 10, "k"); len(got) != 1 || got[0].ID != r[2].ID {
				t.Fatalf("claimed %v, want only %d", ids(got), r[2].ID)
			}
			// Retry a cancelled job: available, attempt kept.
			j, err := s.RetryJob(ctx, r[1].ID, base.Add(time.Second))
			if err != nil || j.State != jobs.StateAvailable || j.FinishedAt != nil || !j.RunAt.Equal(base.Add(time.Second)) {
				t.Fatalf("RetryJob(cancelled) = %+v, %v", j, err)
			}
			// Exhaust attempts of r[2]; a manual retry grants exactly one more.
			for a := 1; a <= 3; a++ {
				if a > 1 {
					if got := claim(t, s, base.Add(time.Duration(a)*time.Hour), 1, "k"); len(got) != 1 {
						t.Fatalf("attempt %d not claimed", a)
					}
				}
				st := jobs.StateRetrying
				if a == 3 {
					st = jobs.StateFailed
				}
				fin(r[2].ID, a, st)
			}
			j, err = s.RetryJob(ctx, r[2].ID, base)
			if err != nil || j.State != jobs.StateAvailable || j.Attempt != 3 || j.MaxAttempts != 4 {
				t.Fatalf("RetryJob(failed) = %+v, %v; want attempt 3 of 4", j, err)
			}
		})

		t.Run("ReleaseAndDelete", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			r := insert(t, s, base, job("k"), job("k"), job("k"))
			got := claim(t, s, base, 3, "k")
			if err := s.ReleaseJobs(ctx, base.Add(time.Second), []store.JobRef{{ID: r[0].ID, Attempt: 1}}); err != nil {
				t.Fatal(err)
			}
			if j := get(t, s, r[0].ID); j.State != jobs.StateAvailable || j.Attempt != 0 || j.LeaseUntil != nil {
				t.Fatalf("released = %+v", j)
			}
			err := s.UpdateJobs(ctx, store.JobUpdates{
				Logs: []store.JobLogLine{{JobID: r[1].ID, At: base, Line: "l"}},
				Finishes: []store.JobFinish{
					{JobRef: store.JobRef{ID: got[1].ID, Attempt: 1}, State: jobs.StateCompleted, At: base},
					{JobRef: store.JobRef{ID: got[2].ID, Attempt: 1}, State: jobs.StateFailed, At: base.Add(time.Hour)},
				}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.DeleteJobs(ctx, store.DeleteJobsParams{State: jobs.StateRunning, FinishedBefore: base}); !errors.Is(err, store.ErrJobState) {
				t.Fatalf("DeleteJobs(running) = %v, want ErrJobState", err)
			}
			if n, err := s.DeleteJobs(ctx, store.DeleteJobsParams{State: jobs.StateCompleted, FinishedBefore: base}); err != nil || n != 0 {
				t.Fatalf("DeleteJobs(not yet) = %d, %v", n, err)
			}
			if n, err := s.DeleteJobs(ctx, store.DeleteJobsParams{State: jobs.StateCompleted, FinishedBefore: base.Add(time.Millisecond), Limit: 10}); err != nil || n != 1 {
				t.Fatalf("DeleteJobs(completed) = %d, %v", n, err)
			}
			if _, err := s.GetJob(ctx, r[1].ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("deleted job: %v", err)
			}
			if logs, err := s.JobLogs(ctx, r[1].ID); err != nil || len(logs) != 0 {
				t.Fatalf("logs of a deleted job = %v, %v", logs, err)
			}
			get(t, s, r[2].ID) // failed, finished later: kept
			for _, st := range []jobs.State{jobs.StateAvailable, jobs.StateFailed} {
				js, err := s.ListJobs(ctx, store.JobFilter{State: st, Kind: "k", Limit: 5})
				if err != nil || len(js) != 1 {
					t.Fatalf("ListJobs(%s) = %v, %v", st, ids(js), err)
				}
			}
		})

		t.Run("Listen", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			lctx, cancel := context.WithCancel(ctx)
			got := make(chan string, 16)
			done := make(chan error, 1)
			go func() { done <- s.ListenJobs(lctx, func(q string) { got <- q }) }()
			if s.Backend() == store.BackendPostgres {
				if q := <-got; q != "" { // connected: "anything may have happened"
					t.Fatalf("first callback %q, want \"\"", q)
				}
				in := job("k")
				in.Queue = "mail"
				insert(t, s, base, in)
				select {
				case q := <-got:
					if q != "mail" {
						t.Fatalf("notified %q, want mail", q)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no notification after an insert")
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("ListenJobs: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ListenJobs did not return after its context ended")
			}
		})

		t.Run("Leader", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			l, ok, err := s.TryLead(ctx, "x")
			if err != nil || !ok {
				t.Fatalf("TryLead = %v, %v", ok, err)
			}
			l2, ok2, err := s.TryLead(ctx, "x")
			if err != nil {
				t.Fatal(err)
			}
			switch s.Backend() {
			case store.BackendPostgres:
				if ok2 {
					t.Fatal("two leaders on PostgreSQL")
				}
			case store.BackendSQLite:
				if !ok2 {
					t.Fatal("SQLite: the one process must lead")
				}
				_ = l2.Release()
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			l3, ok, err := s.TryLead(ctx, "x")
			if err != nil || !ok {
				t.Fatalf("TryLead after Release = %v, %v", ok, err)
			}
			select {
			case <-l3.Lost():
				t.Fatal("leadership lost at once")
			default:
			}
			_ = l3.Release()
		})
	})
}

func ids(js []*jobs.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = fmt.Sprint(j.ID)
	}
	return out
}
