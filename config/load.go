package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/backlothq/backlot/internal/yamlschema"
	"github.com/joho/godotenv"
)

// EnvPrefix starts the name of every environment variable that overrides a
// configuration scalar: BACKLOT_SERVER_LISTEN overrides server.listen.
const EnvPrefix = "BACKLOT_"

// Limits that keep a hostile file from costing unbounded work.
const (
	// maxIssues bounds the problems reported for one file.
	maxIssues = 100
)

// Issue is one problem found in a configuration.
type Issue struct {
	// File is the configuration file, or "$BACKLOT_…" when the value came
	// from an environment override.
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	// Path is the YAML key path: server.listen, webhooks[0].verify.scheme,
	// authenticators.users.type.
	Path string
	// Msg says what is wrong.
	Msg string
}

// String formats the issue as "file:line: path: msg".
func (i Issue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			b.WriteString(":" + strconv.Itoa(i.Line))
		}
		b.WriteString(": ")
	} else if i.Line > 0 {
		b.WriteString("line " + strconv.Itoa(i.Line) + ": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path + ": ")
	}
	b.WriteString(i.Msg)
	return b.String()
}

// Error lists every problem found in a configuration. Load and Validate
// return it; the CLI exits with status 2 for it.
type Error struct {
	Issues []Issue

	// cause is the underlying error when the file could not be read.
	cause error
}

// Unwrap returns the reason a file could not be read, or nil.
func (e *Error) Unwrap() error { return e.cause }

// Error prints one issue per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// sortIssues orders issues by file line; issues without a line (from the
// environment, or from a config built in code) come last, in found order.
func sortIssues(is []Issue) {
	sort.SliceStable(is, func(a, b int) bool {
		la, lb := is[a].Line, is[b].Line
		if la == 0 {
			return false
		}
		if lb == 0 {
			return true
		}
		return la < lb
	})
}

// Load reads the configuration file at path, expands ${VAR} references,
// applies BACKLOT_<PATH> overrides, checks every key and type against the
// schema, fills defaults and validates. env looks up environment variables
// (os.LookupEnv in production); a .env file beside the configuration file
// supplies values the environment does not set. The process environment is
// never modified. Problems in the file are reported together as an *Error.
//
// A file that cannot be read is an *Error too (its one issue names the
// file), so every configuration problem ends the same way: exit status 2.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	return loadWith(path, env, notYetAvailable())
}

// loadWith is Load with the table of keys to refuse (notYetAvailable).
func loadWith(path string, env func(string) (string, bool), unavailable []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	dotenvPath := filepath.Join(filepath.Dir(path), ".env")
	dotenv, err := godotenv.Read(dotenvPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dotenv = nil
	case err != nil:
		return nil, &Error{Issues: []Issue{{File: dotenvPath, Msg: "cannot read: " + err.Error()}}}
	}
	lookup := func(name string) (string, bool) {
		if env != nil {
			if v, ok := env(name); ok {
				return v, true
			}
		}
		v, ok := dotenv[name]
		return v, ok
	}
	return parseWith(path, data, lookup, unavailable)
}

// readError reports a configuration file that cannot be read. The cause
// stays reachable with errors.Is (fs.ErrNotExist, fs.ErrPermission).
func readError(path string, err error) *Error {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err // the path is already in the issue
	}
	return &Error{Issues: []Issue{{File: path, Msg: "cannot read: " + cause.Error()}}, cause: err}
}

// parse is Load after the files are read.
func parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parseWith(file, data, lookup, notYetAvailable())
}

// parseWith is parse with the table of keys to refuse.
func parseWith(file string, data []byte, lookup func(string) (string, bool), unavailable []string) (cfg *Config, err error) {
	cfg = &Config{File: file}
	res := yamlschema.Decoder{File: file, Lookup: lookup, EnvPrefix: EnvPrefix, Describe: describeType}.Decode(data, cfg)
	if res.Fatal {
		return nil, &Error{Issues: issuesOf(res.Issues)}
	}
	cfg.origins = res.Origins
	// Validation runs even when decoding found problems, so one run reports
	// everything (an unknown key and a missing secret elsewhere together).
	// Validation issues at, under or above a value that failed to decode
	// are left out: that value is missing, and saying so twice misleads.
	if err := cfg.finish(issuesOf(res.Issues), res.Holes, unavailable); err != nil {
		return nil, err
	}
	return cfg, nil
}

// describeType names what a Duration field wants, for decoding issues.
func describeType(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return "a duration such as 30s or 1h"
	}
	return ""
}

// issuesOf converts the decoder's issues. The two Issue types have the
// same fields, so a field added to one and not the other fails to compile.
func issuesOf(is []yamlschema.Issue) []Issue {
	out := make([]Issue, len(is))
	for i, x := range is {
		out[i] = Issue(x)
	}
	return out
}

// clip shortens a value quoted in an issue.
func clip(s string) string { return yamlschema.Clip(s) }

// finish refuses the keys of the unavailable table that c sets, fills the
// defaults and validates; it returns every problem, with earlier (decoding)
// issues, as one *Error. Validation issues covered by a hole (a key path
// that failed to decode) or by a refused key are dropped.
func (c *Config) finish(earlier []Issue, holes, unavailable []string) error {
	refused, refusedPaths := c.refuse(unavailable)
	c.withDefaults()
	issues := append(append([]Issue(nil), earlier...), refused...)
	skip := append(append([]string(nil), holes...), refusedPaths...)
	var ve *Error
	if err := c.Validate(); errors.As(err, &ve) {
		for _, is := range ve.Issues {
			if !covered(is.Path, skip) {
				issues = append(issues, is)
			}
		}
	} else if err != nil {
		return err
	}
	if len(issues) == 0 {
		return nil
	}
	return newError(c.File, issues)
}

// newError sorts issues by line and caps them at maxIssues.
func newError(file string, issues []Issue) *Error {
	sortIssues(issues)
	if len(issues) > maxIssues {
		more := len(issues) - maxIssues
		issues = append(issues[:maxIssues], Issue{File: file, Msg: fmt.Sprintf("… and %d more problems", more)})
	}
	return &Error{Issues: issues}
}
