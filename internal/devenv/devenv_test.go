package devenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/devenv"
	"github.com/backlothq/backlot/internal/devenv/devapp"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/internal/webhook"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// start runs an environment in dir on free ports, closed at cleanup.
func start(t testing.TB, dir string, edit func(*devenv.Options)) *devenv.Env {
	t.Helper()
	opts := devenv.Options{Dir: dir}
	devapp.Wire(&opts)
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stop(t, env) })
	return env
}

func stop(t testing.TB, env *devenv.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := env.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return m
}

func do(t testing.TB, c *http.Client, method, u string, body []byte, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return answer{res.StatusCode, res.Header, b}
}

func TestStartServesEverything(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	env := start(t, dir, nil)

	if env.StartDuration <= 0 || env.StartDuration > 10*time.Second {
		t.Errorf("StartDuration = %v", env.StartDuration)
	}
	if a := do(t, nil, "GET", env.URLs.Backlot+"/readyz", nil, nil); a.status != 200 {
		t.Errorf("readyz: %d %s", a.status, a.body)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, devenv.SecretsFile): 0o600, filepath.Join(dir, "backlot.db"): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}

	// Every simulator answers an unknown route with JSON naming what it
	// knows, and has its reset and fault controls on its own port.
	sims := []struct {
		name, base, faultsMethod, faultsPath string
		faultBody                            string
	}{
		{"marketplace", env.URLs.Marketplace, "GET", "/_sim/faults", ""},
		{"oauth", env.URLs.OAuth, "GET", "/_sim/faults", ""},
		{"idv", env.URLs.IDV, "GET", "/_sim/faults", ""},
		{"payments", env.URLs.Payments, "POST", "/_sim/faults", `{"route":"/account","status":503}`},
		{"partner", env.URLs.Partner, "POST", "/_sim/faults", `{"route":"/account","status":503}`},
		{"issuer", env.URLs.Issuer, "GET", "/_sim/faults", ""},
	}
	for _, s := range sims {
		t.Run(s.name, func(t *testing.T) {
			a := do(t, nil, "POST", s.base+"/no/such/route", []byte(`{}`), map[string]string{"Content-Type": "application/json"})
			if a.status < 400 || !strings.Contains(string(a.body), "not_simulated") {
				t.Errorf("unknown route: %d %s", a.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("unknown route: Content-Type %q", ct)
			}
			a = do(t, nil, s.faultsMethod, s.base+s.faultsPath, []byte(s.faultBody), map[string]string{"Content-Type": "application/json"})
			if a.status/100 != 2 {
				t.Errorf("%s %s: %d %s", s.faultsMethod, s.faultsPath, a.status, a.body)
			}
			a = do(t, nil, "POST", s.base+"/_sim/reset", nil, nil)
			if a.status/100 != 2 {
				t.Errorf("reset: %d %s", a.status, a.body)
			}
		})
	}

	// The demo page has its own CSP (backlot's API one allows nothing).
	a := do(t, nil, "GET", env.URLs.Demo, nil, nil)
	if a.status != 200 || !strings.Contains(string(a.body), "backlot dev") {
		t.Fatalf("demo page: %d %s", a.status, a.body)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("demo page CSP %q", csp)
	}
	if a := do(t, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, "GET", env.URLs.Backlot+"/", nil, nil); a.status != http.StatusFound || a.header.Get("Location") != "/_dev/" {
		t.Errorf("GET /: %d Location %q", a.status, a.header.Get("Location"))
	}

	// The demo API's unsafe calls refuse another site's page.
	// (api/idv/start is behind the marketplace user's cookie, refused
	// cross-site by the authenticator: TestIDVerification.)
	for _, path := range []string{"api/staff-token", "api/queue/send", "api/reset-simulators"} {
		a := do(t, nil, "POST", env.URLs.Demo+path, nil, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
		if a.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, a.status)
		}
	}

	var out bytes.Buffer
	if err := env.PrintSummary(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{env.URLs.Demo, env.URLs.Marketplace, env.URLs.OAuth, env.URLs.IDV, env.URLs.Payments, env.URLs.Partner, env.URLs.Issuer, env.Secrets.WebhookSecret, "alice@backlot.dev",
		env.URLs.Backlot + "/_/", env.URLs.Demo + "api/staff-token", "marketplace.event"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// TestGeneratedConfig checks the wiring of each recipe in the generated
// configuration.
func TestGeneratedConfig(t *testing.T) {
	t.Parallel()
	env := start(t, t.TempDir(), nil)
	cfg := env.Config()
	types := map[string]string{}
	for name, a := range cfg.Authenticators {
		types[name] = a.Type
	}
	for name, typ := range map[string]string{"stripe": "stripe_app", "staff_tokens": "hs256", "staff": "session", "extension": "jwks", "shoppers": "sharetribe"} {
		if types[name] != typ {
			t.Errorf("authenticator %s: type %q, want %q", name, types[name], typ)
		}
	}
	var idv *config.Webhook
	for i := range cfg.Webhooks {
		if cfg.Webhooks[i].Path == "/webhooks/idv" {
			idv = &cfg.Webhooks[i]
		}
	}
	if idv == nil || idv.Verify.Scheme != "none" || len(idv.AllowIPs) != 1 || idv.AllowIPs[0] != "127.0.0.2/32" {
		t.Errorf("idv webhook: %+v", idv)
	}
	if c, ok := cfg.Connections["acme"]; !ok || c.Auth[0] != "stripe" || !strings.HasPrefix(c.AuthorizeURL, env.URLs.OAuth) {
		t.Errorf("connection acme: %+v", c)
	}
	if !strings.Contains(strings.Join(cfg.CORS.AllowedOrigins, " "), env.URLs.Backlot) {
		t.Errorf("CORS origins %v lack the demo page's %s", cfg.CORS.AllowedOrigins, env.URLs.Backlot)
	}

	// An address other than the vendor's is refused at the idv webhook.
	a := do(t, nil, "POST", env.URLs.Backlot+"/webhooks/idv", []byte("a=b"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if a.status != http.StatusForbidden || a.json(t)["error"] != "forbidden_source" {
		t.Errorf("idv webhook from 127.0.0.1: %d %s", a.status, a.body)
	}
}

// signed posts a Standard Webhooks delivery to the queue endpoint.
func signed(t testing.TB, env *devenv.Env, secret, id string) answer {
	t.Helper()
	s, err := webhook.NewStandardSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"test","id":"` + id + `"}`)
	ts := time.Now().Unix()
	return do(t, nil, "POST", env.URLs.Backlot+"/webhooks/queue", body, map[string]string{
		"Content-Type":      "application/json",
		"webhook-id":        id,
		"webhook-timestamp": strconv.FormatInt(ts, 10),
		"webhook-signature": s.Sign(id, ts, body),
	})
}

func jobCount(t testing.TB, env *devenv.Env) int {
	t.Helper()
	a := do(t, nil, "GET", env.URLs.Demo+"api/jobs", nil, nil)
	if a.status != 200 {
		t.Fatalf("jobs: %d %s", a.status, a.body)
	}
	return len(a.json(t)["jobs"].([]any))
}

func staffSession(t testing.TB, env *devenv.Env) *http.Client {
	t.Helper()
	a := do(t, nil, "POST", env.URLs.Demo+"api/staff-token", nil, nil)
	if a.status != 200 {
		t.Fatalf("staff token: %d %s", a.status, a.body)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	s := do(t, c, "POST", env.URLs.Backlot+"/auth/session", nil, map[string]string{"Authorization": "Bearer " + a.json(t)["token"].(string)})
	if s.status != 200 {
		t.Fatalf("session login: %d %s", s.status, s.body)
	}
	return c
}

func whoami(t testing.TB, env *devenv.Env, c *http.Client) answer {
	t.Helper()
	return do(t, c, "GET", env.URLs.Backlot+"/auth/whoami", nil, nil)
}

// TestRestartKeepsSecrets: a second start in the same directory reads the
// same secrets, so what the first run handed out (a session cookie, a
// webhook secret, merchants' tokens) still works.
func TestRestartKeepsSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := start(t, dir, nil)
	if !env.SecretsCreated {
		t.Error("first start: SecretsCreated false")
	}
	file := filepath.Join(dir, devenv.SecretsFile)
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	whsec := env.Secrets.WebhookSecret
	if !strings.HasPrefix(whsec, "whsec_") {
		t.Errorf("webhook secret %q", whsec)
	}
	merchants := env.Merchants
	client := staffSession(t, env)
	if a := whoami(t, env, client); a.status != 200 {
		t.Fatalf("whoami in run 1: %d %s", a.status, a.body)
	}
	stop(t, env)

	env2 := start(t, dir, nil)
	if env2.SecretsCreated {
		t.Error("second start: SecretsCreated true")
	}
	after, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("secrets file changed across a restart:\n%s\n%s", before, after)
	}
	if env2.Secrets.WebhookSecret != whsec {
		t.Errorf("whsec changed: %q → %q", whsec, env2.Secrets.WebhookSecret)
	}
	if a := signed(t, env2, whsec, "msg_restart"); a.status != http.StatusAccepted {
		t.Errorf("webhook signed with run 1's secret: %d %s", a.status, a.body)
	}
	// The session cookie from run 1 is good in run 2 (same database and keys).
	if a := whoami(t, env2, client); a.status != 200 || a.json(t)["authenticator"] != "staff" {
		t.Errorf("whoami with run 1's session: %d %s", a.status, a.body)
	}
	for i, m := range env2.Merchants {
		if m.AccessToken != merchants[i].AccessToken {
			t.Errorf("merchant %s: access token changed across a restart", m.Email)
		}
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := start(t, dir, nil)
	secrets := *env.Secrets
	if a := signed(t, env, secrets.WebhookSecret, "msg_1"); a.status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	client := staffSession(t, env)
	if n := jobCount(t, env); n != 1 {
		t.Fatalf("jobs before reset: %d, want 1", n)
	}
	stop(t, env)

	// --reset: no data, same secrets.
	env = start(t, dir, func(o *devenv.Options) { o.Reset = true })
	if n := jobCount(t, env); n != 0 {
		t.Errorf("jobs after --reset: %d, want 0", n)
	}
	if *env.Secrets != secrets {
		t.Error("--reset changed the secrets")
	}
	if a := whoami(t, env, client); a.status != http.StatusUnauthorized {
		t.Errorf("run 1's session after --reset: %d %s, want 401", a.status, a.body)
	}
	// The same delivery id is new again: the dedupe keys went with the data.
	if a := signed(t, env, secrets.WebhookSecret, "msg_1"); a.status != http.StatusAccepted {
		t.Errorf("webhook after --reset: %d %s", a.status, a.body)
	}
	stop(t, env)

	// --reset-secrets: new secrets; the old whsec is refused.
	env = start(t, dir, func(o *devenv.Options) { o.ResetSecrets = true })
	if env.Secrets.WebhookSecret == secrets.WebhookSecret || env.Secrets.KeyringKey == secrets.KeyringKey || env.Secrets.HS256Secret == secrets.HS256Secret {
		t.Error("--reset-secrets kept secrets")
	}
	if !env.SecretsCreated {
		t.Error("--reset-secrets: SecretsCreated false")
	}
	if n := jobCount(t, env); n != 0 {
		t.Errorf("jobs after --reset-secrets: %d, want 0", n)
	}
	if a := signed(t, env, secrets.WebhookSecret, "msg_2"); a.status != http.StatusUnauthorized {
		t.Errorf("webhook signed with the old secret: %d %s, want 401", a.status, a.body)
	}
}

func TestStartRefuses(t *testing.T) {
	t.Parallel()
	// A port of the range in use: the error names it and its service,
	// and every listener opened before it is released.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := hold.Addr().(*net.TCPAddr).Port

	open := t.TempDir()
	if err := os.WriteFile(filepath.Join(open, devenv.SecretsFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, devenv.SecretsFile), []byte(`{"nope": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts devenv.Options
		want []string
	}{
		{"backlot port taken", devenv.Options{Port: held}, []string{"port " + strconv.Itoa(held) + " for the backlot", "--port"}},
		{"simulator port taken", devenv.Options{Port: held - 3}, []string{"port " + strconv.Itoa(held) + " for the ID-verification simulator"}},
		{"negative port", devenv.Options{Port: -1}, []string{"port -1"}},
		{"port too high", devenv.Options{Port: 65535}, []string{"port 65535"}},
		{"secrets readable by others", devenv.Options{Dir: open}, []string{"readable by others", "chmod 600"}},
		{"secrets file unreadable", devenv.Options{Dir: bad}, []string{"--reset-secrets"}},
		{"dir is a file", devenv.Options{Dir: notDir}, []string{"not a directory"}},
		{"no New", devenv.Options{IDVerification: devapp.IDVerification}, []string{"Options.New and Options.IDVerification are required"}},
		{"no IDVerification", devenv.Options{New: devapp.New}, []string{"Options.New and Options.IDVerification are required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			if o.Dir == "" {
				o.Dir = t.TempDir()
			}
			if o.New == nil && o.IDVerification == nil {
				devapp.Wire(&o)
			}
			env, err := devenv.Start(context.Background(), o)
			if err == nil {
				stop(t, env)
				t.Fatal("Start succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// The listeners the refused starts opened were released: the ports
	// below the held one (opened before it was found taken) can be bound.
	// (Starting the whole range again raced other tests' ephemeral ports.)
	for p := held - 3; p < held; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d still held after a refused start: %v", p, err)
			continue
		}
		l.Close()
	}
}

// TestMarketplaceResetReseeds: in development, the marketplace's reset
// comes back to the demo users, who can log in with their password.
func TestMarketplaceResetReseeds(t *testing.T) {
	t.Parallel()
	env := start(t, t.TempDir(), nil)
	login := func() answer {
		form := url.Values{"client_id": {"backlot-dev-marketplace"}, "grant_type": {"password"}, "scope": {"user"},
			"username": {env.DemoUsers()[0].Email}, "password": {env.DemoUsers()[0].Password}}
		return do(t, nil, "POST", env.URLs.Marketplace+"/v1/auth/token", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	}
	if a := login(); a.status != 200 {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	if a := do(t, nil, "POST", env.URLs.Marketplace+"/_sim/reset", nil, nil); a.status/100 != 2 {
		t.Fatalf("reset: %d %s", a.status, a.body)
	}
	time.Sleep(1100 * time.Millisecond) // the dev rate limit: one query a second
	if a := login(); a.status != 200 {
		t.Errorf("login after reset: %d %s", a.status, a.body)
	}
	// The demo page's reset does the same for every simulator.
	if a := do(t, nil, "POST", env.URLs.Demo+"api/reset-simulators", nil, nil); a.status != 200 {
		t.Fatalf("reset simulators: %d %s", a.status, a.body)
	}
	time.Sleep(1100 * time.Millisecond)
	if a := login(); a.status != 200 {
		t.Errorf("login after the demo page's reset: %d %s", a.status, a.body)
	}
}

// BenchmarkDevStart measures the time from Start to backlot ready, on a
// fresh directory each time (secrets generated, database migrated).
func BenchmarkDevStart(b *testing.B) {
	var total time.Duration
	for b.Loop() {
		env := startBench(b, b.TempDir())
		total += env.StartDuration
		stop(b, env)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
}

// BenchmarkDevRestart is the same with the directory of an earlier run:
// secrets read back, schema already current.
func BenchmarkDevRestart(b *testing.B) {
	dir := b.TempDir()
	stop(b, startBench(b, dir))
	var total time.Duration
	for b.Loop() {
		env := startBench(b, dir)
		total += env.StartDuration
		stop(b, env)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
}

func startBench(b *testing.B, dir string) *devenv.Env {
	env, err := devenv.Start(context.Background(), devenv.Options{Dir: dir, New: devapp.New, IDVerification: devapp.IDVerification})
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// TestSecretsFileGainsMissing: a secrets file from an older version (some
// secrets missing) keeps what it has and gains the rest.
func TestSecretsFileGainsMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const whsec = "whsec_c2VjcmV0LWZyb20tYW4tb2xkZXItdmVyc2lvbg=="
	file := filepath.Join(dir, devenv.SecretsFile)
	if err := os.WriteFile(file, []byte(`{"webhook_secret":"`+whsec+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := start(t, dir, nil)
	if env.SecretsCreated {
		t.Error("SecretsCreated true for an existing file")
	}
	if env.Secrets.WebhookSecret != whsec {
		t.Errorf("webhook secret %q, want the file's", env.Secrets.WebhookSecret)
	}
	if env.Secrets.KeyringKey == "" || env.Secrets.IDVAPISecret == "" {
		t.Error("missing secrets were not generated")
	}
	var onDisk devenv.Secrets
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk != *env.Secrets {
		t.Errorf("file not updated with the generated secrets:\n%s", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("rewritten secrets file mode %04o", st.Mode().Perm())
	}
	if a := signed(t, env, whsec, "msg_old"); a.status != http.StatusAccepted {
		t.Errorf("webhook signed with the kept secret: %d %s", a.status, a.body)
	}
}
