package backlot

import (
	"fmt"

	"github.com/backlothq/backlot/internal/audit"
	"github.com/backlothq/backlot/internal/console"
)

// buildConsole mounts the admin console at console.path when console.auth
// names authenticators, and prepares the audit log's retention janitor.
func (a *App) buildConsole() error {
	a.auditJanitor = audit.NewJanitor(audit.JanitorConfig{
		Store: a.store, Retention: a.cfg.Audit.Retention.D(), Logger: a.log,
	})
	if len(a.cfg.Console.Auth) == 0 {
		return nil
	}
	con, err := console.New(console.Config{
		Console:    a.cfg.Console,
		Store:      a.store,
		Engine:     a.engine,
		Auth:       a.auth,
		Webhooks:   a.cfg.Webhooks,
		Gatherer:   a.reg,
		CurrentKey: a.keys.Current(),
		KeyIDs:     a.keys.IDs(),
		Logger:     a.log,
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	con.Register(a.mux)
	return nil
}
