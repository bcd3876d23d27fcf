package config

import (
	"errors"
	"strings"
	"testing"
)

// testTable stands in for notYetAvailable, which may be empty: the
// refusal machinery stays tested with a key of the schema that is built.
var testTable = []string{"console"}

func TestNotYetAvailableRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string // every issue, in order
	}{
		{"console", local + "console:\n  path: /_/\n",
			[]string{"backlot.yaml:2: console: not available yet in this version"}},
		{"with other problems", "server:\n  listen: \"127.0.0.1:1\"\n  lisen: x\nconsole: {path: /_/}\n",
			[]string{
				`backlot.yaml:3: server.lisen: unknown key (did you mean "listen"?)`,
				"backlot.yaml:4: console: not available yet in this version",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadWith(writeConfig(t, tt.yaml, ""), envMap(nil), testTable)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *Error", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d issues, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasSuffix(lines[i], w) {
					t.Errorf("issue %d = %q, want it to end with %q", i+1, lines[i], w)
				}
			}
		})
	}
}

func TestNotYetAvailableAccepted(t *testing.T) {
	t.Parallel()
	for name, yaml := range map[string]string{
		// The sharetribe authenticator reads type, client_id and api_url.
		"marketplace for the sharetribe authenticator": local + "marketplaces:\n  main: {type: sharetribe, client_id: c, api_url: \"https://m.example\"}\nauthenticators:\n  shoppers: {type: sharetribe, marketplace: main}\n",
		"keys":               local + "keys:\n  - {id: k1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n",
		"empty sections":     local + "routes: []\nupstreams: {}\nconnections:\nconsole: {}\n",
		"empty events block": local + "marketplaces:\n  main: {client_id: c, events: {}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := loadWith(writeConfig(t, yaml, ""), envMap(nil), testTable); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestNotYetAvailableBuiltInCode(t *testing.T) {
	t.Parallel()
	c := &Config{
		Server:  Server{Listen: "127.0.0.1:0"},
		Console: Console{Path: "/_/"},
	}
	err := c.finish(nil, nil, testTable)
	want := "console: not available yet in this version"
	if err == nil || err.Error() != want {
		t.Fatalf("Prepare = %v, want\n%s", err, want)
	}
}

// TestEveryProblemInOneRun: decoding problems (an unknown key, a wrong
// type, an unset variable) no longer hide validation problems elsewhere,
// and a value that failed to decode is not reported a second time by
// validation.
func TestEveryProblemInOneRun(t *testing.T) {
	t.Parallel()
	yaml := `server:
  listen: "127.0.0.1:8080"
  lisen: "127.0.0.1:9090"
jobs:
  timeout: soon
authenticators:
  users: {type: hs256, secret: short}
  other: {type: hs256, secret: "${BACKLOT_CONFIG_TEST_UNSET}"}
`
	_, err := load(t, yaml, nil)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *Error", err)
	}
	want := []string{
		`:3: server.lisen: unknown key (did you mean "listen"?)`,
		`:5: jobs.timeout: want a duration such as 30s or 1h, got "soon"`,
		`:7: authenticators.users.secret: must be at least 32 bytes (got 5)`,
		`:8: authenticators.other.secret: ${BACKLOT_CONFIG_TEST_UNSET} is not set`,
	}
	if len(ce.Issues) != len(want) {
		t.Fatalf("%d issues, want %d:\n%s", len(ce.Issues), len(want), err)
	}
	for i, w := range want {
		if got := ce.Issues[i].String(); !strings.HasSuffix(got, "backlot.yaml"+w) {
			t.Errorf("issue %d = %q, want it to end with %q", i+1, got, "backlot.yaml"+w)
		}
	}
}

func TestCovered(t *testing.T) {
	t.Parallel()
	roots := []string{"routes", "marketplaces.main.events", "webhooks[0].verify.secrets[0]"}
	for path, want := range map[string]bool{
		"routes":                           true,
		"routes[0].match":                  true,
		"routesx":                          false,
		"marketplaces.main.events.poll":    true,
		"marketplaces.main":                true, // holds a root
		"marketplaces.mainx.events":        false,
		"webhooks[0].verify.secrets":       true,
		"webhooks[0].verify.secrets[0]":    true,
		"webhooks[0].verify.scheme":        false,
		"webhooks[1].verify.secrets[0]":    false,
		"marketplaces.main.integration":    false,
		"authenticators.users.secret":      false,
		"marketplaces.main.events_and_xyz": false,
	} {
		if got := covered(path, roots); got != want {
			t.Errorf("covered(%q) = %v, want %v", path, got, want)
		}
	}
}
