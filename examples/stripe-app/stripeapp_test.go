// Package stripeapp tests the stripe-app recipe end to end: the built
// backlot binary serving examples/stripe-app/backlot.yaml against the OAuth
// simulator, with requests signed as a Stripe App signs them.
package stripeapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	appSecret    = "absec_recipe_test_secret"
	clientID     = "stripe-app-test"
	clientSecret = "stripe-app-test-secret"
	returnTo     = "https://dashboard.stripe.com/test/apps"
	keyK1        = "cmVjaXBlLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
)

// stripeSignature is what fetchStripeSignature returns for user and
// account: t=<unix>,v1=hex(HMAC-SHA256(secret, t + "." + payload)) over
// {"user_id":…,"account_id":…} in that key order.
func stripeSignature(user, account string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(ts + "." + `{"user_id":"` + user + `","account_id":"` + account + `"}`))
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// stripeUser is one Stripe dashboard user with a browser.
type stripeUser struct {
	user, account string
	c             *http.Client
}

func newStripeUser(t *testing.T, user, account string) *stripeUser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &stripeUser{user: user, account: account, c: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// call is the app's useFetchWithCredentials: signed headers.
func (u *stripeUser) call(method, target string) (int, []byte, error) {
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Stripe-Signature", stripeSignature(u.user, u.account, time.Now()))
	req.Header.Set("Stripe-User-Id", u.user)
	req.Header.Set("Stripe-Account-Id", u.account)
	return u.send(req)
}

func (u *stripeUser) send(req *http.Request) (int, []byte, error) {
	resp, err := u.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// connect is the browser's journey: the app's login link, the third
// party's consent page, the callback, back to the Stripe dashboard.
func (u *stripeUser) connect(t *testing.T, base, simURL, as string) {
	t.Helper()
	q := url.Values{"user_id": {u.user}, "account_id": {u.account}, "signature": {stripeSignature(u.user, u.account, time.Now())}}
	req, _ := http.NewRequest(http.MethodGet, base+"/connect/acme/login?"+q.Encode(), nil)
	resp, err := u.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	authz, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(authz.String(), simURL+"/authorize?") {
		t.Fatalf("login redirected to %q", authz)
	}
	form := authz.Query()
	form.Set("user", as)
	form.Set("decision", "approve")
	req, _ = http.NewRequest(http.MethodPost, simURL+"/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = u.c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(cb, base+"/connect/acme/callback?") {
		t.Fatalf("consent: %d → %q", resp.StatusCode, cb)
	}
	req, _ = http.NewRequest(http.MethodGet, cb, nil)
	code, body, err := u.send(req)
	if err != nil || code != http.StatusSeeOther {
		t.Fatalf("callback: %d %s %v", code, body, err)
	}
}

func errorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error
}

// recipe starts the simulator and n backlot processes serving the recipe's
// YAML as shipped, on storeURL (empty: a SQLite file).
type recipe struct {
	sim    *oauth.Server
	simURL string
	bin    string
	cfg    string
	dir    string
	store  string
	ports  []int
	procs  []*testutil.Proc
}

func newRecipe(t *testing.T, n int, storeURL string) *recipe {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := &recipe{bin: testutil.BuildBacklot(t), cfg: filepath.Join(root, "examples", "stripe-app", "backlot.yaml"), dir: t.TempDir(), store: storeURL}
	if r.store == "" {
		r.store = "sqlite://" + filepath.Join(r.dir, "stripe-app.db")
	}
	var redirects []string
	for range n {
		p := testutil.FreePort(t)
		r.ports = append(r.ports, p)
		redirects = append(redirects, fmt.Sprintf("http://127.0.0.1:%d/connect/acme/callback", p))
	}
	r.sim = oauth.New(oauth.Options{Clients: []oauth.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: redirects, RequirePKCE: true}}})
	srv := httptest.NewServer(r.sim)
	t.Cleanup(srv.Close)
	r.simURL = srv.URL
	r.start(t)
	return r
}

