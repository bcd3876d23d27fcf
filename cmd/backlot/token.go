package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
)

// newTokenCmd is "backlot token": tokens for hs256 authenticators.
func newTokenCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint tokens for hs256 authenticators",
		Args:  cobra.NoArgs,
	}
	var (
		authName, sub, tenant string
		scopes                []string
		ttl                   time.Duration
	)
	mint := &cobra.Command{
		Use:   "mint",
		Short: "Print a signed token for a subject",
		Long: "Sign a JWT with the secret of an hs256 authenticator from the configuration\n" +
			"(--config) and print it. The token carries the authenticator's issuer and\n" +
			"audience, sub, and optionally a tenant and scopes; it expires after --ttl\n" +
			"(default: the authenticator's ttl, 15m when unset). --authenticator may be\n" +
			"left out when the configuration has exactly one hs256 authenticator.",
		Example: "  backlot token mint --sub user-42 --tenant acme --scope orders:read,orders:write --ttl 1h\n" +
			"  curl -H \"Authorization: Bearer $(backlot token mint --authenticator users --sub ops)\" http://localhost:8080/auth/whoami",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sub == "" {
				return &exitError{Code: 2, Err: fmt.Errorf("--sub is required")}
			}
			if ttl < 0 {
				return &exitError{Code: 2, Err: fmt.Errorf("--ttl must be positive")}
			}
			cfg, err := config.Load(g.configPath, os.LookupEnv)
			if err != nil {
				return err
			}
			name, err := pickHS256(cfg.Authenticators, authName)
			if err != nil {
				return &exitError{Code: 2, Err: err}
			}
			a, err := authn.NewHS256(name, cfg.Authenticators[name], authn.Deps{})
			if err != nil {
				return &exitError{Code: 2, Err: fmt.Errorf("authenticator %s: %w", name, err)}
			}
			var clean []string
			for _, s := range scopes {
				if s = strings.TrimSpace(s); s != "" {
					clean = append(clean, s)
				}
			}
			tok, err := a.Mint(sub, tenant, clean, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := mint.Flags()
	f.StringVar(&authName, "authenticator", "", "name of the hs256 authenticator (optional when there is one)")
	f.StringVar(&sub, "sub", "", "subject (required)")
	f.StringVar(&tenant, "tenant", "", "tenant claim")
	f.StringSliceVar(&scopes, "scope", nil, "scopes, comma-separated (repeatable)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 15m or 24h (default: the authenticator's ttl)")
	cmd.AddCommand(mint)
	return cmd
}

// pickHS256 returns the named hs256 authenticator, or the only one.
func pickHS256(cfgs map[string]config.Authenticator, name string) (string, error) {
	var hs []string
	for n, c := range cfgs {
		if c.Type == config.AuthHS256 {
			hs = append(hs, n)
		}
	}
	slices.Sort(hs)
	if name != "" {
		c, ok := cfgs[name]
		if !ok {
			return "", fmt.Errorf("--authenticator %q is not configured (hs256 authenticators: %s)", name, listOrNone(hs))
		}
		if c.Type != config.AuthHS256 {
			return "", fmt.Errorf("--authenticator %q is of type %s; only hs256 tokens can be minted", name, c.Type)
		}
		return name, nil
	}
	switch len(hs) {
	case 0:
		return "", fmt.Errorf("no hs256 authenticator is configured")
	case 1:
		return hs[0], nil
	}
	return "", fmt.Errorf("several hs256 authenticators (%s): choose one with --authenticator", strings.Join(hs, ", "))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
