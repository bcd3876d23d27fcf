package connect

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/stripesig"
	"github.com/backlothq/backlot/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	appSecret = "absec_test_0123456789abcdef"
	connName  = "acme"
	clientID  = "backlot-client"
	clientSec = "backlot-client-secret"
	returnTo  = "https://dashboard.stripe.com/apps/return"
)

// env is one backlot-side connection set over a real store, talking to a
// real simulator on loopback.
type env struct {
	t      *testing.T
	sim    *oauth.Server
	simURL string
	st     store.Store
	keys   *secrets.Keyring
	set    *Set
	conn   *Conn
	eng    *engine.Engine
	clock  *testutil.Clock
	url    string // backlot's base URL
	logs   *syncBuffer
	reg    *prometheus.Registry
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testKey(id string, fill byte) config.Key {
	return config.Key{ID: id, Secret: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32))}
}

type envOpts struct {
	store   store.Store
	keys    []config.Key
	simOpts oauth.Options
	tweak   func(*config.Connection)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, clock: testutil.NewClock(time.Now()), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	e.st = o.store
	if e.st == nil {
		e.st = testutil.SQLite(t)
	}
	if o.keys == nil {
		o.keys = []config.Key{testKey("k1", 1)}
	}
	var err error
	if e.keys, err = secrets.NewKeyring(o.keys); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	bl := httptest.NewServer(mux)
	t.Cleanup(bl.Close)
	e.url = bl.URL

	simOpts := o.simOpts
	simOpts.Clients = []oauth.Client{{ID: clientID, Secret: clientSec, RedirectURIs: []string{bl.URL + "/connect/" + connName + "/callback"}, RequirePKCE: true}}
	e.sim = oauth.New(simOpts)
	sim := httptest.NewServer(e.sim)
	t.Cleanup(sim.Close)
	e.simURL = sim.URL

	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0", PublicURL: bl.URL},
		Store:  config.Store{URL: "sqlite://unused.db"},
		Keys:   o.keys,
		Authenticators: map[string]config.Authenticator{
			"stripe": {Type: config.AuthStripeApp, Secrets: []string{appSecret}},
		},
		Connections: map[string]config.Connection{connName: {
			AuthorizeURL: sim.URL + oauth.RouteAuthorize, TokenURL: sim.URL + oauth.RouteToken,
			RevokeURL: sim.URL + oauth.RouteRevoke, UserinfoURL: sim.URL + oauth.RouteUserinfo,
			ClientID: clientID, ClientSecret: clientSec, Scopes: []string{"read"},
			Auth: []string{"stripe"}, ReturnTo: returnTo, RequireVerifiedEmail: true,
			OnExpired: "connection.expired", OnRecovered: "connection.recovered",
		}},
	}
	if o.tweak != nil {
		cn := cfg.Connections[connName]
		o.tweak(&cn)
		cfg.Connections[connName] = cn
	}
	if err := cfg.Prepare(); err != nil {
		t.Fatalf("config: %v", err)
	}
	as, err := authn.NewSet(cfg.Authenticators, nil, authn.Deps{Logger: log, Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	// The engine only enqueues here (never started): jobs stay available
	// for the test to count.
	if e.eng, err = engine.New(cfg.Jobs, nil, e.st, engine.Deps{Logger: log}); err != nil {
		t.Fatal(err)
	}
	e.set, err = New(cfg.Connections, Deps{
		Store: e.st, Keys: e.keys, Auth: as, Enqueuer: e.eng, PublicURL: bl.URL,
		Logger: log, Metrics: e.reg, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Register(mux)
	e.conn = e.set.Get(connName)
	return e
}

// browser is one user agent: its own cookie jar, no redirects followed.
type browser struct {
	user, account string
	c             *http.Client
}

func newBrowser(t *testing.T, user, account string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{user: user, account: account, c: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) principal() *auth.Principal {
	return &auth.Principal{Authenticator: "stripe", Subject: b.user, Tenant: b.account}
}

func (b *browser) signature() string {
	return stripesig.Sign([]byte(appSecret), []byte(authn.StripeAppPayload(b.user, b.account)), time.Now())
}

// do sends a request signed as the Stripe App does (headers).
func (b *browser) do(t *testing.T, method, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", b.signature())
	req.Header.Set("Stripe-User-Id", b.user)
	req.Header.Set("Stripe-Account-Id", b.account)
	return b.send(t, req)
}

func (b *browser) get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.send(t, req)
}

func (b *browser) send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// startLogin is the browser's GET login with the credential in the query;
// it returns the authorize URL backlot redirected to.
func (e *env) startLogin(t *testing.T, b *browser) *url.URL {
	t.Helper()
	q := url.Values{"user_id": {b.user}, "account_id": {b.account}, "signature": {b.signature()}}
	resp, body := b.get(t, e.url+"/connect/"+connName+"/login?"+q.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// consent answers the simulator's consent page: it returns the callback
// URL the simulator redirects to.
func (e *env) consent(t *testing.T, b *browser, authz *url.URL, user, decision string) string {
	t.Helper()
	form := authz.Query()
	form.Set("user", user)
	form.Set("decision", decision)
	req, _ := http.NewRequest(http.MethodPost, e.simURL+oauth.RouteAuthorize, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := b.send(t, req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: %d %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// connect runs the whole login for b as the simulator's user.
func (e *env) connect(t *testing.T, b *browser, user string) {
	t.Helper()
	cb := e.consent(t, b, e.startLogin(t, b), user, "approve")
	resp, body := b.get(t, cb)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnTo {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
}

// row reads b's connection row; ok false when there is none.
func (e *env) row(b *browser) (store.Connection, bool) {
	e.t.Helper()
	scope, err := e.conn.scope(b.principal())
	if err != nil {
		e.t.Fatal(err)
	}
	row, err := e.st.GetConnection(context.Background(), scope, connName)
	if err != nil {
		return store.Connection{}, false
	}
	return row, true
}

// tokensOf opens b's row.
func (e *env) tokensOf(b *browser) tokens {
	e.t.Helper()
	row, ok := e.row(b)
	if !ok {
		e.t.Fatal("no connection row")
	}
	tk, err := e.conn.open(row)
	if err != nil {
		e.t.Fatal(err)
	}
	return tk
}

// jobs counts enqueued jobs of kind.
func (e *env) jobs(kind string) int {
	e.t.Helper()
	js, err := e.st.ListJobs(context.Background(), store.JobFilter{Kind: kind})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(js)
}

// envelope decodes an error envelope.
func envelope(t *testing.T, body []byte) (status int, code string) {
	t.Helper()
	var env struct {
		ErrorCode int    `json:"error_code"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("not an envelope: %s", body)
	}
	return env.ErrorCode, env.Error
}

// actor is how the audit log names this browser's user.
func (b *browser) actor() string { return "stripe:" + b.user }
