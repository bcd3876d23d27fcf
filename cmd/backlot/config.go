package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/backlothq/backlot/config"
)

// newConfigCmd is "backlot config": inspect the configuration file.
func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration file",
		Args:  cobra.NoArgs,
		// Runnable, so that cobra checks Args: without RunE, "backlot
		// config frob" would print help and exit 0.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration without starting",
		Long: "Load the configuration (--config, default backlot.yaml) with its .env file and\n" +
			"BACKLOT_* overrides, and report every problem with its file line.\n" +
			"Exits 0 when valid, 2 when not.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath, os.LookupEnv)
			if err != nil {
				return err // *config.Error: main prints it to stderr and exits 2
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ok: %s\n", g.configPath)
			fmt.Fprintf(out, "store %s, %s, %s, %s\n",
				storeBackend(cfg.Store.URL),
				plural(len(cfg.Authenticators), "authenticator"),
				plural(len(cfg.Webhooks), "webhook"),
				plural(len(cfg.Schedules), "schedule"))
			return nil
		},
	})
	return cmd
}

// storeBackend names the database without echoing the URL (it may hold a password).
func storeBackend(url string) string {
	scheme, _, _ := strings.Cut(url, "://")
	if scheme == "postgresql" {
		return "postgres"
	}
	return scheme
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
