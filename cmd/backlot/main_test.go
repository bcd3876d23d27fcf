package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/spf13/cobra"
)

// quickstart is the example configuration, relative to this package.
const quickstart = "../../examples/quickstart/backlot.yaml"

// unsetVar is an environment variable no test environment sets.
const unsetVar = "BACKLOT_CLI_TEST_SURELY_UNSET"

// cli runs the command line in-process and returns its exit status and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkPrefixed fails unless every line of stderr starts with "backlot: ".
func checkPrefixed(t *testing.T, stderr string) {
	t.Helper()
	if strings.TrimSpace(stderr) == "" {
		t.Error("stderr is empty, want an error message")
		return
	}
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, "backlot: ") {
			t.Errorf("stderr line %q is not prefixed with \"backlot: \"", line)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  []string
		usage string // the usage line that must be printed
		also  string // something specific to the command
	}{
		{[]string{"--help"}, "backlot [command]", "Available Commands:"},
		{[]string{"-h"}, "backlot [command]", "--config"},
		{[]string{"help"}, "backlot [command]", "serve"},
		{[]string{"serve", "--help"}, "backlot serve [flags]", "--migrate"},
		{[]string{"help", "serve"}, "backlot serve [flags]", "SIGTERM"},
		{[]string{"migrate", "--help"}, "backlot migrate [flags]", "--status"},
		{[]string{"config", "--help"}, "backlot config [command]", "check"},
		{[]string{"config"}, "backlot config [command]", "check"},
		{[]string{"config", "check", "--help"}, "backlot config check [flags]", "Exits 0 when valid, 2 when not."},
		{[]string{"version", "--help"}, "backlot version [flags]", "Print the version"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, want 0; stderr: %s", code, errOut)
			}
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, tt.usage) || !strings.Contains(out, tt.also) {
				t.Errorf("stdout lacks usage %q or %q:\n%s", tt.usage, tt.also, out)
			}
			// Help shows the global flags everywhere.
			if !strings.Contains(out, "--log-format") {
				t.Errorf("stdout lacks the global flags:\n%s", out)
			}
			if errOut != "" {
				t.Errorf("stderr = %q, want empty", errOut)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	// Point --config at a file that does not exist, so that a command that
	// wrongly got past its usage check fails at once instead of serving.
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frob"}, `unknown command "frob" for "backlot"`},
		{"unknown root flag", []string{"--frob"}, "unknown flag: --frob"},
		{"unknown shorthand", []string{"-Z", "version"}, "unknown shorthand flag: 'Z'"},
		{"unknown serve flag", []string{"serve", "--config", missing, "--nope"}, "unknown flag: --nope"},
		{"unknown migrate flag", []string{"migrate", "--config", missing, "--force"}, "unknown flag: --force"},
		{"unknown config subcommand", []string{"config", "frob"}, `unknown command "frob" for "backlot config"`},
		{"unknown config check flag", []string{"config", "check", "--config", missing, "--strict"}, "unknown flag: --strict"},
		{"argument to config check", []string{"config", "check", "--config", missing, "extra"}, `unknown command "extra" for "backlot config check"`},
		{"argument to version", []string{"version", "extra"}, `unknown command "extra" for "backlot version"`},
		{"flag without value", []string{"--config"}, "flag needs an argument: --config"},
		{"bad bool flag", []string{"migrate", "--config", missing, "--status=maybe"}, `invalid argument "maybe"`},
		{"bad log format", []string{"--log-format", "nope", "serve", "--config", missing}, `--log-format "nope": want json or text`},
		{"bad log format after the command", []string{"serve", "--config", missing, "--log-format", "nope"}, `--log-format "nope": want json or text`},
		{"bad log level", []string{"--log-level", "loud", "serve", "--config", missing}, `--log-level "loud": want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tt.want)
			}
			checkPrefixed(t, errOut)
			if out != "" {
				t.Errorf("stdout = %q, want empty", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, "version")
	if code != 0 || out != "backlot dev\n" || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, \"\"", code, out, errOut, "backlot dev\n")
	}
}

func TestConfigCheckOK(t *testing.T) {
	t.Parallel()
	t.Run("quickstart", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := cli(t, "config", "check", "--config", quickstart)
		if code != 0 {
			t.Fatalf("exit %d, want 0; stderr: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "ok: "+quickstart+"\n") || !strings.Contains(out, "store sqlite") {
			t.Errorf("stdout = %q, want \"ok: %s\" and the store backend", out, quickstart)
		}
		if errOut != "" {
			t.Errorf("stderr = %q, want empty", errOut)
		}
	})
	t.Run("shorthand flag", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := cli(t, "-c", quickstart, "config", "check")
		if code != 0 || !strings.HasPrefix(out, "ok: ") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run(".env beside the file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := writeFile(t, dir, "backlot.yaml", `server: { listen: "127.0.0.1:0" }
authenticators:
  users: { type: hs256, secret: "${BACKLOT_CLI_TEST_DOTENV_SECRET}" }
`)
		writeFile(t, dir, ".env", "BACKLOT_CLI_TEST_DOTENV_SECRET="+strings.Repeat("s", 32)+"\n")
		code, out, errOut := cli(t, "config", "check", "--config", path)
		if code != 0 || !strings.HasPrefix(out, "ok: "+path) || !strings.Contains(out, "1 authenticator") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("postgres password not echoed", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, t.TempDir(), "backlot.yaml", `server: { listen: "127.0.0.1:0" }
store: { url: "postgres://backlot:hunter2-secret@db.internal:5432/backlot" }
`)
		code, out, errOut := cli(t, "config", "check", "--config", path)
		if code != 0 || !strings.Contains(out, "store postgres") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if strings.Contains(out+errOut, "hunter2") {
			t.Errorf("output echoes the database password: %q", out+errOut)
		}
	})
}

func TestConfigCheckErrors(t *testing.T) {
	t.Parallel()
	const local = "server:\n  listen: \"127.0.0.1:8080\"\n"
	tests := []struct {
		name string
		yaml string
		want []string // each "line: key.path: message", prefixed with the file
	}{
		{"unknown key", local + "  listne: \"127.0.0.1:9090\"\n",
			[]string{`3: server.listne: unknown key (did you mean "listen"?)`}},
		{"unknown section", local + "stores:\n  url: sqlite://x.db\n",
			[]string{`3: stores: unknown key`}},
		{"unset variable", local + "store:\n  url: \"${" + unsetVar + "}\"\n",
			[]string{"4: store.url: ${" + unsetVar + "} is not set"}},
		{"unset variable in a list item", local + "webhooks:\n  - path: /h\n    verify:\n      scheme: github\n      secrets: [\"${" + unsetVar + "}\"]\n    job: h.event\n",
			[]string{"7: webhooks[0].verify.secrets[0]: ${" + unsetVar + "} is not set"}},
		{"wrong type: duration", local + "jobs:\n  timeout: fast\n",
			[]string{`4: jobs.timeout: want a duration such as 30s or 1h, got "fast"`}},
		{"wrong type: integer", local + "  max_body_bytes: lots\n",
			[]string{`3: server.max_body_bytes: want an integer, got "lots"`}},
		{"wrong type: list", local + "  trusted_proxies: 10.0.0.0/8\n",
			[]string{`3: server.trusted_proxies: want a list, got "10.0.0.0/8"`}},
		{"wrong type: bool", local + "  http_override: sometimes\n",
			[]string{`3: server.http_override: want true or false, got "sometimes"`}},
		{"duplicate key", local + "  listen: \"127.0.0.1:9090\"\n",
			[]string{"3: server.listen: duplicate key (first set at line 2)"}},
		{"invalid YAML", "server:\n  listen: [\n",
			[]string{"2: invalid YAML: "}},
		{"plain HTTP on a public address", "server:\n  listen: \"0.0.0.0:8080\"\n",
			[]string{`2: server.listen: plain HTTP on non-loopback address "0.0.0.0:8080"`}},
		{"unsigned webhook without allow_ips", local + "webhooks:\n  - path: /h\n    verify: { scheme: none }\n    job: h.event\n",
			[]string{"4: webhooks[0].allow_ips: scheme none (no signature) requires allow_ips"}},
		{"short hs256 secret", local + "authenticators:\n  users: { type: hs256, secret: short }\n",
			[]string{"4: authenticators.users.secret: must be at least 32 bytes (got 5)"}},
		{"every problem reported, in line order", local + "  listne: x\nstore:\n  url: \"${" + unsetVar + "}\"\njobs:\n  timeout: fast\n",
			[]string{
				"3: server.listne: unknown key",
				"5: store.url: ${" + unsetVar + "} is not set",
				`7: jobs.timeout: want a duration such as 30s or 1h, got "fast"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, t.TempDir(), "backlot.yaml", tt.yaml)
			code, out, errOut := cli(t, "config", "check", "--config", path)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errOut)
			}
			checkPrefixed(t, errOut)
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d stderr lines, want %d:\n%s", len(lines), len(tt.want), errOut)
			}
			for i, w := range tt.want {
				want := "backlot: " + path + ":" + w
				if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
					t.Errorf("stderr line %d does not start with %q:\n%s", i+1, want, errOut)
				}
			}
			if out != "" {
				t.Errorf("stdout = %q, want empty (no \"ok:\")", out)
			}
		})
	}
}

