package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envMap returns a lookup function over m, standing in for os.LookupEnv.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeConfig writes yaml as backlot.yaml (and dotenv as .env when not
// empty) in a fresh directory and returns the config path.
func writeConfig(t *testing.T, yaml, dotenv string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if dotenv != "" {
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// load writes yaml and loads it with env.
func load(t *testing.T, yaml string, env map[string]string) (*Config, error) {
	t.Helper()
	return Load(writeConfig(t, yaml, ""), envMap(env))
}

// loadBuilt is load as if every key of the schema were built: no key is
// refused as not yet available, so the validation rules of those sections
// stay tested for the day they are.
func loadBuilt(t *testing.T, yaml string, env map[string]string) (*Config, error) {
	t.Helper()
	return loadWith(writeConfig(t, yaml, ""), envMap(env), nil)
}

// mustLoadBuilt is mustLoad with nothing refused (see loadBuilt).
func mustLoadBuilt(t *testing.T, yaml string, env map[string]string) *Config {
	t.Helper()
	c, err := loadBuilt(t, yaml, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// mustLoad loads yaml and fails the test on any error.
func mustLoad(t *testing.T, yaml string, env map[string]string) *Config {
	t.Helper()
	c, err := load(t, yaml, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// wantErr checks err is a *Error whose text contains every want.
func wantErr(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", wants)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %T %v, want *config.Error", err, err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%s", w, err)
		}
	}
}

const local = "server: {listen: \"127.0.0.1:8080\"}\n"

func TestLoadSchemaErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
		notWant    string
	}{
		{"unknown key with suggestion", "server:\n  lisen: x\n",
			[]string{`backlot.yaml:2: server.lisen: unknown key (did you mean "listen"?)`}, ""},
		{"unknown top-level key", "stor:\n  url: x\n",
			[]string{`backlot.yaml:1: stor: unknown key (did you mean "store"?)`}, ""},
		{"unknown key far from any", local + "store:\n  frobnicate: 1\n",
			[]string{"backlot.yaml:3: store.frobnicate: unknown key"}, "did you mean"},
		{"unknown key in map entry", local + "authenticators:\n  users:\n    type: hs256\n    secrt: x\n",
			[]string{`backlot.yaml:5: authenticators.users.secrt: unknown key (did you mean "secret"?)`}, ""},
		{"unknown key in list item", local + "webhooks:\n  - path: /a\n    verify:\n      schema: standard\n",
			[]string{`backlot.yaml:5: webhooks[0].verify.schema: unknown key (did you mean "scheme"?)`}, ""},
		{"integer", "server:\n  listen: 127.0.0.1:1\n  max_body_bytes: abc\n",
			[]string{`backlot.yaml:3: server.max_body_bytes: want an integer, got "abc"`}, ""},
		{"integer overflow", local + "jobs:\n  queues:\n    default: {concurrency: 99999999999999999999}\n",
			[]string{`backlot.yaml:4: jobs.queues.default.concurrency: want an integer, got "99999999999999999999"`}, ""},
		{"mapping for a string", "server:\n  listen:\n    a: b\n",
			[]string{"backlot.yaml:3: server.listen: want a string, got a mapping"}, ""},
		{"list for a string", local + "webhooks:\n  - path: /a\n    verify:\n      scheme: [x]\n",
			[]string{"backlot.yaml:5: webhooks[0].verify.scheme: want a string, got a list"}, ""},
		{"scalar for a struct", "server: 5\n",
			[]string{`backlot.yaml:1: server: want a mapping, got "5"`}, ""},
		{"scalar for a list", local + "cors:\n  allowed_origins: http://x\n",
			[]string{`backlot.yaml:3: cors.allowed_origins: want a list, got "http://x"`}, ""},
		{"scalar for a map", local + "authenticators: users\n",
			[]string{`backlot.yaml:2: authenticators: want a mapping, got "users"`}, ""},
		{"bad duration", local + "jobs:\n  timeout: 5x\n",
			[]string{`backlot.yaml:3: jobs.timeout: want a duration such as 30s or 1h, got "5x"`}, ""},
		{"duration without unit", local + "jobs:\n  timeout: 30\n",
			[]string{`backlot.yaml:3: jobs.timeout: want a duration such as 30s or 1h, got "30"`}, ""},
		{"bad bool", "server:\n  listen: 127.0.0.1:1\n  http_override: maybe\n",
			[]string{`backlot.yaml:3: server.http_override: want true or false, got "maybe"`}, ""},
		{"bad *bool", local + "authenticators:\n  s:\n    type: session\n    cookie: {secure: 2}\n",
			[]string{`backlot.yaml:5: authenticators.s.cookie.secure: want true or false, got "2"`}, ""},
		{"duplicate struct key", "server:\n  listen: a\n  listen: b\n",
			[]string{"backlot.yaml:3: server.listen: duplicate key (first set at line 2)"}, ""},
		{"duplicate map key", local + "authenticators:\n  a: {type: hs256}\n  a: {type: jwks}\n",
			[]string{"backlot.yaml:4: authenticators.a: duplicate key (first set at line 3)"}, ""},
		{"top level list", "- a\n- b\n", []string{"backlot.yaml:1: want a mapping at the top level, got a list"}, ""},
		{"top level scalar", "hello\n", []string{`want a mapping at the top level, got "hello"`}, ""},
		{"yaml syntax", "server:\n  listen: [\n", []string{"backlot.yaml:", "invalid YAML"}, ""},
		{"yaml indentation", "server:\n  listen: a\n bad: b\n", []string{"backlot.yaml:2: invalid YAML: did not find expected key"}, ""},
		{"non-string key", local + "authenticators:\n  ? [a]\n  : {type: hs256}\n",
			[]string{"backlot.yaml:3: authenticators: keys must be strings, got a list"}, ""},
		{"merge of a scalar", local + "store:\n  <<: 5\n", []string{"backlot.yaml:3: store: merge (<<) wants a mapping"}, ""},
		{"every error, sorted by line", "jobs:\n  timeout: 5x\nserver:\n  lisen: 1\n  max_body_bytes: x\n",
			[]string{"backlot.yaml:2: jobs.timeout: want a duration such as 30s or 1h, got \"5x\"",
				"backlot.yaml:4: server.lisen: unknown key (did you mean \"listen\"?)",
				"backlot.yaml:5: server.max_body_bytes: want an integer, got \"x\""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml, nil)
			wantErr(t, err, tt.want...)
			// Issues come one per line, in file order.
			last := -1
			for _, w := range tt.want {
				i := strings.Index(err.Error(), w)
				if i < last {
					t.Errorf("%q out of order in:\n%s", w, err)
				}
				last = i
			}
			if tt.notWant != "" && err != nil && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error contains %q:\n%s", tt.notWant, err)
			}
		})
	}
}

func TestErrorCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("server:\n")
	for i := range 150 {
		b.WriteString("  unknown" + strconv.Itoa(i) + ": x\n")
	}
	_, err := load(t, b.String(), nil)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Issues) != maxIssues+1 {
		t.Fatalf("got %v", err)
	}
	// 150 unknown keys, and the default listen address (:8080) refused.
	if last := ce.Issues[maxIssues].Msg; last != "… and 51 more problems" {
		t.Errorf("last issue = %q", last)
	}
}