func (r *recipe) start(t *testing.T) {
	t.Helper()
	r.procs = nil
	for _, port := range r.ports {
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		r.procs = append(r.procs, testutil.StartBacklot(t, testutil.BacklotCmd{
			Bin: r.bin, Dir: r.dir, URL: base,
			Args: []string{"serve", "--config", r.cfg},
			Env: []string{
				"BACKLOT_SERVER_LISTEN=127.0.0.1:" + strconv.Itoa(port),
				"BACKLOT_SERVER_PUBLIC_URL=" + base,
				"BACKLOT_STORE_URL=" + r.store,
				"BACKLOT_KEY_K1=" + keyK1,
				"STRIPE_APP_SECRET=" + appSecret,
				"ACME_URL=" + r.simURL,
				"ACME_CLIENT_ID=" + clientID,
				"ACME_CLIENT_SECRET=" + clientSecret,
				"RETURN_TO=" + returnTo,
				"ACME_ALLOW_PRIVATE=true",
			},
		}))
	}
}

func (r *recipe) stop() {
	for _, p := range r.procs {
		p.Kill()
	}
}

// TestRecipe: 401 until the user connects, then the third party's user
// (refused unless its email is verified); logout revokes and forgets.
func TestRecipe(t *testing.T) {
	t.Parallel()
	r := newRecipe(t, 1, "")
	base := r.procs[0].URL
	alice := newStripeUser(t, "usr_alice", "acct_1")

	code, body, err := alice.call("GET", base+"/connect/acme/userinfo")
	if err != nil || code != 401 || errorCode(body) != "not_connected" {
		t.Fatalf("before connecting: %d %s %v", code, body, err)
	}
	// A forged signature is refused.
	forged := &stripeUser{user: "usr_alice", account: "acct_2", c: alice.c}
	req, _ := http.NewRequest("GET", base+"/connect/acme/userinfo", nil)
	req.Header.Set("Stripe-Signature", stripeSignature("usr_alice", "acct_1", time.Now()))
	req.Header.Set("Stripe-User-Id", forged.user)
	req.Header.Set("Stripe-Account-Id", forged.account)
	if code, body, _ := alice.send(req); code != 401 || errorCode(body) != "invalid_token" {
		t.Fatalf("forged: %d %s", code, body)
	}

	alice.connect(t, base, r.simURL, "user-alice")
	code, body, err = alice.call("GET", base+"/connect/acme/userinfo")
	var info oauth.User
	if err != nil || code != 200 || json.Unmarshal(body, &info) != nil || info.ID != "user-alice" || info.Email != "alice@example.com" {
		t.Fatalf("userinfo: %d %s %v", code, body, err)
	}
	// The proxy route calls the third party's API with alice's token; the
	// token itself never comes back to the caller.
	code, body, err = alice.call("GET", base+"/api/acme/me")
	if err != nil || code != 200 || json.Unmarshal(body, &info) != nil || info.ID != "user-alice" {
		t.Fatalf("proxied with the connection's token: %d %s %v", code, body, err)
	}
	if strings.Contains(string(body), "access_token") {
		t.Fatalf("proxied answer carries a token: %s", body)
	}
	// The third party expires every access token: the route refreshes
	// once and retries, and the caller never sees the 401.
	refreshes := r.sim.Stats().TokenCallsByGrant["refresh_token"]
	r.sim.ExpireAccessTokens()
	if code, body, _ := alice.call("GET", base+"/api/acme/me"); code != 200 {
		t.Fatalf("proxied after the token expired: %d %s", code, body)
	}
	if got := r.sim.Stats().TokenCallsByGrant["refresh_token"]; got != refreshes+1 {
		t.Fatalf("refresh_token grants %d → %d, want one refresh", refreshes, got)
	}
	// A Stripe user who never connected gets 401, not an upstream call.
	carol := newStripeUser(t, "usr_carol", "acct_9")
	if code, body, _ := carol.call("GET", base+"/api/acme/me"); code != 401 || errorCode(body) != "connection_required" {
		t.Fatalf("unconnected caller: %d %s", code, body)
	}
	code, body, _ = alice.call("GET", base+"/connect/acme/status")
	if code != 200 || !strings.Contains(string(body), `"state":"active"`) {
		t.Fatalf("status: %d %s", code, body)
	}
	// Another user of the same account is not connected.
	bob := newStripeUser(t, "usr_bob", "acct_1")
	if code, body, _ := bob.call("GET", base+"/connect/acme/userinfo"); code != 401 {
		t.Fatalf("bob: %d %s", code, body)
	}
	// A third-party user without a verified email is refused.
	bob.connect(t, base, r.simURL, "user-mallory")
	if code, body, _ := bob.call("GET", base+"/connect/acme/userinfo"); code != 403 || errorCode(body) != "email_not_verified" {
		t.Fatalf("unverified: %d %s", code, body)
	}

	if code, body, _ := alice.call("POST", base+"/connect/acme/logout"); code != 204 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if s := r.sim.Stats(); s.Revocations != 1 {
		t.Fatalf("revocations %d", s.Revocations)
	}
	if code, body, _ := alice.call("GET", base+"/connect/acme/userinfo"); code != 401 || errorCode(body) != "not_connected" {
		t.Fatalf("after logout: %d %s", code, body)
	}
}

