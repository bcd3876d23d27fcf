package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
	"github.com/spf13/cobra"
)

func newMigrateCmd(g *globalFlags) *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Long: `Apply the migrations embedded in this binary to the store named by
store.url (or BACKLOT_STORE_URL). Safe to run while other instances run:
PostgreSQL migrations take a lock.`,
		Example: `  backlot migrate --config backlot.yaml
  backlot migrate --status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			out := cmd.OutOrStdout()
			if status {
				st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: false})
				if errors.Is(err, store.ErrSchemaBehind) {
					fmt.Fprintf(out, "schema is behind this binary: %v\n", err)
					return &exitError{Code: 3, Err: errors.New("migrations pending (run `backlot migrate`)")}
				}
				if err != nil {
					return err
				}
				defer st.Close()
				s, err := st.SchemaStatus(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s schema current (version %d)\n", st.Backend(), s.Current)
				return nil
			}
			st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: true})
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := st.SchemaStatus(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s schema migrated to version %d\n", st.Backend(), s.Current)
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "report whether migrations are pending (exit 3 if so) without applying them")
	return cmd
}
