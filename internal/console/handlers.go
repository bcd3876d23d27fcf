package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/audit"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// states in the order the console shows them.
var states = []jobs.State{jobs.StateAvailable, jobs.StateScheduled, jobs.StateRunning, jobs.StateRetrying,
	jobs.StateFailed, jobs.StateCancelled, jobs.StateCompleted}

// filter is a job filter as the query string carries it.
type filter struct {
	State jobs.State
	Kind  string
	Queue string
}

func (f filter) store() store.ConsoleJobFilter {
	return store.ConsoleJobFilter{State: f.State, Kind: f.Kind, Queue: f.Queue}
}

// Query is the filter as URL query values (for links and forms).
func (f filter) Query() url.Values {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Queue != "" {
		q.Set("queue", f.Queue)
	}
	return q
}

// String describes the filter in the audit log.
func (f filter) String() string {
	var parts []string
	for _, kv := range [][2]string{{"state", string(f.State)}, {"kind", f.Kind}, {"queue", f.Queue}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "all jobs"
	}
	return strings.Join(parts, " ")
}

// parseFilter reads state, kind and queue from v (a query or a form).
func parseFilter(v url.Values) (filter, *httpapi.Error) {
	f := filter{Kind: strings.TrimSpace(v.Get("kind")), Queue: strings.TrimSpace(v.Get("queue"))}
	if s := v.Get("state"); s != "" {
		ok := false
		for _, st := range states {
			if string(st) == s {
				f.State, ok = st, true
			}
		}
		if !ok {
			return f, httpapi.BadRequest("invalid_request", "state %q is not a job state", s)
		}
	}
	if len(f.Kind) > 200 || len(f.Queue) > 200 {
		return f, httpapi.BadRequest("invalid_request", "kind and queue are at most 200 bytes")
	}
	return f, nil
}

func parseID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// stateCount is one tab of the jobs page.
type stateCount struct {
	State jobs.State
	Count int64
}

func (c *Console) handleJobs(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	f, herr := parseFilter(r.URL.Query())
	if herr != nil {
		httpapi.WriteError(w, r, herr)
		return
	}
	sf := f.store()
	if b := r.URL.Query().Get("before"); b != "" {
		id, ok := parseID(b)
		if !ok {
			httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "before must be a job id"))
			return
		}
		sf.BeforeID = id
	}
	list, err := c.cfg.Store.ListJobSummaries(ctx, sf)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	// Counts per state for the current kind and queue, and for the whole
	// filter; each stops at the cap.
	var counts []stateCount
	for _, st := range states {
		cf := f.store()
		cf.State = st
		n, err := c.cfg.Store.CountJobsCapped(ctx, cf, store.CountCap)
		if err != nil {
			httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
			return
		}
		counts = append(counts, stateCount{st, n})
	}
	total, err := c.cfg.Store.CountJobsCapped(ctx, f.store(), store.CountCap)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	kinds, err := c.cfg.Store.JobKinds(ctx, 200)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	next := ""
	if len(list) == sf.WithDefaults().Limit {
		q := f.Query()
		q.Set("before", strconv.FormatInt(list[len(list)-1].ID, 10))
		next = q.Encode()
	}
	c.render(w, r, "jobs", v, map[string]any{
		"Filter": f, "Jobs": list, "Counts": counts, "Total": total, "Kinds": kinds, "Next": next,
		"Paged": sf.BeforeID > 0, "States": states,
	}, http.StatusOK)
}

func (c *Console) handleJob(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "job id must be a positive integer"))
		return
	}
	j, err := c.cfg.Store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, r, httpapi.E(http.StatusNotFound, "not_found", fmt.Sprintf("no job %d", id)))
		return
	}
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	logs, err := c.cfg.Store.JobLogs(ctx, id)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	c.render(w, r, "job", v, map[string]any{
		"Job": j, "Payload": prettyJSON(j.Payload), "Logs": logs,
		"CanRetry":     j.State == jobs.StateFailed || j.State == jobs.StateCancelled || j.State == jobs.StateRetrying || j.State == jobs.StateScheduled,
		"CanCancel":    j.State != jobs.StateCompleted && j.State != jobs.StateFailed && j.State != jobs.StateCancelled,
		"ErrorCurrent": j.State == jobs.StateRetrying || j.State == jobs.StateFailed || j.State == jobs.StateCancelled,
		"Done":         r.URL.Query().Get("done"),
	}, http.StatusOK)
}