// TestRefreshRace: 50 concurrent callers over the instances ask for the
// userinfo of one connection whose access token the third party has
// expired; each refused call refreshes (under the row lock) and retries.
// Against strict rotation with no grace: exactly one refresh, no
// invalid_grant, all 50 served. After restarting every instance the
// connection still refreshes: the rotated refresh token was saved.
func TestRefreshRace(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		procs int
		store func(t *testing.T) string
	}{
		{"postgres, 3 processes", 3, func(t *testing.T) string { return testutil.Postgres(t) }},
		{"sqlite, 1 process", 1, func(*testing.T) string { return "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := newRecipe(t, c.procs, c.store(t))
			u := newStripeUser(t, "usr_race", "acct_race")
			u.connect(t, r.procs[0].URL, r.simURL, "user-alice")
			r.sim.ExpireAccessTokens()
			before := r.sim.Stats()

			const callers = 50
			var wg sync.WaitGroup
			codes := make([]int, callers)
			bodies := make([][]byte, callers)
			start := make(chan struct{})
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					codes[i], bodies[i], _ = u.call("GET", r.procs[i%len(r.procs)].URL+"/connect/acme/userinfo")
				}()
			}
			close(start)
			wg.Wait()
			s := r.sim.Stats()
			served := 0
			for i := range callers {
				if codes[i] == 200 && strings.Contains(string(bodies[i]), `"sub":"user-alice"`) {
					served++
				} else {
					t.Logf("caller %d: %d %s", i, codes[i], bodies[i])
				}
			}
			refreshes := s.TokenCallsByGrant["refresh_token"] - before.TokenCallsByGrant["refresh_token"]
			t.Logf("race (%s): %d callers, token-endpoint refresh calls %d, invalid_grant %d, callers served %d",
				c.name, callers, refreshes, s.InvalidGrant, served)
			if refreshes != 1 || s.InvalidGrant != 0 || served != callers {
				t.Fatalf("want 1 refresh, 0 invalid_grant, %d served", callers)
			}

			r.stop()
			r.start(t)
			r.sim.ExpireAccessTokens()
			for i, p := range r.procs {
				if code, body, err := u.call("GET", p.URL+"/connect/acme/userinfo"); err != nil || code != 200 {
					t.Fatalf("after restart, instance %d: %d %s %v", i, code, body, err)
				}
			}
			s = r.sim.Stats()
			if got := s.TokenCallsByGrant["refresh_token"] - before.TokenCallsByGrant["refresh_token"]; got != 2 || s.InvalidGrant != 0 {
				t.Fatalf("after restart: %d refreshes, %d invalid_grant", got, s.InvalidGrant)
			}
		})
	}
}
