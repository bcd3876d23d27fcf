// Package jobs is backlot's job engine (SPEC 5.5) over a store.JobStore,
// the same on SQLite and PostgreSQL.
//
// Enqueue group-commits: concurrent callers share one transaction, made by
// a committer goroutine that takes whatever is queued (up to
// MaxEnqueueBatch) with no artificial delay; while one commit is in flight
// the next batch gathers. Each caller returns once its job is committed, or
// with the error of its batch. Inputs the database could refuse (invalid
// UTF-8, NUL, overlong keys) are rejected before they join a batch, so one
// bad caller cannot fail the others. EnqueueTx enqueues inside the caller's
// own transaction instead.
//
// Dedupe keys live in their own table with their own retention
// (Deps.DedupeRetention, 7 days), so a key is remembered after its job is
// deleted; a repeat returns the first job's id with Duplicate set.
//
// Per-queue fetchers claim up to their free worker slots (SKIP LOCKED on
// PostgreSQL). They are woken in-process when an enqueue commits, by
// LISTEN/NOTIFY on PostgreSQL (other instances, `backlot jobs retry`), and
// otherwise poll every Deps.PollInterval (1 s) for scheduled and retrying
// jobs coming due and for lapsed leases: an idle engine makes one indexed
// query per queue per second. Only kinds with a registered worker are
// claimed; a job of an unknown kind waits, available, for an instance that
// knows it.
//
// A due job of a kind this engine runs, in a queue with no jobs waiting
// before it, is inserted already claimed when a worker slot is free, and
// started once its insert commits: no claim, no second write of its row,
// no NOTIFY.
//
// On a store with one writer (store.JobBatchWriter: SQLite) one writer
// goroutine does the committer's and the updater's work: each transaction
// holds a group commit's inserts, the outcomes of finished runs and the
// claims of queues with waiting jobs, and a due job this engine runs is
// inserted already claimed when a worker slot is free (held back one batch
// when its queue's slots are about to come free), so a job costs one
// commit and a share of another instead of three. Its fetchers then claim
// only what the writer does not (jobs coming due, lapsed leases, the
// backlog once the writer is idle).
//
// A claimed job holds a lease (jobs.lease, 10 s) renewed for all running
// jobs of the engine in one write every lease/3. A job whose worker died is
// claimed again once its lease lapses (attempt+1); if that was its last
// attempt the janitor marks it failed instead. Every write ending a run is
// fenced by (id, attempt), so a worker that lost its lease cannot overwrite
// the newer run.
//
// A handler's error retries the job with exponential backoff and jitter
// (base·2^(attempt-1), capped, ±BackoffJitter) or, for jobs.RetryAfter, at
// the time asked; after max_attempts the job is failed (the dead letter).
// A panic is a failure whose error carries a short stack. Each kind has a
// timeout (jobs.kinds.<kind>.timeout, else jobs.timeout) applied as a
// context deadline: handlers must honour ctx, the engine does not abandon
// a goroutine. Outcomes, log lines (jobs.Logf) and progress
// (jobs.SetProgress) are written in batches by one updater goroutine.
//
// A janitor deletes completed jobs after retention.completed and failed or
// cancelled ones after retention.failed (by finished_at), and expired
// dedupe keys, every Deps.JanitorInterval on every instance (deletes are
// idempotent). Cron schedules fire on the leader only (a PostgreSQL
// advisory lock; the one process on SQLite), each tick with the dedupe key
// schedule:<name>:<tick unix> so it fires at most once.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// Engine settings that are not configuration. The defaults of the `jobs:`
// configuration live in package config (QueueDefault, …) and are filled by
// withDefaults below for a config.Jobs built without config.Prepare.
const (
	DedupeRetentionDefault = 7 * 24 * time.Hour
	PollIntervalDefault    = time.Second
	JanitorIntervalDefault = time.Minute
	DepthIntervalDefault   = 10 * time.Second
	LeaderRetryDefault     = 5 * time.Second
	// storeWriteTimeout bounds one background write (a group commit, a
	// batch of outcomes) that no caller's context limits.
	storeWriteTimeout = 30 * time.Second
	// MaxEnqueueBatch bounds one group commit.
	MaxEnqueueBatch = 512
	// pgCommitters is the number of group committers on PostgreSQL.
	pgCommitters = 1
	// maxClaim bounds one claim, whatever the concurrency.
	maxClaim = 256
	// BackoffJitter is the ± fraction applied to each backoff delay.
	BackoffJitter = 0.2
	// leaderName is the LeaderStore lock of the scheduler.
	leaderName = "schedules"
	// maxErrorLen bounds last_error.
	maxErrorLen = 4000
)

