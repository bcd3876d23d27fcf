package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/jobs"
)

func TestJobsCmd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "b.db")
	cfgPath := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(cfgPath, []byte("server: { listen: \"127.0.0.1:0\" }\nstore: { url: \"sqlite://"+dbPath+"\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"--config", cfgPath}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	// A database that was never migrated is refused with a clear message.
	if code, _, errs := cli("jobs", "list"); code == 0 || !strings.Contains(errs, "backlot migrate") {
		t.Fatalf("unmigrated: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := cli("migrate"); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}

	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	res, err := db.InsertJobs(ctx, now, []store.JobInsert{
		{Kind: "mail.send", Queue: "default", Payload: []byte(`{"to":"a@example.com"}`), MaxAttempts: 1, DedupeKey: "evt_9"},
		{Kind: "mail.send", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	failed, waiting := res[0].ID, res[1].ID
	if _, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "default", Kinds: []string{"mail.send"}, Limit: 1, Now: now, Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateJobs(ctx, store.JobUpdates{
		Logs:     []store.JobLogLine{{JobID: failed, At: now, Line: "connecting to smtp"}},
		Progress: []store.JobProgress{{JobID: failed, Percent: 30}},
		Finishes: []store.JobFinish{{JobRef: store.JobRef{ID: failed, Attempt: 1}, State: jobs.StateFailed, Error: "smtp: 550 no such user", At: now}},
	}); err != nil {
		t.Fatal(err)
	}

	code, out, errs := cli("jobs", "list", "--state", "failed")
	if code != 0 || !strings.Contains(out, "mail.send") || !strings.Contains(out, "smtp: 550") || strings.Contains(out, fmt.Sprintf("\n%d ", waiting)) {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli("jobs", "list", "--json")
	var listed []jobs.Job
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 || listed[0].ID != waiting {
		t.Fatalf("list --json: exit %d\n%s", code, out)
	}
	code, out, _ = cli("jobs", "show", fmt.Sprint(failed))
	for _, want := range []string{"state:        failed", "1 of 1", "30%", `{"to":"a@example.com"}`, "connecting to smtp", "smtp: 550 no such user", "evt_9"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show: exit %d, missing %q in\n%s", code, want, out)
		}
	}
	code, out, _ = cli("jobs", "show", fmt.Sprint(failed), "--json")
	var shown struct {
		jobs.Job
		Log []store.JobLogLine `json:"log"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Progress != 30 || len(shown.Log) != 1 {
		t.Fatalf("show --json: exit %d\n%s", code, out)
	}
	if code, out, errs := cli("jobs", "retry", fmt.Sprint(failed)); code != 0 || !strings.Contains(out, "available") {
		t.Fatalf("retry: exit %d %s%s", code, out, errs)
	}
	if j, _ := db.GetJob(ctx, failed); j.State != jobs.StateAvailable || j.MaxAttempts != 2 {
		t.Fatalf("after retry: %s, max_attempts %d", j.State, j.MaxAttempts)
	}
	if code, out, errs := cli("jobs", "cancel", fmt.Sprint(waiting)); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d %s%s", code, out, errs)
	}
	if code, out, errs := cli("jobs", "purge", "--state", "cancelled", "--older-than", "0s"); code != 0 || !strings.Contains(out, "deleted 1 cancelled") {
		t.Fatalf("purge: exit %d %s%s", code, out, errs)
	}
	// Each change left exactly one audit entry, by the command line.
	entries, err := db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantAudit := []struct {
		action, target string
		count          int64
	}{
		{store.AuditJobPurge, "state=cancelled older_than=0s", 1},
		{store.AuditJobCancel, fmt.Sprintf("job %d", waiting), 1},
		{store.AuditJobRetry, fmt.Sprintf("job %d", failed), 1},
	}
	if len(entries) != len(wantAudit) {
		t.Fatalf("%d audit entries, want %d: %+v", len(entries), len(wantAudit), entries)
	}
	for i, w := range wantAudit {
		e := entries[i]
		if e.Action != w.action || e.Target != w.target || e.Count != w.count ||
			(e.Actor != "cli" && !strings.HasPrefix(e.Actor, "cli:")) || time.Since(e.At) > time.Minute {
			t.Errorf("audit entry %d = %+v, want %s %q count %d by cli", i, e, w.action, w.target, w.count)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"jobs", "show", "abc"}, 2, "positive integer"},
		{[]string{"jobs", "show"}, 2, "accepts 1 arg"},
		{[]string{"jobs", "show", "99999"}, 1, "job 99999 not found"},
		{[]string{"jobs", "retry", "99999"}, 1, "not found"},
		{[]string{"jobs", "cancel", fmt.Sprint(waiting)}, 1, "not found"}, // purged
		{[]string{"jobs", "list", "--state", "bogus"}, 2, "--state"},
		{[]string{"jobs", "list", "--limit", "0"}, 2, "--limit"},
		{[]string{"jobs", "purge", "--state", "running", "--older-than", "1h"}, 2, "completed, failed or cancelled"},
		{[]string{"jobs", "purge", "--state", "failed"}, 2, "required flag"},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q), stdout %q", tc.args, code, tc.code, errs, tc.want, out)
		}
	}
}

// TestJobsShowCompletedAfterRetry: a job that failed once and then
// completed is shown as done (progress 100%), and its first attempt's error
// is labelled as history, not as the job's last error.
func TestJobsShowCompletedAfterRetry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "b.db")
	cfgPath := writeFile(t, dir, "backlot.yaml", "server: { listen: \"127.0.0.1:0\" }\nstore: { url: \"sqlite://"+dbPath+"\" }\n")
	if code, _, errs := cli(t, "migrate", "--config", cfgPath); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	res, err := db.InsertJobs(ctx, now, []store.JobInsert{{Kind: "mail.send", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 5}})
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	claim := func(at time.Time) {
		t.Helper()
		got, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "default", Kinds: []string{"mail.send"}, Limit: 1, Now: at, Lease: time.Minute})
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v (%d jobs)", err, len(got))
		}
	}
	finish := func(f store.JobFinish) {
		t.Helper()
		if err := db.UpdateJobs(ctx, store.JobUpdates{Finishes: []store.JobFinish{f}}); err != nil {
			t.Fatal(err)
		}
	}
	show := func() string {
		t.Helper()
		code, out, errs := cli(t, "jobs", "show", fmt.Sprint(id), "--config", cfgPath)
		if code != 0 {
			t.Fatalf("show: exit %d, stderr %s", code, errs)
		}
		return out
	}
	list := func() string {
		t.Helper()
		code, out, errs := cli(t, "jobs", "list", "--config", cfgPath)
		if code != 0 {
			t.Fatalf("list: exit %d, stderr %s", code, errs)
		}
		return out
	}

	claim(now)
	finish(store.JobFinish{JobRef: store.JobRef{ID: id, Attempt: 1}, State: jobs.StateRetrying, RunAt: now, Error: "smtp: 421 try later", At: now})
	// Waiting to retry: the error is the job's current state.
	if out := show(); !strings.Contains(out, "state:        retrying") || !strings.Contains(out, "last error:\n  smtp: 421 try later") || !strings.Contains(out, "progress:     0%") {
		t.Fatalf("retrying job:\n%s", out)
	}
	if out := list(); !strings.Contains(out, "smtp: 421") {
		t.Fatalf("list of a retrying job lacks its error:\n%s", out)
	}

	later := now.Add(time.Second)
	claim(later)
	finish(store.JobFinish{JobRef: store.JobRef{ID: id, Attempt: 2}, State: jobs.StateCompleted, At: later})
	out := show()
	for _, want := range []string{"state:        completed", "2 of 5", "progress:     100%", "previous attempt's error:\n  smtp: 421 try later"} {
		if !strings.Contains(out, want) {
			t.Errorf("completed job: missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "last error") || strings.Contains(out, "progress:     0%") {
		t.Errorf("completed job still shows a last error or 0%% progress:\n%s", out)
	}
	if out := list(); strings.Contains(out, "smtp: 421") {
		t.Errorf("list shows an old error on a completed job:\n%s", out)
	}
}
