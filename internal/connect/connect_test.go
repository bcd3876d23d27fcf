package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
)

// TestPKCEVector checks the authorize URL carries the S256 challenge of
// RFC 7636 appendix B for its verifier.
func TestPKCEVector(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	u, err := url.Parse(e.conn.authorizeURL("some-state", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if got := q.Get("code_challenge"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("code_challenge = %q", got)
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("state") != "some-state" || q.Get("client_id") != clientID ||
		q.Get("redirect_uri") != e.url+"/connect/acme/callback" || q.Get("response_type") != "code" {
		t.Errorf("authorize URL %s", u)
	}
}

// TestFlow walks the Stripe App's story: 401 until connected, then the
// third party's user, refused when its email is unverified; logout
// revokes at the third party and forgets the token.
func TestFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	userinfo := e.url + "/connect/acme/userinfo"

	resp, body := b.do(t, "GET", userinfo)
	if st, code := envelope(t, body); resp.StatusCode != 401 || st != 401 || code != "not_connected" {
		t.Fatalf("before connecting: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "GET", e.url+"/connect/acme/status")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"connected":false`) {
		t.Fatalf("status before: %d %s", resp.StatusCode, body)
	}
	// Unsigned login is refused before anything is stored.
	resp, body = b.get(t, e.url+"/connect/acme/login")
	if resp.StatusCode != 401 {
		t.Fatalf("unsigned login: %d %s", resp.StatusCode, body)
	}

	e.connect(t, b, "user-alice")
	resp, body = b.do(t, "GET", userinfo)
	var info oauth.User
	if err := json.Unmarshal(body, &info); resp.StatusCode != 200 || err != nil || info.ID != "user-alice" || !info.EmailVerified {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}
	before := e.sim.Stats().UserinfoCalls
	b.do(t, "GET", userinfo)
	if got := e.sim.Stats().UserinfoCalls; got != before+1 {
		t.Errorf("userinfo calls %d → %d: want one upstream call per request (no cached profile)", before, got)
	}
	tk := e.tokensOf(b)
	resp, body = b.do(t, "GET", e.url+"/connect/acme/status")
	var st statusBody
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || !st.Connected || st.State != "active" ||
		len(st.Scopes) != 1 || st.Scopes[0] != "read" || st.ExpiresAt == nil {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	if bytes.Contains(body, []byte(tk.Access)) || bytes.Contains(body, []byte(tk.Refresh)) {
		t.Fatal("status carries a token")
	}

	// Logout: revoked at the simulator, then the token is gone.
	resp, body = b.do(t, "POST", e.url+"/connect/acme/logout")
	if resp.StatusCode != 204 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	if s := e.sim.Stats(); s.Revocations != 1 || s.GrantsRevoked != 1 {
		t.Errorf("revocation stats %+v", s)
	}
	if _, ok := e.row(b); ok {
		t.Error("row still there after logout")
	}
	resp, body = b.do(t, "GET", userinfo)
	if resp.StatusCode != 401 {
		t.Fatalf("after logout: %d %s", resp.StatusCode, body)
	}

	// An unverified third-party user is refused.
	m := newBrowser(t, "usr_2", "acct_1")
	e.connect(t, m, "user-mallory")
	resp, body = m.do(t, "GET", userinfo)
	if _, code := envelope(t, body); resp.StatusCode != 403 || code != "email_not_verified" {
		t.Fatalf("unverified: %d %s", resp.StatusCode, body)
	}
}

// TestLogoutRevocationAnswers: 200 and invalid_token are success; 503 asks
// to retry later and keeps the token.
func TestLogoutRevocationAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	if err := e.sim.Fault(oauth.RouteRevoke, oauth.Fault{Status: 503, RetryAfter: 7 * time.Second, Count: 1}); err != nil {
		t.Fatal(err)
	}
	resp, body := b.do(t, "POST", e.url+"/connect/acme/logout")
	if _, code := envelope(t, body); resp.StatusCode != 503 || code != "revocation_unavailable" || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("logout under 503: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	if _, ok := e.row(b); !ok {
		t.Fatal("a 503 from the revocation endpoint must keep the token")
	}
	if err := e.sim.Fault(oauth.RouteRevoke, oauth.Fault{OAuthError: "invalid_token", Count: 1}); err != nil {
		t.Fatal(err)
	}
	resp, body = b.do(t, "POST", e.url+"/connect/acme/logout")
	if resp.StatusCode != 204 {
		t.Fatalf("logout with invalid_token answer: %d %s", resp.StatusCode, body)
	}
	if _, ok := e.row(b); ok {
		t.Fatal("row kept after an invalid_token answer")
	}
}

// TestLoginSignatureInQuery: the query form is verified exactly like the
// header.
func TestLoginSignatureInQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	good := b.signature()
	cases := []struct {
		name   string
		q      url.Values
		status int
	}{
		{"ok", url.Values{"user_id": {"usr_1"}, "account_id": {"acct_1"}, "signature": {good}}, 303},
		{"other user", url.Values{"user_id": {"usr_2"}, "account_id": {"acct_1"}, "signature": {good}}, 401},
		{"other account", url.Values{"user_id": {"usr_1"}, "account_id": {"acct_2"}, "signature": {good}}, 401},
		{"stale", url.Values{"user_id": {"usr_1"}, "account_id": {"acct_1"}, "signature": {strings.Replace(good, "t=", "t=1", 1)}}, 401},
		{"no account", url.Values{"user_id": {"usr_1"}, "signature": {good}}, 401},
		{"repeated", url.Values{"user_id": {"usr_1"}, "account_id": {"acct_1"}, "signature": {good, good}}, 400},
		{"nothing", url.Values{}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := b.get(t, e.url+"/connect/acme/login?"+c.q.Encode())
			if resp.StatusCode != c.status {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if c.status != 303 {
				envelope(t, body)
			}
		})
	}
}

// TestCallbackBadInput: each refusal answers the envelope and stores no
// connection.
func TestCallbackBadInput(t *testing.T) {
	t.Parallel()
	type outcome struct {
		status int
		code   string
	}
	cases := []struct {
		name string
		// run returns the browser whose connection must not exist and the
		// callback answer.
		run  func(t *testing.T, e *env) (*browser, *http.Response, []byte)
		want outcome
	}{
		{"state missing", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb, _ := url.Parse(e.consent(t, b, e.startLogin(t, b), "user-alice", "approve"))
			q := cb.Query()
			q.Del("state")
			cb.RawQuery = q.Encode()
			resp, body := b.get(t, cb.String())
			return b, resp, body
		}, outcome{400, "invalid_state"}},
		{"state unknown", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb, _ := url.Parse(e.consent(t, b, e.startLogin(t, b), "user-alice", "approve"))
			q := cb.Query()
			q.Set("state", "forged"+q.Get("state"))
			cb.RawQuery = q.Encode()
			resp, body := b.get(t, cb.String())
			return b, resp, body
		}, outcome{400, "invalid_state"}},
		{"state reused", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			authz := e.startLogin(t, b)
			cb := e.consent(t, b, authz, "user-alice", "deny")
			b.get(t, cb) // spends the state
			cb2 := e.consent(t, b, authz, "user-alice", "approve")
			resp, body := b.get(t, cb2)
			return b, resp, body
		}, outcome{400, "invalid_state"}},
		{"state expired", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb := e.consent(t, b, e.startLogin(t, b), "user-alice", "approve")
			e.clock.Advance(StateTTL + time.Second)
			resp, body := b.get(t, cb)
			return b, resp, body
		}, outcome{400, "invalid_state"}},
		{"state from another principal", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			victim := newBrowser(t, "victim", "a")
			attacker := newBrowser(t, "attacker", "a")
			e.startLogin(t, attacker) // the attacker's own cookie
			cb := e.consent(t, victim, e.startLogin(t, victim), "user-alice", "approve")
			resp, body := attacker.get(t, cb) // the victim's state in the attacker's browser
			if _, ok := e.row(attacker); ok {
				t.Error("attacker connected")
			}
			return victim, resp, body
		}, outcome{403, "state_mismatch"}},
		{"code replayed", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			a := newBrowser(t, "first", "a")
			cbA := e.consent(t, a, e.startLogin(t, a), "user-alice", "approve")
			if resp, body := a.get(t, cbA); resp.StatusCode != 303 {
				t.Fatalf("first callback: %d %s", resp.StatusCode, body)
			}
			b := newBrowser(t, "second", "a")
			cbB, _ := url.Parse(e.consent(t, b, e.startLogin(t, b), "user-alice", "approve"))
			old, _ := url.Parse(cbA)
			q := cbB.Query()
			q.Set("code", old.Query().Get("code"))
			cbB.RawQuery = q.Encode()
			resp, body := b.get(t, cbB.String())
			return b, resp, body
		}, outcome{400, "exchange_failed"}},
		{"iss mismatch", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb, _ := url.Parse(e.consent(t, b, e.startLogin(t, b), "user-alice", "approve"))
			q := cb.Query()
			q.Set("iss", "https://evil.example")
			cb.RawQuery = q.Encode()
			resp, body := b.get(t, cb.String())
			return b, resp, body
		}, outcome{400, "issuer_mismatch"}},
		{"access denied", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			resp, body := b.get(t, e.consent(t, b, e.startLogin(t, b), "user-alice", "deny"))
			return b, resp, body
		}, outcome{403, "access_denied"}},
		{"token answer 200 with error", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb := e.consent(t, b, e.startLogin(t, b), "user-alice", "approve")
			if err := e.sim.Fault(oauth.RouteToken, oauth.Fault{OAuthError: "server_error", Count: 1}); err != nil {
				t.Fatal(err)
			}
			resp, body := b.get(t, cb)
			return b, resp, body
		}, outcome{400, "exchange_failed"}},
		{"code missing", func(t *testing.T, e *env) (*browser, *http.Response, []byte) {
			b := newBrowser(t, "u", "a")
			cb, _ := url.Parse(e.consent(t, b, e.startLogin(t, b), "user-alice", "approve"))
			q := cb.Query()
			q.Del("code")
			cb.RawQuery = q.Encode()
			resp, body := b.get(t, cb.String())
			return b, resp, body
		}, outcome{400, "invalid_request"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			b, resp, body := c.run(t, e)
			st, code := envelope(t, body)
			if resp.StatusCode != c.want.status || st != c.want.status || code != c.want.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, c.want.status, c.want.code)
			}
			if _, ok := e.row(b); ok {
				t.Fatal("a connection was stored")
			}
		})
	}
}

