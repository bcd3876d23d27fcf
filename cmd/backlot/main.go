// Command backlot is the server side marketplace front-ends are missing:
// caller authentication, webhooks into a durable job queue, and more, in
// one binary configured by YAML.
//
//	backlot serve --config backlot.yaml
//	backlot config check --config backlot.yaml
//	backlot migrate
//	backlot token mint --authenticator users --sub user-1
//	backlot jobs list --state failed
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/logbuf"
	"github.com/backlothq/backlot/internal/logjson"
	"github.com/spf13/cobra"
)

// Set by the linker: -X main.version=… (make build).
var version = "dev"

// globalFlags are the flags every subcommand shares.
type globalFlags struct {
	configPath string
	logFormat  string
	logLevel   string
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	Code int
	Err  error
}

func (e *exitError) Error() string { return e.Err.Error() }
func (e *exitError) Unwrap() error { return e.Err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit status: 0 on success,
// 2 for configuration and usage errors, 1 for anything else.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		fmt.Fprintln(stderr, "backlot:", line)
	}
	var ee *exitError
	var ce *config.Error
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ce), errors.Is(err, fs.ErrNotExist):
		return 2
	case isUsageError(err):
		return 2
	}
	return 1
}

func isUsageError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "required flag", "invalid argument", "flag needs an argument"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "backlot",
		Short: "The server side your marketplace front-end is missing",
		Long: `backlot authenticates every call from your front-end, keeps third-party
secrets on the server, receives webhooks durably into a job queue, and talks
to your marketplace — one binary, configured by one YAML file.

Start with:  backlot serve --config examples/quickstart/backlot.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Log flags are checked up front so every command rejects bad values.
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		_, err := newLogger(g, io.Discard)
		return err
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "backlot.yaml", "configuration file")
	pf.StringVar(&g.logFormat, "log-format", "json", "log format: json or text")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newServeCmd(g),
		newDevCmd(g),
		newMigrateCmd(g),
		newConfigCmd(g),
		newTokenCmd(g),
		newAPIKeyCmd(),
		newJobsCmd(g),
		newKeysCmd(g),
		newVersionCmd(),
	)
	return root
}

// newLogger builds the process logger from the flags.
func newLogger(g *globalFlags, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, &exitError{Code: 2, Err: fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "json":
		return slog.New(logjson.New(w, opts)), nil // slog.JSONHandler's lines, request lines faster
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, &exitError{Code: 2, Err: fmt.Errorf("--log-format %q: want json or text", g.logFormat)}
	}
}

// newServerLogger is newLogger for a long-running server: request lines are
// written in batches instead of one system call each. Call the returned
// function before exiting to write what is left.
func newServerLogger(g *globalFlags, w io.Writer) (*slog.Logger, func(), error) {
	bw := logbuf.New(w, logbuf.FlushDefault, logbuf.SizeDefault)
	log, err := newLogger(g, bw)
	if err != nil {
		return nil, nil, err
	}
	// Warnings and errors are written at once.
	return slog.New(logbuf.Handler(log.Handler(), bw)), func() { bw.Close() }, nil
}

// loadConfig reads the configuration named by --config.
func loadConfig(g *globalFlags) (*config.Config, error) {
	return config.Load(g.configPath, os.LookupEnv)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "backlot", version)
			return nil
		},
	}
}