func TestErrorIssues(t *testing.T) {
	t.Parallel()
	_, err := load(t, "server:\n  lisen: x\n  max_body_bytes: abc\n", nil)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *Error", err)
	}
	if len(ce.Issues) != 2 {
		t.Fatalf("got %d issues, want 2: %v", len(ce.Issues), err)
	}
	is := ce.Issues[1]
	if filepath.Base(is.File) != "backlot.yaml" || is.Line != 3 || is.Path != "server.max_body_bytes" || is.Msg != `want an integer, got "abc"` {
		t.Errorf("issue = %+v", is)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), envMap(nil))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestLoadEmptyFileGetsDefaults(t *testing.T) {
	t.Parallel()
	// The default listen address is public plain HTTP, refused without
	// http_override: the one thing an empty file cannot get away with.
	_, err := load(t, "", nil)
	wantErr(t, err, "server.listen: plain HTTP on non-loopback address")
	c := mustLoad(t, "", map[string]string{"BACKLOT_SERVER_HTTP_OVERRIDE": "true"})
	if c.Server.Listen != ":8080" || c.Store.URL != "sqlite://backlot.db" {
		t.Errorf("defaults not filled: %+v %+v", c.Server, c.Store)
	}
}

const hs256Users = local + `authenticators:
  users:
    type: hs256
    secret: "${JWT_SECRET}"
`