// TestRefreshRaceSQLite: 50 goroutines ask for the token of a connection
// whose access token is due: one refresh, every caller the new token.
func TestRefreshRaceSQLite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	old := e.tokensOf(b)
	e.clock.Advance(56 * time.Minute) // within refresh_before (5m) of the 1h expiry
	got := race(t, []*Set{e.set}, b, 50)
	checkRace(t, e.sim, got, old, 50)
	if tk := e.tokensOf(b); tk.Access != got[0] || tk.Refresh == old.Refresh || tk.Refresh == "" {
		t.Fatal("the rotated refresh token was not committed with the access token")
	}
}

// TestRefreshRacePostgres: 50 callers over three connection sets, each on
// its own pool to one PostgreSQL database (three instances).
func TestRefreshRacePostgres(t *testing.T) {
	t.Parallel()
	dbURL := testutil.Postgres(t)
	open := func() store.Store {
		st, err := openPostgres(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	e := newEnv(t, envOpts{store: open()})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	old := e.tokensOf(b)
	sets := []*Set{e.set}
	for range 2 {
		other, err := New(map[string]config.Connection{connName: e.conn.cfg}, Deps{
			Store: open(), Keys: e.keys, Auth: e.set.deps.Auth, Enqueuer: e.eng, PublicURL: e.url, Now: e.clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, other)
	}
	e.clock.Advance(56 * time.Minute)
	got := race(t, sets, b, 50)
	checkRace(t, e.sim, got, old, 50)
}

func race(t *testing.T, sets []*Set, b *browser, n int) []string {
	t.Helper()
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = sets[i%len(sets)].Get(connName).Token(context.Background(), b.principal())
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	return got
}

func checkRace(t *testing.T, sim *oauth.Server, got []string, old tokens, n int) {
	t.Helper()
	s := sim.Stats()
	served := 0
	for _, tok := range got {
		if tok == got[0] && tok != old.Access {
			served++
		}
	}
	t.Logf("race: %d callers, token-endpoint refresh calls %d, invalid_grant %d, callers served the new token %d",
		n, s.TokenCallsByGrant["refresh_token"], s.InvalidGrant, served)
	if s.TokenCallsByGrant["refresh_token"] != 1 || s.InvalidGrant != 0 || served != n {
		t.Fatalf("want 1 refresh, 0 invalid_grant, %d served; stats %+v", n, s)
	}
}

// TestCancelledRequestDoesNotBreakRefresh: the caller that started the
// refresh goes away mid-call; the refresh still completes and commits, so
// the next caller gets the new token without a second (replayed) refresh.
func TestCancelledRequestDoesNotBreakRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	old := e.tokensOf(b)
	e.clock.Advance(56 * time.Minute)
	if err := e.sim.Fault(oauth.RouteToken, oauth.Fault{Latency: 500 * time.Millisecond, Count: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.conn.Token(ctx, b.principal()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled caller: %v", err)
	}
	tok, err := e.conn.Token(context.Background(), b.principal())
	if err != nil {
		t.Fatal(err)
	}
	s := e.sim.Stats()
	if tok == old.Access || s.TokenCallsByGrant["refresh_token"] != 1 || s.InvalidGrant != 0 {
		t.Fatalf("after a cancelled caller: new token %v, stats %+v", tok != old.Access, s)
	}
	// And the next refresh works too: the committed refresh token is live.
	e.clock.Advance(56 * time.Minute)
	if tok2, err := e.conn.Token(context.Background(), b.principal()); err != nil || tok2 == tok {
		t.Fatalf("next refresh: %v", err)
	}
}

// TestProviderDownThenRecovered: 5xx during refresh → failing (retried
// with backoff), then active again with one on_recovered job.
func TestProviderDownThenRecovered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	old := e.tokensOf(b)
	if err := e.sim.Fault(oauth.RouteToken, oauth.Fault{Status: 503}); err != nil {
		t.Fatal(err)
	}
	// Due but not expired: the old token is still handed out.
	e.clock.Advance(56 * time.Minute)
	if tok, err := e.conn.Token(context.Background(), b.principal()); err != nil || tok != old.Access {
		t.Fatalf("due, provider down: %v", err)
	}
	row, _ := e.row(b)
	if row.State != store.ConnectionFailing || row.Failures != 1 || row.RetryAt.IsZero() {
		t.Fatalf("row after a failed refresh: %+v", row)
	}
	// Expired, still down: unavailable, and no new attempt before retry_at.
	e.clock.Advance(5 * time.Minute)
	_, err := e.conn.Token(context.Background(), b.principal())
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired, provider down: %v", err)
	}
	calls := e.sim.Stats().TokenCalls
	resp, body := b.do(t, "GET", e.url+"/connect/acme/userinfo")
	if _, code := envelope(t, body); resp.StatusCode != 503 || code != "connection_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("userinfo while failing: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "GET", e.url+"/connect/acme/status")
	if !strings.Contains(string(body), `"state":"failing"`) {
		t.Fatalf("status: %s", body)
	}
	if got := e.sim.Stats().TokenCalls; got != calls {
		t.Fatalf("token endpoint called %d times before retry_at", got-calls)
	}
	e.sim.ClearFaults()
	e.clock.Advance(RetryMaxDefault)
	tok, err := e.conn.Token(context.Background(), b.principal())
	if err != nil || tok == old.Access {
		t.Fatalf("recovered: %v", err)
	}
	row, _ = e.row(b)
	if row.State != store.ConnectionActive || row.Failures != 0 {
		t.Fatalf("row after recovery: %+v", row)
	}
	if n := e.jobs("connection.recovered"); n != 1 {
		t.Fatalf("on_recovered jobs: %d", n)
	}
	if n := e.jobs("connection.expired"); n != 0 {
		t.Fatalf("on_expired jobs: %d", n)
	}
	// Connected (by the user), failing and active again (by backlot): one
	// audit entry per state change, none for the refusal while failing.
	e.wantAudit(t, []string{store.AuditConnActive, store.AuditConnFailing, store.AuditConnActive},
		[]string{b.actor(), store.AuditActorSystem, store.AuditActorSystem})
}

// TestInvalidGrantExpires: a refused refresh token marks the connection
// expired and enqueues on_expired once, however often it is asked for.
func TestInvalidGrantExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	e.sim.Reset() // forgets every token: the refresh token is now unknown
	e.clock.Advance(56 * time.Minute)
	for range 3 {
		if _, err := e.conn.Token(context.Background(), b.principal()); !errors.Is(err, ErrExpired) {
			t.Fatalf("want ErrExpired, got %v", err)
		}
	}
	if n := e.sim.Stats().TokenCallsByGrant["refresh_token"]; n != 1 {
		t.Fatalf("refresh attempts %d, want 1", n)
	}
	if n := e.jobs("connection.expired"); n != 1 {
		t.Fatalf("on_expired jobs: %d", n)
	}
	resp, body := b.do(t, "GET", e.url+"/connect/acme/userinfo")
	if _, code := envelope(t, body); resp.StatusCode != 401 || code != "connection_expired" {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}
	// Connecting again makes it active.
	e.connect(t, b, "user-alice")
	if resp, body := b.do(t, "GET", e.url+"/connect/acme/userinfo"); resp.StatusCode != 200 {
		t.Fatalf("after reconnecting: %d %s", resp.StatusCode, body)
	}
	e.wantAudit(t, []string{store.AuditConnActive, store.AuditConnExpired, store.AuditConnActive},
		[]string{b.actor(), store.AuditActorSystem, b.actor()})
}