// handleJobAction is POST jobs/{id}/retry and jobs/{id}/cancel.
func (c *Console) handleJobAction(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "job id must be a positive integer"))
		return
	}
	retry := strings.HasSuffix(r.URL.Path, "/retry")
	op, action := c.cfg.Engine.Cancel, store.AuditJobCancel
	if retry {
		op, action = c.cfg.Engine.Retry, store.AuditJobRetry
	}
	j, err := op(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpapi.WriteError(w, r, httpapi.E(http.StatusNotFound, "not_found", fmt.Sprintf("no job %d", id)))
		return
	case errors.Is(err, store.ErrJobState):
		httpapi.WriteError(w, r, httpapi.E(http.StatusConflict, "job_state", fmt.Sprintf("job %d: %v", id, err)))
		return
	case err != nil:
		httpapi.WriteError(w, r, fmt.Errorf("console: %s job %d: %w", action, id, err))
		return
	}
	detail, _ := json.Marshal(map[string]any{"ids": []int64{id}, "state": j.State})
	if err := c.audit(r, v, action, fmt.Sprintf("job %d", id), 1, detail); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%sjobs/%d?done=%s", c.path, id, url.QueryEscape(action)), http.StatusSeeOther)
}

// handleBulkConfirm is the dry run: how many jobs the filter matches, and
// a form that acts on at most BulkMax of them.
func (c *Console) handleBulkConfirm(w http.ResponseWriter, r *http.Request, v viewer) {
	q := r.URL.Query()
	f, herr := parseFilter(q)
	if herr != nil {
		httpapi.WriteError(w, r, herr)
		return
	}
	action := q.Get("action")
	if action != "retry" && action != "cancel" {
		httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "action must be retry or cancel"))
		return
	}
	n, err := c.cfg.Store.CountJobsCapped(r.Context(), f.store(), BulkMax)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	c.render(w, r, "bulk", v, map[string]any{
		"Filter": f, "Action": action, "Count": min(n, BulkMax), "More": n > BulkMax, "Max": BulkMax,
	}, http.StatusOK)
}

// handleBulk retries or cancels up to BulkMax jobs matching the filter,
// newest first, and records one audit entry with their ids.
func (c *Console) handleBulk(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "cannot read the form"))
		return
	}
	f, herr := parseFilter(r.PostForm)
	if herr != nil {
		httpapi.WriteError(w, r, herr)
		return
	}
	action := r.PostForm.Get("action")
	op, auditAction := c.cfg.Engine.Retry, store.AuditJobBulkRetry
	switch action {
	case "retry":
	case "cancel":
		op, auditAction = c.cfg.Engine.Cancel, store.AuditJobBulkCancel
	default:
		httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "action must be retry or cancel"))
		return
	}
	sf := f.store()
	sf.Limit, sf.PayloadMax = BulkMax, 1
	list, err := c.cfg.Store.ListJobSummaries(ctx, sf)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	var done, skipped []int64
	for _, j := range list {
		_, err := op(ctx, j.ID)
		switch {
		case err == nil:
			done = append(done, j.ID)
		case errors.Is(err, store.ErrJobState), errors.Is(err, store.ErrNotFound):
			skipped = append(skipped, j.ID) // moved on since it was listed
		default:
			// Record what was done before the failure, then report it.
			c.bulkAudit(r, v, auditAction, f, done, skipped)
			httpapi.WriteError(w, r, fmt.Errorf("console: %s job %d: %w", action, j.ID, err))
			return
		}
	}
	if err := c.bulkAudit(r, v, auditAction, f, done, skipped); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	q := f.Query()
	q.Set("done", fmt.Sprintf("%s: %d changed, %d skipped", action, len(done), len(skipped)))
	http.Redirect(w, r, c.path+"jobs?"+q.Encode(), http.StatusSeeOther)
}

func (c *Console) bulkAudit(r *http.Request, v viewer, action string, f filter, done, skipped []int64) error {
	if done == nil {
		done = []int64{}
	}
	detail, _ := json.Marshal(map[string]any{"filter": f.Query(), "ids": done, "skipped": skipped, "max": BulkMax})
	return c.audit(r, v, action, f.String(), int64(len(done)), detail)
}

func (c *Console) audit(r *http.Request, v viewer, action, target string, n int64, detail []byte) error {
	addr := ""
	if ip := httpapi.ClientIP(r); ip.IsValid() {
		addr = ip.String()
	}
	_, err := c.cfg.Store.InsertAudit(r.Context(), store.AuditEntry{
		At: c.cfg.Now(), Actor: audit.Actor(v.Principal), Action: action, Target: target,
		Count: n, Detail: string(detail), Address: addr,
	})
	if err != nil {
		return fmt.Errorf("console: the change is made, but writing the audit log failed: %w", err)
	}
	return nil
}

// endpoint is one webhook endpoint as the webhooks page shows it.
type endpoint struct {
	Path, Job, Scheme, Dedupe string
	Outcomes                  []outcome
	Deliveries                []store.JobSummary
}

type outcome struct {
	Name  string
	Count int64
}

