package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/backlothq/backlot"
	"github.com/spf13/cobra"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run backlot: load the configuration, open the store (applying pending
migrations unless --migrate=false), start the job workers and serve HTTP
until SIGINT or SIGTERM, then shut down gracefully.`,
		Example: `  backlot serve --config examples/quickstart/backlot.yaml
  BACKLOT_STORE_URL=postgres://user:pass@db:5432/backlot backlot serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, flushLog, err := newServerLogger(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer flushLog()
			app, err := backlot.New(backlot.WithConfigFile(g.configPath), backlot.WithLogger(log), backlot.WithMigrate(migrate))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return app.Run(ctx)
		},
	}
	cmd.Flags().BoolVar(&migrate, "migrate", true, "apply pending database migrations at start (false: refuse to run on an old schema)")
	return cmd
}