func TestLoadExpansion(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 40)

	t.Run("set", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, hs256Users, map[string]string{"JWT_SECRET": secret})
		if got := c.Authenticators["users"].Secret; got != secret {
			t.Errorf("secret = %q", got)
		}
	})
	t.Run("unset names variable, key and line", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, hs256Users, nil)
		wantErr(t, err, "backlot.yaml:5: authenticators.users.secret: ${JWT_SECRET} is not set")
		// Reported once: not again as a too-short secret.
		if strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("want exactly one issue, got:\n%s", err)
		}
	})
	t.Run("default and escape", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, local+"store:\n  url: \"sqlite://${DB:-data}/b$$cklot.db\"\n", nil)
		if c.Store.URL != "sqlite://data/b$cklot.db" {
			t.Errorf("url = %q", c.Store.URL)
		}
	})
	t.Run("typed value from a variable", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, "server:\n  listen: ${ADDR}\n  max_body_bytes: ${MAX}\n  http_override: ${HO}\njobs:\n  timeout: ${T:-45s}\n",
			map[string]string{"ADDR": "0.0.0.0:9000", "MAX": "2048", "HO": "true"})
		if c.Server.MaxBodyBytes != 2048 || !c.Server.HTTPOverride || c.Jobs.Timeout.D() != 45*time.Second {
			t.Errorf("got %+v, jobs.timeout %v", c.Server, c.Jobs.Timeout)
		}
		if c.Server.PublicURL != "http://localhost:9000" {
			t.Errorf("public_url = %q", c.Server.PublicURL)
		}
	})
	t.Run("typed value wrong", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, local+"jobs:\n  timeout: ${T}\n", map[string]string{"T": "soon"})
		wantErr(t, err, `backlot.yaml:3: jobs.timeout: want a duration such as 30s or 1h, got "soon"`)
	})
	t.Run("every unset variable reported", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, local+"store:\n  url: postgres://${U}:${P}@h/db\nkeys:\n  - {id: k1, secret: \"${K}\"}\n", nil)
		wantErr(t, err,
			"backlot.yaml:3: store.url: ${U} is not set",
			"backlot.yaml:3: store.url: ${P} is not set",
			"backlot.yaml:5: keys[0].secret: ${K} is not set")
	})
	t.Run("syntax error", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, local+"store:\n  url: sqlite://${DB\n", nil)
		wantErr(t, err, "backlot.yaml:3: store.url: unterminated ${")
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, local+"authenticators:\n  ${NAME}: {type: api_key}\n", map[string]string{"NAME": "x"})
		wantErr(t, err, "authenticators.${NAME}.keys: at least one key is required")
	})
}