func (c *Console) handleWebhooks(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	counters := c.webhookCounters()
	var eps []endpoint
	for _, wh := range c.cfg.Webhooks {
		e := endpoint{Path: wh.Path, Job: wh.Job, Scheme: wh.Verify.Scheme, Dedupe: wh.Dedupe}
		if e.Dedupe == "" {
			e.Dedupe = config.DedupeDefault(wh.Verify.Scheme)
		}
		e.Outcomes = counters[wh.Path]
		f := store.ConsoleJobFilter{Kind: wh.Job, Limit: 10, PayloadMax: 200}
		if e.Dedupe != "none" {
			f.DedupePrefix = "webhook:" + wh.Path + ":"
		}
		list, err := c.cfg.Store.ListJobSummaries(ctx, f)
		if err != nil {
			httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
			return
		}
		e.Deliveries = list
		eps = append(eps, e)
	}
	c.render(w, r, "webhooks", v, map[string]any{"Endpoints": eps}, http.StatusOK)
}

// webhookCounters reads backlot_webhook_verifications_total by endpoint:
// this instance's outcomes since it started.
func (c *Console) webhookCounters() map[string][]outcome {
	out := map[string][]outcome{}
	if c.cfg.Gatherer == nil {
		return out
	}
	mfs, err := c.cfg.Gatherer.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "backlot_webhook_verifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			path, name := label(m, "endpoint"), label(m, "outcome")
			if n := int64(m.GetCounter().GetValue()); n > 0 {
				out[path] = append(out[path], outcome{name, n})
			}
		}
	}
	for _, o := range out {
		sort.Slice(o, func(i, j int) bool { return o[i].Name < o[j].Name })
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (c *Console) handleConnections(w http.ResponseWriter, r *http.Request, v viewer) {
	q := r.URL.Query()
	f := store.ConnectionFilter{Name: q.Get("name"), State: q.Get("state"), AfterScope: q.Get("after_scope"), AfterName: q.Get("after_name")}
	list, err := c.cfg.Store.ListConnectionSummaries(r.Context(), f)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	next := ""
	if len(list) == store.ConsolePageDefault {
		last := list[len(list)-1]
		nq := url.Values{"after_scope": {last.Scope}, "after_name": {last.Name}}
		if f.Name != "" {
			nq.Set("name", f.Name)
		}
		if f.State != "" {
			nq.Set("state", f.State)
		}
		next = nq.Encode()
	}
	c.render(w, r, "connections", v, map[string]any{"Connections": list, "Filter": f, "Next": next}, http.StatusOK)
}

func (c *Console) handleKeys(w http.ResponseWriter, r *http.Request, v viewer) {
	counts, err := c.cfg.Store.CountByKeyID(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	c.render(w, r, "keys", v, map[string]any{"Counts": counts, "Current": c.cfg.CurrentKey, "IDs": c.cfg.KeyIDs}, http.StatusOK)
}

func (c *Console) handleAudit(w http.ResponseWriter, r *http.Request, v viewer) {
	q := r.URL.Query()
	f := store.AuditFilter{Action: q.Get("action"), Actor: q.Get("actor"), Limit: store.ConsolePageDefault}
	if b := q.Get("before"); b != "" {
		id, ok := parseID(b)
		if !ok {
			httpapi.WriteError(w, r, httpapi.BadRequest("invalid_request", "before must be an entry id"))
			return
		}
		f.BeforeID = id
	}
	list, err := c.cfg.Store.ListAudit(r.Context(), f)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("console: %w", err))
		return
	}
	next := ""
	if len(list) == f.Limit {
		nq := url.Values{"before": {strconv.FormatInt(list[len(list)-1].ID, 10)}}
		if f.Action != "" {
			nq.Set("action", f.Action)
		}
		if f.Actor != "" {
			nq.Set("actor", f.Actor)
		}
		next = nq.Encode()
	}
	c.render(w, r, "audit", v, map[string]any{"Entries": list, "Filter": f, "Next": next}, http.StatusOK)
}

// Formatting helpers for the templates.

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtTimeP(t *time.Time) string {
	if t == nil {
		return "–"
	}
	return fmtTime(*t)
}

// fmtCount shows a capped count: "10,000+" beyond the cap.
func fmtCount(n int64) string {
	if n > store.CountCap {
		return commas(store.CountCap) + "+"
	}
	return commas(n)
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		cut, _ := store.CutPayload([]byte(s), n)
		s = string(cut) + "…"
	}
	return s
}

// query merges key=value pairs into the filter's query string.
func query(f filter, kv ...string) string {
	q := f.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q.Encode()
}

func shownProgress(j *jobs.Job) int {
	if j.State == jobs.StateCompleted {
		return 100
	}
	return j.Progress
}

// prettyJSON indents a payload for the detail page; html/template
// escapes it. A payload that is not JSON is shown as it is.
// json.Indent keeps key order and numbers exactly as stored.
func prettyJSON(p []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, p, "", "  "); err != nil {
		return string(p)
	}
	return b.String()
}