// wantAudit checks the audit log holds exactly these actions by these
// actors, oldest first, each naming the connection.
func (e *env) wantAudit(t *testing.T, actions, actors []string) {
	t.Helper()
	got, err := e.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(actions) {
		t.Fatalf("%d audit entries, want %d: %+v", len(got), len(actions), got)
	}
	for i := range actions {
		g := got[len(got)-1-i]
		if g.Action != actions[i] || g.Actor != actors[i] || !strings.HasPrefix(g.Target, "connection acme ") {
			t.Errorf("audit entry %d = %s by %s on %q, want %s by %s", i, g.Action, g.Actor, g.Target, actions[i], actors[i])
		}
		if g.Actor != store.AuditActorSystem && g.Address == "" {
			t.Errorf("audit entry %d by a user has no address", i)
		}
	}
}

// TestRefreshErrorField: a 200 refresh answer carrying error=invalid_grant
// is that error, not a success.
func TestRefreshErrorField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	if err := e.sim.Fault(oauth.RouteToken, oauth.Fault{OAuthError: "invalid_grant", Count: 1}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(61 * time.Minute)
	if _, err := e.conn.Token(context.Background(), b.principal()); !errors.Is(err, ErrExpired) {
		t.Fatalf("want ErrExpired, got %v", err)
	}
}

