// Package audit names who acts (console users, the command line, backlot
// itself) in the audit log the store keeps, and runs its retention: a
// janitor that deletes entries older than audit.retention.
package audit

import (
	"context"
	"log/slog"
	"os"
	"os/user"
	"sync"
	"time"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/store"
)

// Janitor defaults.
const (
	// IntervalDefault is how often the janitor deletes old entries.
	IntervalDefault = time.Hour
	// sliceSize bounds one delete, so the SQLite writer is not held long.
	sliceSize = 5000
)

// Actor is how the log names a principal: "<authenticator>:<subject>".
func Actor(p *auth.Principal) string {
	if p == nil {
		return "anonymous"
	}
	return p.Authenticator + ":" + p.Subject
}

// CLIActor is the actor of a command run from a shell: "cli:<os user>", or
// "cli" when the user cannot be told.
func CLIActor() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = os.Getenv("USER")
	}
	if name == "" {
		return store.AuditActorCLI
	}
	return store.AuditActorCLI + ":" + name
}

// JanitorConfig configures a Janitor.
type JanitorConfig struct {
	// Store holds the log. Required.
	Store store.AuditStore
	// Retention is how long entries are kept. Default
	// store.AuditRetentionDefault (a zero retention would empty the log).
	Retention time.Duration
	// Interval between runs. Default IntervalDefault.
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
}

// Janitor deletes audit entries older than their retention, at start and
// then every Interval. Every instance runs one: the deletes are idempotent.
type Janitor struct {
	cfg    JanitorConfig
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewJanitor fills in defaults.
func NewJanitor(cfg JanitorConfig) *Janitor {
	if cfg.Retention <= 0 {
		cfg.Retention = store.AuditRetentionDefault
	}
	if cfg.Interval <= 0 {
		cfg.Interval = IntervalDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Janitor{cfg: cfg}
}

// Start launches the loop; it ends when ctx ends or Stop is called.
func (j *Janitor) Start(ctx context.Context) error {
	ctx, j.cancel = context.WithCancel(context.WithoutCancel(ctx))
	j.done = make(chan struct{})
	go func() {
		defer close(j.done)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := j.Run(ctx); err != nil && ctx.Err() == nil {
				j.cfg.Logger.Error("audit janitor", "error", err.Error())
			}
			t.Reset(j.cfg.Interval)
		}
	}()
	return nil
}

// Stop ends the loop and waits for it (or for ctx).
func (j *Janitor) Stop(ctx context.Context) error {
	if j.cancel == nil {
		return nil
	}
	j.once.Do(j.cancel)
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run deletes, in slices, the entries older than the retention, and
// reports how many.
func (j *Janitor) Run(ctx context.Context) (int64, error) {
	before := j.cfg.Now().Add(-j.cfg.Retention)
	var total int64
	for {
		n, err := j.cfg.Store.DeleteAudit(ctx, before, sliceSize)
		total += n
		if err != nil {
			return total, err
		}
		if n < sliceSize {
			return total, nil
		}
	}
}
