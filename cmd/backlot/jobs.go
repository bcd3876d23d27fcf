package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/backlothq/backlot/internal/audit"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
	"github.com/backlothq/backlot/jobs"
)

// newJobsCmd is `backlot jobs`: inspect and steer the job queue of the
// store named by the configuration, without a running server.
func newJobsCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Inspect and steer background jobs",
		Long: `List, show, retry, cancel and purge the jobs in the store named by
store.url. Works while servers run; on PostgreSQL a retried job is picked up
at once, on SQLite within a second.`,
		Example: `  backlot jobs list --state failed
  backlot jobs show 42
  backlot jobs retry 42
  backlot jobs purge --state completed --older-than 1h`,
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.AddCommand(
		newJobsListCmd(g, &asJSON),
		newJobsShowCmd(g, &asJSON),
		newJobsTransitionCmd(g, &asJSON, "retry", "Make a failed, cancelled or retrying job run again now",
			`The attempt count is kept; a job that used all its attempts gets exactly one more.`,
			(*engine.Engine).Retry),
		newJobsTransitionCmd(g, &asJSON, "cancel", "Cancel a job",
			`A job that is not running is cancelled at once. A running job is asked to stop
(its worker sees it at the next heartbeat) and ends cancelled unless it
completes first.`,
			(*engine.Engine).Cancel),
		newJobsPurgeCmd(g, &asJSON),
	)
	return cmd
}

// withEngine opens the store (refusing a schema that is behind) and an
// engine over it that is not started: only its store-backed methods run.
func withEngine(cmd *cobra.Command, g *globalFlags, fn func(ctx context.Context, e *engine.Engine, st store.Store) error) error {
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
	defer cancel()
	st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: false})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	e, err := engine.New(cfg.Jobs, nil, st, engine.Deps{})
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	return fn(ctx, e, st)
}

// cliAudit appends one entry to the audit log for a change made from the
// command line. The change is done by then, so a failure to record it is
// reported but does not undo it.
func cliAudit(ctx context.Context, cmd *cobra.Command, st store.AuditStore, e store.AuditEntry) error {
	e.Actor = audit.CLIActor()
	e.At = time.Now()
	if host, err := os.Hostname(); err == nil {
		e.Address = "host " + host
	}
	if _, err := st.InsertAudit(ctx, e); err != nil {
		return fmt.Errorf("the change is made, but writing the audit log failed: %w", err)
	}
	return nil
}

func parseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &exitError{Code: 2, Err: fmt.Errorf("job id %q: want a positive integer", s)}
	}
	return id, nil
}

// jobError makes the store's sentinels readable.
func jobError(id int64, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("job %d not found", id)
	case errors.Is(err, store.ErrJobState):
		return fmt.Errorf("job %d: %w", id, err)
	}
	return err
}

var jobStates = []jobs.State{jobs.StateScheduled, jobs.StateAvailable, jobs.StateRunning, jobs.StateRetrying,
	jobs.StateCompleted, jobs.StateFailed, jobs.StateCancelled}

