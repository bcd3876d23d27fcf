// Package events polls a Sharetribe marketplace's events into jobs: the
// leader among the instances on one store reads events/query from the
// stored sequence id, enqueues one job per event (deduped by sequence id)
// and advances the checkpoint in the same transaction, so a crash at any
// point loses no event and commits none twice. It polls every Poll while
// idle and again after FullPageDelay when a page came back full, waits out
// a 429's Retry-After, and warns (log and the
// backlot_marketplace_events_lag_seconds gauge) when the checkpoint falls
// behind Sharetribe's event retention instead of silently skipping.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// Defaults of Config and Deps.
const (
	PollDefault          = 10 * time.Second
	FullPageDelayDefault = 250 * time.Millisecond
	LeaderRetryDefault   = 5 * time.Second
	// RetentionDevTest and RetentionLive are how long Sharetribe keeps
	// events.
	RetentionDevTest = 7 * 24 * time.Hour
	RetentionLive    = 90 * 24 * time.Hour
	// confirmEvery bounds how often an idle poller records that it is
	// caught up (one small write), which keeps a quiet marketplace from
	// looking behind after a restart.
	confirmEvery = time.Minute
)

// Config is one marketplace's event polling.
type Config struct {
	// Marketplace is the configured name; it names the checkpoint, the
	// leader lock ("marketplace-events:<name>"), dedupe keys and metrics.
	Marketplace string
	// Types are the event types wanted ("listing/updated"); empty means
	// every type.
	Types []string
	// Job is the kind of the job each event becomes. Required.
	Job string
	// Poll is the wait between polls while idle. Default PollDefault.
	Poll time.Duration
	// StartBeginning starts a marketplace's first poll at the oldest
	// retained event instead of now.
	StartBeginning bool
	// Retention is how long the marketplace keeps events; a checkpoint
	// older than that may have missed some. Default RetentionDevTest.
	Retention time.Duration
}

// Source reads events: *sharetribe.Client.
type Source interface {
	QueryEvents(ctx context.Context, q sharetribe.EventsQuery) (*sharetribe.Page[sharetribe.Event], error)
}

// Store is what the poller needs of store.Store.
type Store interface {
	RunTx(ctx context.Context, fn func(store.Tx) error) error
	store.LeaderStore
	store.EventCheckpointStore
}

// EnqueueTxFunc enqueues a job inside a transaction (engine.EnqueueTx).
type EnqueueTxFunc func(ctx context.Context, tx store.Tx, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error)

// Deps are the poller's collaborators.
type Deps struct {
	Source  Source
	Store   Store
	Enqueue EnqueueTxFunc
	// WakeFunc, when set, is called with the job kind after a commit that
	// added jobs, so the engine fetches them without waiting for its poll.
	WakeFunc func(kind string)
	// Logger. Default: discard.
	Logger *slog.Logger
	// Metrics registers the lag gauge. Default: not registered.
	Metrics prometheus.Registerer
	// Now is the clock for lag. Default time.Now.
	Now func() time.Time
	// FullPageDelay is the wait after a full page. Default 250 ms.
	FullPageDelay time.Duration
	// LeaderRetry is how often a non-leader tries to lead. Default 5 s.
	LeaderRetry time.Duration
}

// Poller polls one marketplace's events. Start it, Stop it.
type Poller struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	lag  prometheus.Gauge

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	leading bool
	alarmed bool
}

// New returns a Poller for cfg.
func New(cfg Config, deps Deps) (*Poller, error) {
	if cfg.Marketplace == "" || cfg.Job == "" {
		return nil, errors.New("marketplace events: Marketplace and Job are required")
	}
	if deps.Source == nil || deps.Store == nil || deps.Enqueue == nil {
		return nil, errors.New("marketplace events: Source, Store and Enqueue are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = PollDefault
	}
	if cfg.Retention <= 0 {
		cfg.Retention = RetentionDevTest
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.FullPageDelay <= 0 {
		deps.FullPageDelay = FullPageDelayDefault
	}
	if deps.LeaderRetry <= 0 {
		deps.LeaderRetry = LeaderRetryDefault
	}
	p := &Poller{cfg: cfg, deps: deps, log: deps.Logger.With("marketplace", cfg.Marketplace)}
	lag, err := lagGauge(deps.Metrics)
	if err != nil {
		return nil, err
	}
	p.lag = lag.WithLabelValues(cfg.Marketplace)
	return p, nil
}

// lagGauge registers the gauge vector once per registry; pollers of other
// marketplaces share it.
func lagGauge(reg prometheus.Registerer) (*prometheus.GaugeVec, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backlot_marketplace_events_lag_seconds",
		Help: "How far the event checkpoint is behind: age of the last event handled while more are waiting, 0 when caught up.",
	}, []string{"marketplace"})
	if reg == nil {
		return g, nil
	}
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("marketplace events: register lag gauge: %w", err)
	}
	return g, nil
}