func TestLoadDotEnv(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("d", 40)

	t.Run("fills unset variables", func(t *testing.T) {
		t.Parallel()
		p := writeConfig(t, hs256Users, "# comment\nJWT_SECRET="+secret+"\n")
		c, err := Load(p, envMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Authenticators["users"].Secret != secret {
			t.Errorf("secret = %q", c.Authenticators["users"].Secret)
		}
	})
	t.Run("real environment wins", func(t *testing.T) {
		t.Parallel()
		real := strings.Repeat("r", 40)
		p := writeConfig(t, hs256Users, "JWT_SECRET="+secret+"\n")
		c, err := Load(p, envMap(map[string]string{"JWT_SECRET": real}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Authenticators["users"].Secret != real {
			t.Errorf("secret = %q, want the real environment's", c.Authenticators["users"].Secret)
		}
	})
	t.Run("supplies overrides, process env untouched", func(t *testing.T) {
		t.Parallel()
		const name = "BACKLOT_SERVER_PUBLIC_URL"
		p := writeConfig(t, local, name+"=https://dotenv.example.com\n")
		c, err := Load(p, os.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		if c.Server.PublicURL != "https://dotenv.example.com" {
			t.Errorf("public_url = %q", c.Server.PublicURL)
		}
		if _, set := os.LookupEnv(name); set {
			t.Errorf("Load set %s in the process environment", name)
		}
	})
	t.Run("only beside the file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("JWT_SECRET="+secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(sub, "backlot.yaml")
		if err := os.WriteFile(p, []byte(hs256Users), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, envMap(nil))
		wantErr(t, err, "${JWT_SECRET} is not set")
	})
	t.Run("unreadable .env is an error", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := filepath.Join(dir, "backlot.yaml")
		if err := os.WriteFile(p, []byte(local), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, ".env"), 0o700); err != nil { // a directory cannot be read as a file
			t.Fatal(err)
		}
		_, err := Load(p, envMap(nil))
		wantErr(t, err, ".env: cannot read")
	})
}

func TestLoadOverrides(t *testing.T) {
	t.Parallel()
	base := `server:
  listen: "127.0.0.1:8080"
authenticators:
  users: {type: hs256, secret: "` + strings.Repeat("u", 32) + `"}
  staff: {type: session, login: users}
webhooks:
  - path: /webhooks/a
    verify: {scheme: github, secrets: [s1]}
    job: a.event
`
	tests := []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"present key", map[string]string{"BACKLOT_SERVER_LISTEN": "127.0.0.1:9999"},
			func(c *Config) bool {
				return c.Server.Listen == "127.0.0.1:9999" && c.Server.PublicURL == "http://127.0.0.1:9999"
			}},
		{"absent key", map[string]string{"BACKLOT_STORE_URL": "postgres://u@h/db"},
			func(c *Config) bool { return c.Store.URL == "postgres://u@h/db" }},
		{"absent nested key", map[string]string{"BACKLOT_SERVER_HEADERS_CSP": "default-src 'self'", "BACKLOT_SERVER_TLS_CERT_FILE": "c.pem", "BACKLOT_SERVER_TLS_KEY_FILE": "k.pem"},
			func(c *Config) bool {
				return c.Server.Headers.CSP == "default-src 'self'" && c.Server.TLS.Enabled() && c.Server.PublicURL == "https://127.0.0.1:8080"
			}},
		{"map entry", map[string]string{"BACKLOT_AUTHENTICATORS_USERS_SECRET": strings.Repeat("o", 33)},
			func(c *Config) bool { return c.Authenticators["users"].Secret == strings.Repeat("o", 33) }},
		{"map entry, absent nested key", map[string]string{"BACKLOT_AUTHENTICATORS_STAFF_COOKIE_NAME": "sid"},
			func(c *Config) bool { return c.Authenticators["staff"].Cookie.Name == "sid" }},
		{"list item", map[string]string{"BACKLOT_WEBHOOKS_0_JOB": "b.event", "BACKLOT_WEBHOOKS_0_VERIFY_TOLERANCE": "1m"},
			func(c *Config) bool {
				return c.Webhooks[0].Job == "b.event" && c.Webhooks[0].Verify.Tolerance.D() == time.Minute
			}},
		{"list of scalars, comma separated", map[string]string{"BACKLOT_CORS_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com"},
			func(c *Config) bool {
				return reflect.DeepEqual(c.CORS.AllowedOrigins, []string{"https://a.example.com", "https://b.example.com"})
			}},
		{"int", map[string]string{"BACKLOT_SERVER_MAX_BODY_BYTES": "2048"},
			func(c *Config) bool { return c.Server.MaxBodyBytes == 2048 && c.Webhooks[0].MaxBodyBytes == 2048 }},
		{"duration", map[string]string{"BACKLOT_JOBS_TIMEOUT": "30s", "BACKLOT_SERVER_SHUTDOWN_TIMEOUT": "1m"},
			func(c *Config) bool {
				return c.Jobs.Timeout.D() == 30*time.Second && c.Server.ShutdownTimeout.D() == time.Minute
			}},
		{"bool and *bool", map[string]string{"BACKLOT_SERVER_HTTP_OVERRIDE": "true", "BACKLOT_SERVER_LISTEN": ":9000", "BACKLOT_SERVER_HEADERS_HSTS": "false"},
			func(c *Config) bool {
				return c.Server.HTTPOverride && c.Server.Headers.HSTS != nil && !*c.Server.Headers.HSTS
			}},
		{"map entry in a new map", map[string]string{"BACKLOT_JOBS_QUEUES_DEFAULT_CONCURRENCY": "3"},
			func(c *Config) bool { return c.Jobs.Queues == nil || c.Jobs.Queues["default"].Concurrency == 20 }}, // no such entry in the file: ignored
		{"unmatched names ignored", map[string]string{"BACKLOT_KEY_K1": "x", "BACKLOT_NOPE": "1", "BACKLOT_SERVER": "x", "BACKLOT_": "x"},
			func(c *Config) bool { return c.Server.Listen == "127.0.0.1:8080" }},
		{"override is literal", map[string]string{"BACKLOT_STORE_URL": "sqlite://${X}.db"},
			func(c *Config) bool { return c.Store.URL == "sqlite://${X}.db" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, base, tt.env)
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}

	t.Run("fills a null section and a null map entry", func(t *testing.T) {
		t.Parallel()
		c := mustLoadBuilt(t, local+"store:\nupstreams:\n  pay:\n", map[string]string{
			"BACKLOT_STORE_URL":              "sqlite://null.db",
			"BACKLOT_UPSTREAMS_PAY_BASE_URL": "https://pay.example",
		})
		if c.Store.URL != "sqlite://null.db" || c.Upstreams["pay"].BaseURL != "https://pay.example" {
			t.Errorf("store %+v, upstreams %+v", c.Store, c.Upstreams)
		}
	})
	t.Run("replaces a section of the wrong type", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, "server: 5\n", map[string]string{"BACKLOT_SERVER_LISTEN": "127.0.0.1:7000"})
		if c.Server.Listen != "127.0.0.1:7000" {
			t.Errorf("listen = %q", c.Server.Listen)
		}
	})
	t.Run("replaces an unset variable", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, hs256Users, map[string]string{"BACKLOT_AUTHENTICATORS_USERS_SECRET": strings.Repeat("e", 32)})
		if c.Authenticators["users"].Secret != strings.Repeat("e", 32) {
			t.Errorf("secret = %q", c.Authenticators["users"].Secret)
		}
	})
	t.Run("variable used by ${} is not an override", func(t *testing.T) {
		t.Parallel()
		key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
		c := mustLoad(t, local+"keys:\n  - {id: k1, secret: \"${BACKLOT_KEY_K1}\"}\n", map[string]string{"BACKLOT_KEY_K1": key})
		if c.Keys[0].Secret != key {
			t.Errorf("keys[0].secret = %q", c.Keys[0].Secret)
		}
	})
	bad := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad int", map[string]string{"BACKLOT_SERVER_MAX_BODY_BYTES": "abc"},
			`$BACKLOT_SERVER_MAX_BODY_BYTES: server.max_body_bytes: want an integer, got "abc"`},
		{"bad duration", map[string]string{"BACKLOT_JOBS_RETRY_BASE": "fast"},
			`$BACKLOT_JOBS_RETRY_BASE: jobs.retry.base: want a duration such as 30s or 1h, got "fast"`},
		{"bad bool", map[string]string{"BACKLOT_SERVER_HTTP_OVERRIDE": "sure"},
			`$BACKLOT_SERVER_HTTP_OVERRIDE: server.http_override: want true or false, got "sure"`},
		{"invalid value caught by Validate", map[string]string{"BACKLOT_STORE_URL": "mysql://x"},
			"$BACKLOT_STORE_URL: store.url: want sqlite://<path> or postgres://…"},
		{"invalid map entry value", map[string]string{"BACKLOT_AUTHENTICATORS_USERS_SECRET": "short"},
			"$BACKLOT_AUTHENTICATORS_USERS_SECRET: authenticators.users.secret: must be at least 32 bytes (got 5)"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, base, tt.env)
			wantErr(t, err, tt.want)
		})
	}
}

