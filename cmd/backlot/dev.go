package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backlothq/backlot/internal/devenv"
	"github.com/backlothq/backlot/internal/devenv/devapp"
	"github.com/spf13/cobra"
)

// newDevCmd is `backlot dev`: backlot and every simulator, configured,
// seeded and running, from one command.
func newDevCmd(g *globalFlags) *cobra.Command {
	var o devenv.Options
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run backlot with every simulator and a demo page, no configuration needed",
		Long: `Run a complete development environment on loopback: backlot on an
embedded SQLite file, and simulators of the marketplace, an OAuth server, an
ID-verification vendor, a payments API with its partner middleware, and a
token issuer, each seeded with demo data. The admin console is on, and the
marketplace's events are polled into jobs. backlot listens on --port and the
simulators on the six ports after it. A demo page walks through every
recipe in a browser.

The data and the secrets live in --dir (created owner-only). The secrets are
generated once and kept, so tokens, sessions, stored connections and webhook
signatures survive a restart. --reset starts with empty data and the same
secrets; --reset-secrets starts with new secrets too. --config is ignored:
the configuration is generated.`,
		Example: `  backlot dev
  backlot dev --port 9000
  backlot dev --reset`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, flushLog, err := newServerLogger(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer flushLog()
			o.Logger = log
			devapp.Wire(&o)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			env, err := devenv.Start(ctx, o)
			if err != nil {
				return err
			}
			if err := env.PrintSummary(cmd.OutOrStdout()); err != nil {
				env.Close(context.Background())
				return err
			}
			select {
			case <-ctx.Done():
			case <-env.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := env.Close(sctx); err != nil {
				return err
			}
			if err := env.Err(); err != nil && ctx.Err() == nil {
				return fmt.Errorf("backlot stopped: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", devenv.DirDefault, "development directory for the SQLite file and the secrets")
	f.IntVar(&o.Port, "port", devenv.PortDefault, "backlot's port; the simulators use the next six (0: any free ports)")
	f.BoolVar(&o.Reset, "reset", false, "delete the stored data first (the secrets are kept)")
	f.BoolVar(&o.ResetSecrets, "reset-secrets", false, "generate new secrets first (implies --reset)")
	return cmd
}