// Start begins trying to lead and, while leading, polling. It returns at
// once.
func (p *Poller) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("marketplace events: already started")
	}
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go p.run(ctx)
	return nil
}

// Stop ends polling and waits for the current poll (its commit included)
// to finish, or for ctx.
func (p *Poller) Stop(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("marketplace events %s: stop: %w", p.cfg.Marketplace, ctx.Err())
	}
}

// Leading reports whether this instance polls now.
func (p *Poller) Leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leading
}

func (p *Poller) setLeading(v bool) {
	p.mu.Lock()
	p.leading = v
	p.mu.Unlock()
}

func (p *Poller) run(ctx context.Context) {
	defer close(p.done)
	name := "marketplace-events:" + p.cfg.Marketplace
	for ctx.Err() == nil {
		l, ok, err := p.deps.Store.TryLead(ctx, name)
		if err != nil && ctx.Err() == nil {
			p.log.Error("marketplace events: try to lead", "err", err)
		}
		if ok {
			p.setLeading(true)
			p.log.Info("marketplace events: polling")
			p.lead(ctx, l.Lost())
			p.setLeading(false)
			_ = l.Release()
		}
		if !wait(ctx, nil, p.deps.LeaderRetry) {
			return
		}
	}
}

// lead polls until ctx ends or leadership is lost.
func (p *Poller) lead(ctx context.Context, lost <-chan struct{}) {
	var delay time.Duration
	for {
		if !wait(ctx, lost, delay) {
			if ctx.Err() == nil {
				p.log.Warn("marketplace events: leadership lost")
			}
			return
		}
		d, err := p.PollOnce(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("marketplace events: poll failed", "err", err, "retry_in", d.String())
		}
		delay = d
	}
}

// wait sleeps d; false if ctx ended or lost closed first.
func wait(ctx context.Context, lost <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-lost:
		return false
	case <-t.C:
		return true
	}
}