// The enqueue errors are the public sentinels of package jobs, so a Go
// user matches them with errors.Is without importing the engine.
var (
	ErrUnknownQueue   = jobs.ErrUnknownQueue
	ErrInvalidPayload = jobs.ErrInvalidPayload
)

// Deps are the engine's collaborators. Zero fields get defaults.
type Deps struct {
	// Logger. Default: discard.
	Logger *slog.Logger
	// Metrics registers the engine's collectors. Default: not registered.
	Metrics prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// After waits on the clock (time.After's contract). Default time.After.
	After func(time.Duration) <-chan time.Time
	// PollInterval is how often an idle fetcher looks for jobs that came
	// due without a signal (scheduled and retrying jobs, lapsed leases,
	// SQLite writes by other processes). Default 1s.
	PollInterval time.Duration
	// JanitorInterval is how often retention runs. Default 1m.
	JanitorInterval time.Duration
	// DedupeRetention is how long a dedupe key is remembered, independent
	// of job retention. Default 7 days.
	DedupeRetention time.Duration
	// LeaderRetry is how often a non-leader tries to become the scheduler
	// leader. Default 5s.
	LeaderRetry time.Duration
}

// Engine runs jobs. Create it with New, Register workers, then Start; Stop
// when done. Get, List, Retry, Cancel, Purge and Logs work without Start
// (the CLI uses them so).
type Engine struct {
	cfg       config.Jobs
	schedules []schedule
	st        store.Store
	log       *slog.Logger
	now       func() time.Time
	deps      Deps
	m         *metrics

	mu      sync.RWMutex
	workers map[string]jobs.WorkFunc
	kinds   []string // sorted keys of workers

	// Enqueue sends to enq while committing is true (under mu.RLock);
	// Stop clears it and closes enq under mu.Lock.
	enq        chan *enqueueReq
	committing bool
	reqPool    sync.Pool

	queues map[string]*queue

	runMu   sync.Mutex
	running map[int64]*run

	updates chan update

	// bw is st when it can write a group commit and the run updates in
	// one transaction and insert jobs claimed (see writeLoop); nil if not.
	bw store.JobBatchWriter
	// insertClaimMu guards noInsertClaim, set by Stop: from then on no
	// job is claimed at insert (runWG is being waited on). Committers hold
	// it shared from their claims at insert until those jobs are started.
	insertClaimMu sync.RWMutex
	noInsertClaim bool
	// lastCommit is when writeLoop last committed (unix nanoseconds).
	lastCommit atomic.Int64

	started   atomic.Bool
	stopped   atomic.Bool
	leading   atomic.Bool
	cancelBg  context.CancelFunc
	fetchStop context.CancelFunc
	fetchWG   sync.WaitGroup
	runWG     sync.WaitGroup
	bgWG      sync.WaitGroup
	commitWG  sync.WaitGroup
	updWG     sync.WaitGroup
	updDone   chan struct{}
}

type schedule struct {
	cfg     config.Schedule
	sched   cron.Schedule
	payload []byte
}