// TestUserinfo401RefreshesOnce: the third party refusing the access token
// (revoked or expired on its side) triggers one refresh and one retry.
func TestUserinfo401RefreshesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	e.sim.ExpireAccessTokens()
	resp, body := b.do(t, "GET", e.url+"/connect/acme/userinfo")
	if resp.StatusCode != 200 {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}
	if n := e.sim.Stats().TokenCallsByGrant["refresh_token"]; n != 1 {
		t.Fatalf("refreshes %d", n)
	}
}

// TestCiphertextBoundToRow: a ciphertext copied into another principal's
// row, or tampered with, does not open.
func TestCiphertextBoundToRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a, b := newBrowser(t, "usr_a", "acct_1"), newBrowser(t, "usr_b", "acct_1")
	e.connect(t, a, "user-alice")
	e.connect(t, b, "user-bob")
	ctx := context.Background()
	rowA, _ := e.row(a)
	rowB, _ := e.row(b)
	cases := []struct {
		name string
		ct   []byte
	}{
		{"copied from another scope", rowA.Ciphertext},
		{"tampered", func() []byte { c := bytes.Clone(rowB.Ciphertext); c[len(c)-1] ^= 1; return c }()},
		{"truncated", rowB.Ciphertext[:len(rowB.Ciphertext)/2]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rowB
			r.Ciphertext = c.ct
			if err := e.st.PutConnection(ctx, r); err != nil {
				t.Fatal(err)
			}
			if _, err := e.conn.Token(ctx, b.principal()); !errors.Is(err, secrets.ErrDecrypt) {
				t.Fatalf("want ErrDecrypt, got %v", err)
			}
		})
	}
}