// PollOnce reads one page of events after the checkpoint, enqueues their
// jobs and advances the checkpoint in one transaction, and returns how
// long to wait before the next poll. Run only by the leader (Start does
// that); tests call it directly.
func (p *Poller) PollOnce(ctx context.Context) (time.Duration, error) {
	now := p.deps.Now()
	cp, err := p.deps.Store.EventCheckpoint(ctx, p.cfg.Marketplace)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cp = store.EventCheckpoint{Marketplace: p.cfg.Marketplace, UpdatedAt: now}
		if !p.cfg.StartBeginning {
			// Record where "now" was, so a restart before the first event
			// still asks for everything since the first start.
			cp.StartAt = now.Truncate(time.Millisecond)
			if err := p.deps.Store.RunTx(ctx, func(tx store.Tx) error {
				return p.deps.Store.PutEventCheckpointTx(ctx, tx, cp)
			}); err != nil {
				return p.cfg.Poll, fmt.Errorf("record the starting point: %w", err)
			}
			p.log.Info("marketplace events: first poll, starting at now", "start_at", now)
		} else {
			p.log.Info("marketplace events: first poll, starting at the oldest retained event")
		}
	case err != nil:
		return p.cfg.Poll, err
	}
	p.checkRetention(cp, now)

	q := sharetribe.EventsQuery{EventTypes: p.cfg.Types}
	switch {
	case cp.HasSequence:
		seq := cp.SequenceID
		q.StartAfterSequenceID = &seq
	case !cp.StartAt.IsZero():
		q.CreatedAtStart = cp.StartAt
	}
	page, err := p.deps.Source.QueryEvents(ctx, q)
	if err != nil {
		var apiErr *sharetribe.APIError
		if errors.As(err, &apiErr) {
			switch {
			case apiErr.Status == http.StatusTooManyRequests:
				return max(apiErr.RetryAfter, time.Second), err
			case apiErr.Status == http.StatusBadRequest && (cp.HasSequence || !cp.StartAt.IsZero()):
				// The marketplace refuses where we stand (a sequence id
				// or start time it no longer knows): events may be lost.
				// Say so and stay, rather than skip ahead.
				p.alarm(now.Sub(cp.UpdatedAt), "the marketplace refused the event checkpoint: "+apiErr.Error())
			}
		}
		return p.cfg.Poll, fmt.Errorf("query events: %w", err)
	}

	full := page.Full()
	if len(page.Data) == 0 {
		p.lag.Set(0)
		p.clearAlarm()
		if now.Sub(cp.UpdatedAt) >= confirmEvery {
			cp.UpdatedAt = now
			if err := p.deps.Store.RunTx(ctx, func(tx store.Tx) error {
				return p.deps.Store.PutEventCheckpointTx(ctx, tx, cp)
			}); err != nil {
				return p.cfg.Poll, fmt.Errorf("confirm the checkpoint: %w", err)
			}
		}
		return p.cfg.Poll, nil
	}

	last := page.Data[len(page.Data)-1].Attributes
	next := cp
	next.SequenceID, next.HasSequence, next.EventAt = last.SequenceID, true, last.CreatedAt.UTC()
	next.UpdatedAt = now
	if full {
		// More are waiting: we are known complete only through this event.
		next.UpdatedAt = next.EventAt
	}
	added := 0
	err = p.deps.Store.RunTx(ctx, func(tx store.Tx) error {
		added = 0
		for i := range page.Data {
			ev := &page.Data[i]
			payload, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encode event %d: %w", ev.Attributes.SequenceID, err)
			}
			res, err := p.deps.Enqueue(ctx, tx, p.cfg.Job, payload, &jobs.EnqueueOpts{DedupeKey: DedupeKey(p.cfg.Marketplace, ev.Attributes.SequenceID)})
			if err != nil {
				return fmt.Errorf("enqueue event %d: %w", ev.Attributes.SequenceID, err)
			}
			if !res.Duplicate {
				added++
			}
		}
		return p.deps.Store.PutEventCheckpointTx(ctx, tx, next)
	})
	if err != nil {
		return p.cfg.Poll, fmt.Errorf("commit %d events: %w", len(page.Data), err)
	}
	if added > 0 && p.deps.WakeFunc != nil {
		p.deps.WakeFunc(p.cfg.Job)
	}
	p.log.Debug("marketplace events: committed", "events", len(page.Data), "jobs", added, "sequence_id", next.SequenceID)
	if full {
		p.lag.Set(max(now.Sub(next.EventAt), 0).Seconds())
		return p.deps.FullPageDelay, nil
	}
	p.lag.Set(0)
	p.clearAlarm()
	return p.cfg.Poll, nil
}

// DedupeKey is the dedupe key of an event's job.
func DedupeKey(marketplace string, seq int64) string {
	return "marketplace:" + marketplace + ":event:" + strconv.FormatInt(seq, 10)
}

// checkRetention raises the alarm when the checkpoint is known complete
// only through a time the marketplace no longer keeps events for.
func (p *Poller) checkRetention(cp store.EventCheckpoint, now time.Time) {
	if cp.UpdatedAt.IsZero() {
		return
	}
	if behind := now.Sub(cp.UpdatedAt); behind > p.cfg.Retention {
		p.alarm(behind, fmt.Sprintf("the event checkpoint is %s old, beyond the marketplace's %s event retention: events in between may be lost",
			behind.Round(time.Second), p.cfg.Retention))
	}
}

func (p *Poller) alarm(behind time.Duration, msg string) {
	p.lag.Set(max(behind, 0).Seconds())
	p.mu.Lock()
	first := !p.alarmed
	p.alarmed = true
	p.mu.Unlock()
	if first {
		p.log.Warn("marketplace events: "+msg, "lag_seconds", int64(behind.Seconds()))
	}
}

func (p *Poller) clearAlarm() {
	p.mu.Lock()
	p.alarmed = false
	p.mu.Unlock()
}