// New checks cfg and schedules and returns an engine over st.
func New(cfg config.Jobs, schedules []config.Schedule, st store.Store, deps Deps) (*Engine, error) {
	cfg = withDefaults(cfg)
	for name, q := range cfg.Queues {
		if q.Concurrency < 0 {
			return nil, fmt.Errorf("jobs.queues.%s.concurrency: must not be negative", name)
		}
	}
	for kind, k := range cfg.Kinds {
		if k.Queue != "" {
			if _, ok := cfg.Queues[k.Queue]; !ok {
				return nil, fmt.Errorf("jobs.kinds.%s.queue: %w %q", kind, ErrUnknownQueue, k.Queue)
			}
		}
	}
	if cfg.Retry.Backoff != "" && cfg.Retry.Backoff != "exponential" {
		return nil, fmt.Errorf("jobs.retry.backoff: %q is not supported (want exponential)", cfg.Retry.Backoff)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.After == nil {
		deps.After = time.After
	}
	if deps.PollInterval <= 0 {
		deps.PollInterval = PollIntervalDefault
	}
	if deps.JanitorInterval <= 0 {
		deps.JanitorInterval = JanitorIntervalDefault
	}
	if deps.DedupeRetention <= 0 {
		deps.DedupeRetention = DedupeRetentionDefault
	}
	if deps.LeaderRetry <= 0 {
		deps.LeaderRetry = LeaderRetryDefault
	}
	e := &Engine{
		cfg:     cfg,
		st:      st,
		log:     deps.Logger,
		now:     deps.Now,
		deps:    deps,
		workers: map[string]jobs.WorkFunc{},
		queues:  map[string]*queue{},
		running: map[int64]*run{},
	}
	e.reqPool.New = func() any { return &enqueueReq{done: make(chan enqueueRes, 1)} }
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	seen := map[string]bool{}
	for i, s := range schedules {
		if s.Name == "" || s.Job == "" {
			return nil, fmt.Errorf("schedules[%d]: name and job are required", i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("schedules[%d]: duplicate name %q", i, s.Name)
		}
		seen[s.Name] = true
		sc, err := parser.Parse(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedules.%s.cron: %w", s.Name, err)
		}
		p := []byte(s.Payload)
		if len(p) == 0 {
			p = []byte("{}")
		}
		if !jsonValid(p) {
			return nil, fmt.Errorf("schedules.%s.payload: %w", s.Name, ErrInvalidPayload)
		}
		e.schedules = append(e.schedules, schedule{cfg: s, sched: sc, payload: p})
	}
	for name, q := range cfg.Queues {
		qu := &queue{name: name, conc: q.Concurrency, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
		qu.backlog.Store(true) // until a fetcher has looked
		e.queues[name] = qu
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	e.m = m
	return e, nil
}

func withDefaults(c config.Jobs) config.Jobs {
	if len(c.Queues) == 0 {
		c.Queues = map[string]config.Queue{config.QueueDefault: {Concurrency: config.ConcurrencyDefault}}
	} else {
		qs := make(map[string]config.Queue, len(c.Queues))
		for n, q := range c.Queues {
			if q.Concurrency == 0 {
				q.Concurrency = config.ConcurrencyDefault
			}
			qs[n] = q
		}
		c.Queues = qs
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = config.MaxAttemptsDefault
	}
	if c.Retry.Base <= 0 {
		c.Retry.Base = config.Duration(config.RetryBaseDefault)
	}
	if c.Retry.Max <= 0 {
		c.Retry.Max = config.Duration(config.RetryMaxDefault)
	}
	if c.Retention.Completed <= 0 {
		c.Retention.Completed = config.Duration(config.KeepCompletedDefault)
	}
	if c.Retention.Failed <= 0 {
		c.Retention.Failed = config.Duration(config.KeepFailedDefault)
	}
	if c.Timeout <= 0 {
		c.Timeout = config.Duration(config.JobTimeoutDefault)
	}
	if c.Lease <= 0 {
		c.Lease = config.Duration(config.LeaseDefault)
	}
	return c
}

// Register sets the worker of kind, replacing any earlier one. It may be
// called before or after Start; fetchers claim only registered kinds.
func (e *Engine) Register(kind string, fn jobs.WorkFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.workers[kind] = fn
	e.kinds = e.kinds[:0:0]
	for k := range e.workers {
		e.kinds = append(e.kinds, k)
	}
	sort.Strings(e.kinds)
}

func (e *Engine) worker(kind string) (jobs.WorkFunc, []string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.workers[kind], e.kinds
}

// Leading reports whether this engine currently fires the schedules.
func (e *Engine) Leading() bool { return e.leading.Load() }

// Start launches the committer, fetchers, heartbeat, updater, janitor and
// scheduler. They run until Stop.
func (e *Engine) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("start jobs engine: already started")
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancelBg = cancel
	fetchCtx, fetchStop := context.WithCancel(bg)
	e.fetchStop = fetchStop

	e.updates = make(chan update, 4096)
	e.updDone = make(chan struct{})
	e.updWG.Add(1)

	e.mu.Lock()
	e.enq = make(chan *enqueueReq, 4*MaxEnqueueBatch)
	e.committing = true
	e.mu.Unlock()
	e.bw, _ = e.st.(store.JobBatchWriter)
	if e.bw != nil {
		// One goroutine commits the enqueues and the run updates; it runs
		// updateLoop once enq is closed.
		e.commitWG.Add(1)
		go e.writeLoop()
	} else {
		go e.updateLoop()
		// One committer per writer: SQLite has exactly one; PostgreSQL
		// commits in parallel, so two committers overlap one batch's round
		// trips with the next (dedupe stays exact: keys are claimed with
		// ON CONFLICT).
		committers := 1
		if e.st.Backend() == store.BackendPostgres {
			committers = pgCommitters
		}
		for range committers {
			e.commitWG.Add(1)
			go e.commitLoop()
		}
	}

	for _, q := range e.queues {
		e.fetchWG.Add(1)
		go e.fetchLoop(fetchCtx, q)
	}
	e.bgWG.Add(5)
	go e.heartbeatLoop(bg)
	go e.janitorLoop(bg)
	go e.depthLoop(bg)
	go e.scheduleLoop(bg)
	go func() {
		defer e.bgWG.Done()
		_ = e.st.ListenJobs(bg, e.wake)
	}()
	return nil
}

// Stop shuts down gracefully: fetching stops at once; running jobs get
// until ctx's deadline to finish; those still running then are handed back
// (available again, the attempt not counted) so no other instance waits for
// their lease, and their contexts are cancelled. Pending enqueues and
// outcomes are committed before Stop returns. Enqueue keeps working after
// Stop, one transaction per call.
func (e *Engine) Stop(ctx context.Context) error {
	if !e.started.Load() || !e.stopped.CompareAndSwap(false, true) {
		return nil
	}
	e.fetchStop()
	e.fetchWG.Wait()
	e.insertClaimMu.Lock()
	e.noInsertClaim = true
	e.insertClaimMu.Unlock()

	done := make(chan struct{})
	go func() { e.runWG.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		e.runMu.Lock()
		refs := make([]store.JobRef, 0, len(e.running))
		for _, r := range e.running {
			r.released.Store(true)
			r.cancel(errStopping)
			refs = append(refs, store.JobRef{ID: r.job.ID, Attempt: r.job.Attempt})
		}
		e.runMu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := e.st.ReleaseJobs(rctx, e.now(), refs); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}

	e.mu.Lock()
	e.committing = false
	close(e.enq)
	e.mu.Unlock()
	e.commitWG.Wait()

	e.cancelBg()
	e.bgWG.Wait()
	close(e.updDone)
	e.updWG.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop jobs engine: %w", err)
	}
	return nil
}

// queueOf picks the queue of a kind: opts, then jobs.kinds.<kind>.queue,
// then "default".
func (e *Engine) queueOf(kind string, opts *jobs.EnqueueOpts) string {
	if opts != nil && opts.Queue != "" {
		return opts.Queue
	}
	if k, ok := e.cfg.Kinds[kind]; ok && k.Queue != "" {
		return k.Queue
	}
	return config.QueueDefault
}

func (e *Engine) timeoutOf(kind string) time.Duration {
	if k, ok := e.cfg.Kinds[kind]; ok && k.Timeout > 0 {
		return k.Timeout.D()
	}
	return e.cfg.Timeout.D()
}

// backoff is base·2^(attempt-1), capped at max, ± BackoffJitter.
func (e *Engine) backoff(attempt int) time.Duration {
	base, maxD := e.cfg.Retry.Base.D(), e.cfg.Retry.Max.D()
	d := base
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	j := 1 + BackoffJitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * j)
}

// WakeKind nudges the fetcher of kind's queue, after the caller committed
// a transaction that enqueued jobs of that kind with EnqueueTx (which, on
// SQLite, would otherwise wait for the next poll).
func (e *Engine) WakeKind(kind string) { e.wake(e.queueOf(kind, nil)) }

// wake nudges the fetcher of queue q ("" = every queue).
func (e *Engine) wake(q string) {
	if q == "" {
		for _, qu := range e.queues {
			qu.signal()
		}
		return
	}
	if qu, ok := e.queues[q]; ok {
		qu.signal()
	}
}

// Get returns one job (store.ErrNotFound if absent).
func (e *Engine) Get(ctx context.Context, id int64) (*jobs.Job, error) {
	return e.st.GetJob(ctx, id)
}

// List returns jobs matching f, newest first.
func (e *Engine) List(ctx context.Context, f store.JobFilter) ([]*jobs.Job, error) {
	return e.st.ListJobs(ctx, f)
}

// Logs returns a job's log lines.
func (e *Engine) Logs(ctx context.Context, id int64) ([]store.JobLogLine, error) {
	return e.st.JobLogs(ctx, id)
}

// Retry makes a failed, cancelled, retrying or scheduled job available now.
// Its attempt count is kept; a job that has used all its attempts gets
// exactly one more (max_attempts is raised by one).
func (e *Engine) Retry(ctx context.Context, id int64) (*jobs.Job, error) {
	j, err := e.st.RetryJob(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	e.wake(j.Queue)
	return j, nil
}

// Cancel cancels a job that is not running at once. A running job is asked
// to stop: if it runs in this engine its context is cancelled now (cause
// jobs.ErrCancelled), otherwise at its engine's next heartbeat; it ends
// cancelled unless it completes first. Completed and failed jobs cannot be
// cancelled (store.ErrJobState).
func (e *Engine) Cancel(ctx context.Context, id int64) (*jobs.Job, error) {
	j, err := e.st.CancelJob(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	if j.State == jobs.StateRunning {
		e.runMu.Lock()
		if r, ok := e.running[id]; ok {
			r.cancel(jobs.ErrCancelled)
		}
		e.runMu.Unlock()
	} else if j.State == jobs.StateCancelled {
		e.m.total.WithLabelValues(j.Kind, string(jobs.StateCancelled)).Inc()
	}
	return j, nil
}

// Purge deletes jobs in a finished state (completed, failed, cancelled)
// that finished more than olderThan ago, and reports how many.
func (e *Engine) Purge(ctx context.Context, state jobs.State, olderThan time.Duration) (int64, error) {
	return e.st.DeleteJobs(ctx, store.DeleteJobsParams{State: state, FinishedBefore: e.now().Add(-olderThan)})
}

// cleanText makes handler-supplied text (log lines, error messages) safe
// to store: at most n bytes, valid UTF-8, no NUL. PostgreSQL refuses the
// latter two, and a refused row would fail the whole update batch.
func cleanText(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