// TestConfigCheckEnvOverride cannot run in parallel: it sets a variable of
// the process environment, which the CLI reads.
func TestConfigCheckEnvOverride(t *testing.T) {
	path := writeFile(t, t.TempDir(), "backlot.yaml", "server: { listen: \"127.0.0.1:0\" }\n")

	t.Setenv("BACKLOT_STORE_URL", "mysql://db/backlot")
	code, out, errOut := cli(t, "config", "check", "--config", path)
	if code != 2 || errOut != "backlot: $BACKLOT_STORE_URL: store.url: want sqlite://<path> or postgres://…\n" || out != "" {
		t.Errorf("bad override: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	t.Setenv("BACKLOT_STORE_URL", "postgres://u@db/backlot")
	code, out, errOut = cli(t, "config", "check", "--config", path)
	if code != 0 || !strings.Contains(out, "store postgres") {
		t.Errorf("good override: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestConfigUnreadable: a configuration file that cannot be read (absent,
// or a directory) is a configuration error like any other: status 2, one
// line naming the file, for every command that reads it.
func TestConfigUnreadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tc := range map[string]struct{ path, want string }{
		"absent":      {filepath.Join(dir, "absent.yaml"), "cannot read: no such file or directory"},
		"a directory": {dir, "cannot read: is a directory"},
	} {
		for _, args := range [][]string{{"config", "check"}, {"serve"}, {"migrate"}, {"jobs", "list"}} {
			t.Run(name+"/"+strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				code, out, errOut := cli(t, append(args, "--config", tc.path)...)
				want := "backlot: " + tc.path + ": " + tc.want + "\n"
				if code != 2 || errOut != want || out != "" {
					t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, want)
				}
			})
		}
	}
}

// TestConsoleConfigRefused: a console naming an authenticator that does
// not exist stops config check and serve with status 2, naming key and
// line. (The console was the last key refused as not yet available; the
// refusal itself is tested in package config.)
func TestConsoleConfigRefused(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "backlot.yaml", `server: { listen: "127.0.0.1:0" }
keys:
  - { id: k1, secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }
console: { path: /_/, auth: [nobody] }
`)
	want := "backlot: " + path + ":4: console.auth[0]: no authenticator named \"nobody\" (none are configured)\n"
	for _, args := range [][]string{{"config", "check"}, {"serve"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, append(args, "--config", path)...)
			if code != 2 || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 2 and:\n%s", code, out, errOut, want)
			}
		})
	}
}

