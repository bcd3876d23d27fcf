package main

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/backlothq/backlot/internal/authn"
)

// apiKeyIDRE is what an API key id may be: it names the caller in logs and
// is printed unquoted into a YAML flow mapping, so nothing YAML would read
// as syntax.
var apiKeyIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// newAPIKeyCmd is "backlot apikey": keys for api_key authenticators.
func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Make keys for api_key authenticators",
		Args:  cobra.NoArgs,
	}
	var id string
	gen := &cobra.Command{
		Use:   "new",
		Short: "Print a new API key and its configuration line",
		Long: "Generate an API key (\"" + authn.APIKeyPrefix + "\" and 32 random bytes, base64url) and print it on the\n" +
			"first line, then the line to add under keys: of an api_key authenticator,\n" +
			"which holds only the key's SHA-256. The key is shown this once: hand it to\n" +
			"the caller (its secret store), it cannot be recovered from the configuration.\n" +
			"The prefix lets backlot recognise its keys: a mistyped one is refused and is\n" +
			"never sent on to the marketplace.",
		Example: "  backlot apikey new --id nightly-close-listings",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !apiKeyIDRE.MatchString(id) {
				return &exitError{Code: 2, Err: fmt.Errorf("--id is required: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")}
			}
			key, sum, err := authn.NewAPIKeySecret()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, key)
			fmt.Fprintf(out, "{ id: %s, sha256: %q }\n", id, sum)
			return nil
		},
	}
	gen.Flags().StringVar(&id, "id", "", "the key's id: the subject of callers using it (required)")
	cmd.AddCommand(gen)
	return cmd
}