func parseState(s string, finishedOnly bool) (jobs.State, error) {
	for _, st := range jobStates {
		if string(st) == s {
			if finishedOnly && st != jobs.StateCompleted && st != jobs.StateFailed && st != jobs.StateCancelled {
				break
			}
			return st, nil
		}
	}
	want := "scheduled, available, running, retrying, completed, failed or cancelled"
	if finishedOnly {
		want = "completed, failed or cancelled"
	}
	return "", &exitError{Code: 2, Err: fmt.Errorf("--state %q: want %s", s, want)}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newJobsListCmd(g *globalFlags, asJSON *bool) *cobra.Command {
	var state, kind, queue string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := store.JobFilter{Kind: kind, Queue: queue, Limit: limit}
			if state != "" {
				st, err := parseState(state, false)
				if err != nil {
					return err
				}
				f.State = st
			}
			if limit <= 0 {
				return &exitError{Code: 2, Err: fmt.Errorf("--limit %d: want a positive number", limit)}
			}
			return withEngine(cmd, g, func(ctx context.Context, e *engine.Engine, st store.Store) error {
				js, err := e.List(ctx, f)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					if js == nil {
						js = []*jobs.Job{}
					}
					return writeJSON(out, js)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tQUEUE\tSTATE\tATTEMPT\tRUN AT\tCREATED\tLAST ERROR")
				for _, j := range js {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.Queue, j.State,
						j.Attempt, j.MaxAttempts, fmtTime(&j.RunAt), fmtTime(&j.CreatedAt), listedError(j))
				}
				return tw.Flush()
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only jobs in this state")
	fl.StringVar(&kind, "kind", "", "only jobs of this kind")
	fl.StringVar(&queue, "queue", "", "only jobs of this queue")
	fl.IntVar(&limit, "limit", 50, "at most this many jobs")
	return cmd
}

// listedError is the LAST ERROR column: empty for a completed job, whose
// earlier failures are history (jobs show prints them, labelled).
func listedError(j *jobs.Job) string {
	if j.State == jobs.StateCompleted {
		return ""
	}
	return firstLine(j.LastError, 60)
}

// errorIsCurrent reports whether a job's last error describes where it
// stands: it is waiting to retry, or it ended on that error. A job that
// completed, or is running or waiting again, keeps the error of an earlier
// attempt, which is history rather than state.
func errorIsCurrent(s jobs.State) bool {
	return s == jobs.StateRetrying || s == jobs.StateFailed || s == jobs.StateCancelled
}

// shownProgress is the job's progress, and 100 once it completed: workers
// need not report progress, and a finished job is done whatever it said.
func shownProgress(j *jobs.Job) int {
	if j.State == jobs.StateCompleted {
		return 100
	}
	return j.Progress
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func newJobsShowCmd(g *globalFlags, asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one job: payload, attempts, last error, progress and log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			return withEngine(cmd, g, func(ctx context.Context, e *engine.Engine, st store.Store) error {
				j, err := e.Get(ctx, id)
				if err != nil {
					return jobError(id, err)
				}
				logs, err := e.Logs(ctx, id)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					if logs == nil {
						logs = []store.JobLogLine{}
					}
					return writeJSON(out, struct {
						*jobs.Job
						Log []store.JobLogLine `json:"log"`
					}{j, logs})
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
				row("id", strconv.FormatInt(j.ID, 10))
				row("kind", j.Kind)
				row("queue", j.Queue)
				row("state", string(j.State))
				row("attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
				row("progress", fmt.Sprintf("%d%%", shownProgress(j)))
				row("run at", fmtTime(&j.RunAt))
				row("lease until", fmtTime(j.LeaseUntil))
				row("created", fmtTime(&j.CreatedAt))
				row("finished", fmtTime(j.FinishedAt))
				if j.DedupeKey != "" {
					row("dedupe key", j.DedupeKey)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if j.LastError != "" {
					label := "last error"
					if !errorIsCurrent(j.State) {
						label = "previous attempt's error"
					}
					fmt.Fprintf(out, "%s:\n  %s\n", label, strings.ReplaceAll(j.LastError, "\n", "\n  "))
				}
				fmt.Fprintf(out, "payload:\n  %s\n", j.Payload)
				fmt.Fprintf(out, "log (%d lines):\n", len(logs))
				for _, l := range logs {
					fmt.Fprintf(out, "  %s  %s\n", l.At.UTC().Format(time.RFC3339Nano), strings.ReplaceAll(l.Line, "\n", "\n    "))
				}
				return nil
			})
		},
	}
}

func newJobsTransitionCmd(g *globalFlags, asJSON *bool, name, short, long string,
	op func(*engine.Engine, context.Context, int64) (*jobs.Job, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Long:  short + ".\n\n" + long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			return withEngine(cmd, g, func(ctx context.Context, e *engine.Engine, st store.Store) error {
				j, err := op(e, ctx, id)
				if err != nil {
					return jobError(id, err)
				}
				if err := cliAudit(ctx, cmd, st, store.AuditEntry{Action: "job." + name, Target: fmt.Sprintf("job %d", id),
					Count: 1, Detail: fmt.Sprintf(`{"ids":[%d],"state":%q}`, id, j.State)}); err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), j)
				}
				note := ""
				if name == "cancel" && j.State == jobs.StateRunning {
					note = " (cancel requested; it stops at its next heartbeat)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "job %d is %s%s\n", j.ID, j.State, note)
				return nil
			})
		},
	}
}

func newJobsPurgeCmd(g *globalFlags, asJSON *bool) *cobra.Command {
	var state string
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete finished jobs older than a given age",
		Long: `Delete jobs in a finished state (completed, failed or cancelled) that
finished more than --older-than ago, with their logs. Dedupe keys are kept.`,
		Example: `  backlot jobs purge --state failed --older-than 72h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fst, err := parseState(state, true)
			if err != nil {
				return err
			}
			if olderThan < 0 {
				return &exitError{Code: 2, Err: fmt.Errorf("--older-than %s: must not be negative", olderThan)}
			}
			return withEngine(cmd, g, func(ctx context.Context, e *engine.Engine, db store.Store) error {
				n, err := e.Purge(ctx, fst, olderThan)
				if err != nil {
					return err
				}
				if err := cliAudit(ctx, cmd, db, store.AuditEntry{Action: store.AuditJobPurge,
					Target: fmt.Sprintf("state=%s older_than=%s", fst, olderThan), Count: n,
					Detail: fmt.Sprintf(`{"state":%q,"older_than":%q}`, fst, olderThan)}); err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), map[string]int64{"deleted": n})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %d %s jobs\n", n, fst)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "completed, failed or cancelled (required)")
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "minimum age since the job finished, e.g. 24h (required)")
	_ = cmd.MarkFlagRequired("state")
	_ = cmd.MarkFlagRequired("older-than")
	return cmd
}