// TestEveryConfigProblemInOneRun: an unknown key and a wrong type (found
// while decoding) no longer hide a validation problem elsewhere.
func TestEveryConfigProblemInOneRun(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "backlot.yaml", `server:
  listen: "127.0.0.1:0"
  max_body_bytes: lots
store:
  uri: sqlite://x.db
authenticators:
  users: { type: hs256, secret: too-short }
`)
	want := "backlot: " + path + `:3: server.max_body_bytes: want an integer, got "lots"` + "\n" +
		"backlot: " + path + `:5: store.uri: unknown key (did you mean "url"?)` + "\n" +
		"backlot: " + path + ":7: authenticators.users.secret: must be at least 32 bytes (got 9)\n"
	for _, args := range [][]string{{"config", "check"}, {"serve"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, append(args, "--config", path)...)
			if code != 2 || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 2 and:\n%s", code, out, errOut, want)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "x.db")
	path := writeFile(t, dir, "backlot.yaml", fmt.Sprintf("server: { listen: \"127.0.0.1:0\" }\nstore: { url: \"sqlite://%s\" }\n", dbPath))

	// A fresh database: migrations are pending.
	code, out, errOut := cli(t, "migrate", "--status", "--config", path)
	if code != 3 {
		t.Fatalf("migrate --status on a fresh database: exit %d, want 3; stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(out, "schema is behind") || !strings.Contains(errOut, "migrations pending") {
		t.Errorf("migrate --status: stdout %q, stderr %q; want \"schema is behind\" and \"migrations pending\"", out, errOut)
	}
	checkPrefixed(t, errOut)

	code, out, errOut = cli(t, "migrate", "--config", path)
	if code != 0 || errOut != "" {
		t.Fatalf("migrate: exit %d, stderr %q", code, errOut)
	}
	var migrated int64
	if _, err := fmt.Sscanf(out, "sqlite schema migrated to version %d\n", &migrated); err != nil {
		t.Fatalf("migrate: stdout %q: %v", out, err)
	}

	// The reported version is the newest this binary embeds, and applied.
	db, err := sqlite.Open(context.Background(), dbPath, store.Options{})
	if err != nil {
		t.Fatalf("open the migrated database without migrating: %v", err)
	}
	st, err := db.SchemaStatus(context.Background())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if migrated != st.Latest || st.Current != st.Latest || st.Latest < 1 {
		t.Errorf("reported version %d; database at %d, binary at %d", migrated, st.Current, st.Latest)
	}

	code, out, errOut = cli(t, "migrate", "--status", "--config", path)
	if code != 0 || out != fmt.Sprintf("sqlite schema current (version %d)\n", migrated) || errOut != "" {
		t.Errorf("migrate --status after migrate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Migrating again changes nothing.
	code, out, errOut = cli(t, "migrate", "--config", path)
	if code != 0 || out != fmt.Sprintf("sqlite schema migrated to version %d\n", migrated) || errOut != "" {
		t.Errorf("second migrate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestBadConfigStopsEveryCommand checks that commands which load the
// configuration refuse a bad one with status 2 before starting anything.
func TestBadConfigStopsEveryCommand(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "backlot.yaml", "server: { listen: \"127.0.0.1:0\" }\nstore: { url: \"mysql://db/x\" }\n")
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--migrate=false"},
		{"migrate"},
		{"migrate", "--status"},
		{"config", "check"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, append(args, "--config", path)...)
			want := "backlot: " + path + ":2: store.url: want sqlite://<path> or postgres://…\n"
			if code != 2 || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, want)
			}
		})
	}
}

// TestHelpSpeaksForItself: no --help text sends the reader to files a user
// of the binary does not have (the product specification, its sources).
func TestHelpSpeaksForItself(t *testing.T) {
	t.Parallel()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, text := range []string{c.Short, c.Long, c.Example, c.Flags().FlagUsages(), c.PersistentFlags().FlagUsages()} {
			for _, banned := range []string{"SPEC", "seed 0", "Seed 0", "../shared"} {
				if strings.Contains(text, banned) {
					t.Errorf("%q --help mentions %q:\n%s", c.CommandPath(), banned, text)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	var out, errb bytes.Buffer
	walk(newRootCmd(&out, &errb))
}