func TestLoadAliasesAndMerges(t *testing.T) {
	t.Parallel()
	yaml := local + `upstreams:
  a: &up {base_url: "https://a.example", timeout: 3s}
  b:
    <<: *up
    base_url: "https://b.example"
  c: *up
`
	c := mustLoadBuilt(t, yaml, nil)
	if c.Upstreams["b"].BaseURL != "https://b.example" || c.Upstreams["b"].Timeout.D() != 3*time.Second {
		t.Errorf("merge: %+v", c.Upstreams["b"])
	}
	if !reflect.DeepEqual(c.Upstreams["c"], c.Upstreams["a"]) {
		t.Errorf("alias: %+v vs %+v", c.Upstreams["c"], c.Upstreams["a"])
	}
	_, err := loadBuilt(t, local+"upstreams:\n  a: &up {base_url: x, tmeout: 3s}\n  b: *up\n", nil)
	wantErr(t, err, `upstreams.a.tmeout: unknown key (did you mean "timeout"?)`, `upstreams.b.tmeout: unknown key`)
}

func TestLoadAliasBomb(t *testing.T) {
	t.Parallel()
	// "Billion laughs": 1000 routes, each an alias of one route whose auth
	// list is an alias of 1000 names, is a million nodes from a small file.
	var b strings.Builder
	b.WriteString(local + "cors:\n  allowed_headers: &names [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("x")
	}
	b.WriteString("]\nconsole: {auth: *names}\nroutes:\n  - &r {match: GET /x, auth: *names}\n")
	for range 1000 {
		b.WriteString("  - *r\n")
	}
	_, err := load(t, b.String(), nil)
	wantErr(t, err, "document too large after alias expansion (over 100000 nodes)")
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := mustLoadBuilt(t, `server:
  listen: ":8080"
  http_override: true
authenticators:
  users: {type: hs256, secret: "`+strings.Repeat("x", 32)+`"}
  ext: {type: jwks, jwks_url: "https://example.com/jwks.json"}
  stripe: {type: stripe_app, secrets: [absec_1]}
  staff: {type: session, login: users}
connections:
  acme: {authorize_url: "https://a.example/auth", token_url: "https://a.example/token", client_id: c, auth: [users]}
keys:
  - {id: k1, secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
upstreams:
  pay: {base_url: "https://pay.example"}
routes:
  - {match: "GET /x", auth: [users], upstream: pay, credential: {lookup: {url: "https://mw.example/u", secret: s}}}
webhooks:
  - {path: /webhooks/fwd, verify: {scheme: hmac, secrets: [s], header: X-Sig}, forward: {url: "https://app.example/h", secret: "whsec_c2VjcmV0"}}
  - {path: /webhooks/std, verify: {scheme: standard, secrets: ["whsec_c2VjcmV0"]}, job: std}
schedules:
  - {name: n, cron: "@daily", job: j}
`, nil)
	s := c.Server
	if s.Listen != ":8080" || s.PublicURL != "http://localhost:8080" || s.MaxBodyBytes != 1048576 ||
		s.Headers.CSP != "default-src 'none'; frame-ancestors 'none'" || s.Headers.HSTS == nil || !*s.Headers.HSTS ||
		s.Headers.ReferrerPolicy != "no-referrer" || s.ShutdownTimeout.D() != 10*time.Second {
		t.Errorf("server defaults: %+v", s)
	}
	if c.Store.URL != "sqlite://backlot.db" {
		t.Errorf("store.url = %q", c.Store.URL)
	}
	if !reflect.DeepEqual(c.CORS.AllowedMethods, []string{"GET", "POST"}) ||
		!reflect.DeepEqual(c.CORS.AllowedHeaders, []string{"Authorization", "Content-Type", "X-CSRF-Token"}) ||
		c.CORS.MaxAge.D() != 10*time.Minute {
		t.Errorf("cors defaults: %+v", c.CORS)
	}
	if a := c.Authenticators["users"]; a.TTL.D() != 15*time.Minute || a.InvalidStatus != 401 {
		t.Errorf("hs256 defaults: %+v", a)
	}
	if a := c.Authenticators["ext"]; !reflect.DeepEqual(a.Algorithms, []string{"RS256"}) ||
		a.Claims != (ClaimsMap{Subject: "sub", Tenant: "tenant", Email: "email", Scopes: "scope"}) {
		t.Errorf("jwks defaults: %+v", a)
	}
	if a := c.Authenticators["stripe"]; a.Tolerance.D() != 5*time.Minute {
		t.Errorf("stripe_app defaults: %+v", a)
	}
	if a := c.Authenticators["staff"]; a.TTL.D() != 12*time.Hour || a.Cookie.Name != "backlot_session" ||
		a.Cookie.Secure == nil || !*a.Cookie.Secure || a.Cookie.SameSite != "lax" || a.Cookie.Path != "/" {
		t.Errorf("session defaults: %+v", a)
	}
	if cn := c.Connections["acme"]; cn.PKCE == nil || !*cn.PKCE {
		t.Errorf("connection defaults: %+v", cn)
	}
	if u := c.Upstreams["pay"]; u.Timeout.D() != 10*time.Second || u.RetryCount() != 2 || u.AllowPrivate {
		t.Errorf("upstream defaults: %+v", u)
	}
	if r := c.Routes[0]; r.Path != "/x" || r.Credential.Lookup.Field != "access_token" || r.Credential.Lookup.AllowPrivate {
		t.Errorf("route defaults: %+v %+v", r, r.Credential.Lookup)
	}
	w := c.Webhooks[0]
	if w.Job != "webhook.webhooks-fwd" || w.Queue != "default" || w.Dedupe != "none" || w.MaxBodyBytes != 1048576 ||
		w.Verify.Tolerance.D() != 5*time.Minute || w.Verify.Encoding != "hex" || w.Verify.Algorithm != "sha256" ||
		w.Forward.Timeout.D() != 10*time.Second {
		t.Errorf("webhook defaults: %+v %+v", w, w.Forward)
	}
	if w := c.Webhooks[1]; w.Dedupe != "header:webhook-id" || w.Verify.Encoding != "" {
		t.Errorf("standard webhook defaults: %+v", w)
	}
	j := c.Jobs
	if !reflect.DeepEqual(j.Queues, map[string]Queue{"default": {Concurrency: 20}}) ||
		j.Retry != (Retry{MaxAttempts: 10, Backoff: "exponential", Base: Duration(time.Second), Max: Duration(time.Hour)}) ||
		j.Retention != (Retention{Completed: Duration(time.Hour), Failed: Duration(24 * time.Hour)}) ||
		j.Timeout.D() != time.Minute || j.Lease.D() != 10*time.Second {
		t.Errorf("jobs defaults: %+v", j)
	}
	if c.Schedules[0].Payload != "{}" {
		t.Errorf("schedule payload = %q", c.Schedules[0].Payload)
	}
}

func TestDerivePublicURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		listen string
		tls    bool
		want   string
	}{
		{":8080", false, "http://localhost:8080"},
		{"0.0.0.0:80", false, "http://localhost:80"},
		{"[::]:8443", true, "https://localhost:8443"},
		{"127.0.0.1:9000", false, "http://127.0.0.1:9000"},
		{"[::1]:9000", false, "http://[::1]:9000"},
		{"api.example.com:443", true, "https://api.example.com:443"},
		{"garbage", false, "http://localhost"},
	} {
		if got := derivePublicURL(tt.listen, tt.tls); got != tt.want {
			t.Errorf("derivePublicURL(%q, %v) = %q, want %q", tt.listen, tt.tls, got, tt.want)
		}
	}
}

func TestFullExample(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PG_PASSWORD":       "pw",
		"BACKLOT_KEY_K1":    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"JWT_SECRET":        strings.Repeat("j", 32),
		"STRIPE_APP_SECRET": "absec_x",
		"ST_SECRET":         "st", "ST_INTEG_SECRET": "sti", "ACME_SECRET": "acme", "MW_SECRET": "mw",
		"VENDOR_WHSEC":  "whsec_dmVuZG9y",
		"FORWARD_WHSEC": "whsec_Zm9yd2FyZA==",
		"STRIPE_WHSEC":  "whsec_stripe", "ERP_SECRET": "erp", "GH_SECRET": "gh",
	}
	full := filepath.Join("testdata", "full.yaml")
	c, err := loadWith(full, envMap(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Authenticators) != 6 || len(c.Webhooks) != 5 || len(c.Schedules) != 2 || len(c.Routes) != 2 {
		t.Errorf("sections: %d authenticators, %d webhooks, %d schedules, %d routes",
			len(c.Authenticators), len(c.Webhooks), len(c.Schedules), len(c.Routes))
	}
	if c.Store.URL != "postgres://backlot:pw@db.internal:5432/backlot" || c.Server.Headers.HSTS == nil || *c.Server.Headers.HSTS {
		t.Errorf("store %q, hsts %v", c.Store.URL, c.Server.Headers.HSTS)
	}
	if c.Webhooks[4].Job != "webhook.webhooks-forward-only" {
		t.Errorf("forward-only job = %q", c.Webhooks[4].Job)
	}
	if c.Authenticators["ops"].InvalidStatus != 403 {
		t.Errorf("ops invalid_status = %d", c.Authenticators["ops"].InvalidStatus)
	}
	// Every ${VAR} in the file is required.
	delete(env, "ERP_SECRET")
	_, err = loadWith(full, envMap(env), nil)
	wantErr(t, err, "full.yaml:57: webhooks[2].verify.secrets[0]: ${ERP_SECRET} is not set")
	// As this version ships, the keys it does not implement are refused,
	// each with its line, and nothing else is wrong with the file.
	env["ERP_SECRET"] = "erp"
	_, err = Load(full, envMap(env))
	if len(notYetAvailable()) == 0 {
		if err != nil {
			t.Fatalf("Load(full.yaml) = %v, want it accepted (every key is built)", err)
		}
		return
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load(full.yaml) = %v, want the not-yet-available keys refused", err)
	}
	for _, is := range ce.Issues {
		if is.Msg != unavailableMsg || is.Line == 0 {
			t.Errorf("unexpected issue %s", is)
		}
	}
	// full.yaml sets every key of the table once.
	if want := len(notYetAvailable()); len(ce.Issues) != want {
		t.Errorf("%d issues, want %d (one per key of notYetAvailable):\n%v", len(ce.Issues), want, err)
	}
}

func TestQuickstartExample(t *testing.T) {
	t.Parallel()
	// No secrets and no environment: the quickstart must load as is.
	c, err := Load(filepath.Join("..", "examples", "quickstart", "backlot.yaml"), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Store.URL != "sqlite://backlot.db" ||
		c.Authenticators["demo"].Type != AuthAPIKey || len(c.Webhooks) != 1 || c.Webhooks[0].Path != "/webhooks/demo" ||
		!reflect.DeepEqual(c.CORS.AllowedOrigins, []string{"http://localhost:3000"}) {
		t.Errorf("quickstart: %+v", c)
	}
}
