package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
)

// newKeysCmd is `backlot keys`: the keyring that encrypts what backlot
// stores (secrets, OAuth tokens).
func newKeysCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make, rotate and inspect the keys that encrypt stored secrets",
		Long: `backlot encrypts every secret it stores with the keys listed under keys:
the first key encrypts, every listed key decrypts, and each stored value
records which key sealed it.

To rotate: make a key with "keys new", list it first under keys (keep the
old ones after it), restart, run "keys rotate", check with "keys status"
that no rows remain under the old key, then remove it. backlot refuses to
start while rows are sealed under a key that is not listed.`,
		Example: `  backlot keys new --id k2
  backlot keys rotate --dry-run
  backlot keys rotate
  backlot keys status`,
	}
	cmd.AddCommand(newKeysNewCmd(), newKeysRotateCmd(g), newKeysStatusCmd(g))
	return cmd
}

// keyIDPattern keeps key ids easy to put in YAML and environment names.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func newKeysNewCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Print a fresh key and the configuration lines that use it",
		Long: `Print a new key (base64 of 32 random bytes) as an environment variable,
and the keys entry that reads it. Nothing is written: keep the key in the
environment or a .env file, not in the YAML file.`,
		Example: `  backlot keys new
  backlot keys new --id k2 >> .env`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" {
				id = "k" + time.Now().UTC().Format("20060102")
			}
			if !keyIDPattern.MatchString(id) {
				return &exitError{Code: 2, Err: fmt.Errorf("--id %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)}
			}
			key, err := secrets.NewKey()
			if err != nil {
				return err
			}
			env := "BACKLOT_KEY_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(id))
			fmt.Fprintf(cmd.OutOrStdout(), `# Keep the key in the environment (or .env), never in backlot.yaml:
%s=%s
# List it first under keys in backlot.yaml, the old keys after it:
#   keys:
#     - { id: %s, secret: "${%s}" }
# then restart and run: backlot keys rotate
`, env, key, id, env)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", `key id (default "k" and today's date, e.g. k20260301)`)
	return cmd
}

func newKeysRotateCmd(g *globalFlags) *cobra.Command {
	var (
		dryRun bool
		batch  int
		pause  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every stored secret under the first key",
		Long: `Re-encrypt every row not sealed under the first key in keys, in batches
(one transaction each; progress on stderr). Safe to interrupt: committed
batches stay done and running it again carries on with what is left.
Servers may keep running: a row they rewrite meanwhile is left as they
wrote it. Any failure stops the rotation with the batches before it
committed. --dry-run only counts.`,
		Example: `  backlot keys rotate --dry-run
  backlot keys rotate --batch 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch <= 0 {
				return &exitError{Code: 2, Err: fmt.Errorf("--batch %d: want a positive number", batch)}
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			keys, err := secrets.NewKeyring(cfg.Keys)
			if err != nil {
				return &exitError{Code: 2, Err: err}
			}
			if keys.Current() == "" {
				return &exitError{Code: 2, Err: errors.New("keys: no keys configured, nothing to rotate to (`backlot keys new` makes one)")}
			}
			ctx := cmd.Context()
			st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: false})
			if err != nil {
				return fmt.Errorf("open store: %w", err)
			}
			defer st.Close()

			stderr, out := cmd.ErrOrStderr(), cmd.OutOrStdout()
			res, err := secrets.Rotate(ctx, st, keys, secrets.RotateOptions{
				Batch:  batch,
				DryRun: dryRun,
				Progress: func(done, total int64) {
					fmt.Fprintf(stderr, "rotated %d/%d rows\n", done, total)
					if pause > 0 {
						time.Sleep(pause)
					}
				},
			})
			if !dryRun {
				detail, _ := json.Marshal(map[string]any{"to_key": res.Current, "rotated": res.Rotated,
					"skipped": res.Skipped, "total": res.Total, "complete": err == nil})
				if aerr := cliAudit(ctx, cmd, st, store.AuditEntry{Action: store.AuditKeysRotate,
					Target: "keys to " + res.Current, Count: res.Rotated, Detail: string(detail)}); aerr != nil && err == nil {
					err = aerr
				}
			}
			if err != nil {
				if res.Total > 0 && !dryRun {
					return fmt.Errorf("%w\n%d of %d rows were rotated and committed before this; run it again to continue", err, res.Rotated, res.Total)
				}
				return err
			}
			if dryRun {
				fmt.Fprintf(out, "would rotate %d rows to key %q\n", res.Total, res.Current)
				for _, k := range res.ByKey {
					fmt.Fprintf(out, "  %s: %d rows\n", k.KeyID, k.Rows)
				}
				return nil
			}
			fmt.Fprintf(out, "rotated %d rows to key %q", res.Rotated, res.Current)
			if res.Skipped > 0 {
				fmt.Fprintf(out, " (%d rewritten or deleted meanwhile, left as they were)", res.Skipped)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "count the rows to rotate, write nothing")
	f.IntVar(&batch, "batch", secrets.RotateBatchDefault, "rows re-encrypted per transaction")
	// A test hook: a pause after each committed batch lets a test kill the
	// process mid-rotation deterministically.
	f.DurationVar(&pause, "batch-pause", 0, "pause after each batch")
	_ = f.MarkHidden("batch-pause")
	return cmd
}

func newKeysStatusCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Print how many stored rows each key encrypts",
		Long: `Print every key in keys, and every key id stored rows use that keys lacks,
with its row count. Exits 3 when rows are sealed under a key missing from
keys (backlot would refuse to start).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			keys, err := secrets.NewKeyring(cfg.Keys)
			if err != nil {
				return &exitError{Code: 2, Err: err}
			}
			ctx := cmd.Context()
			st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: false})
			if err != nil {
				return fmt.Errorf("open store: %w", err)
			}
			defer st.Close()
			status, err := secrets.Status(ctx, st, keys)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tROWS\tSTATE")
			missing := false
			for _, s := range status {
				state := "decrypts"
				switch {
				case s.Current:
					state = "current (encrypts)"
				case !s.Configured:
					state = "MISSING from keys"
					missing = true
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", s.KeyID, s.Rows, state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if missing {
				return &exitError{Code: 3, Err: secrets.CheckKeys(ctx, st, keys)}
			}
			return nil
		},
	}
}