// TestKeysRotateConnections: rotation re-encrypts connection rows, which
// then open under the new key alone.
func TestKeysRotateConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	tk := e.tokensOf(b)
	ctx := context.Background()
	k2 := testKey("k2", 2)
	both, err := secrets.NewKeyring([]config.Key{k2, testKey("k1", 1)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := secrets.Rotate(ctx, e.st, both, secrets.RotateOptions{})
	if err != nil || res.Rotated != 1 {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	row, _ := e.row(b)
	if row.KeyID != "k2" {
		t.Fatalf("key id after rotation %q", row.KeyID)
	}
	only2, _ := secrets.NewKeyring([]config.Key{k2})
	if err := secrets.CheckKeys(ctx, e.st, only2); err != nil {
		t.Fatal(err)
	}
	pt, err := only2.Open(store.KindConnection, row.Scope, row.Name, row.Ciphertext)
	if err != nil || !bytes.Contains(pt, []byte(tk.Access)) {
		t.Fatalf("open under k2: %v", err)
	}
}

// TestNoTokenInDatabaseLogsOrMetrics greps the SQLite files, the debug
// log and the metrics for every token the simulator issued.
func TestNoTokenInDatabaseLogsOrMetrics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "backlot.db"), store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := newEnv(t, envOpts{store: db})
	b := newBrowser(t, "usr_1", "acct_1")
	e.connect(t, b, "user-alice")
	first := e.tokensOf(b)
	e.clock.Advance(56 * time.Minute)
	if _, err := e.conn.Token(context.Background(), b.principal()); err != nil {
		t.Fatal(err)
	}
	second := e.tokensOf(b)
	b.do(t, "GET", e.url+"/connect/acme/userinfo")
	secretsSeen := []string{first.Access, first.Refresh, second.Access, second.Refresh, clientSec, appSecret}
	var hay [][]byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if data, err := os.ReadFile(filepath.Join(dir, "backlot.db"+suffix)); err == nil {
			hay = append(hay, data)
		}
	}
	hay = append(hay, []byte(e.logs.String()))
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&m, mf)
	}
	hay = append(hay, m.Bytes())
	if !strings.Contains(m.String(), "backlot_connection_refreshes_total") {
		t.Fatal("refresh metric missing")
	}
	if !strings.Contains(e.logs.String(), "connection refreshed") {
		t.Fatal("no log captured")
	}
	for _, s := range secretsSeen {
		if s == "" {
			t.Fatal("empty token")
		}
		for i, h := range hay {
			if bytes.Contains(h, []byte(s)) {
				t.Errorf("a token or secret appears in plaintext in source %d", i)
			}
		}
	}
}

func openPostgres(url string) (store.Store, error) {
	return postgres.Open(context.Background(), url, store.Options{Migrate: true})
}
