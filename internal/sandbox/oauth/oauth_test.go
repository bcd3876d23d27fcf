package oauth

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// Registered clients of the fixture. The web client's secret has the
// characters RFC 6749 section 2.3.1 makes clients form-encode in HTTP Basic.
const (
	webID          = "web-app"
	webSecret      = "s3cr&t:+/ with space"
	webRedirect    = "http://127.0.0.1:9/connect/demo/callback"
	legacyID       = "legacy"
	legacySecret   = "legacy-secret"
	legacyRedirect = "http://127.0.0.1:9/legacy/callback?keep=1"
	spaID          = "spa"
	spaRedirect    = "http://127.0.0.1:9/spa/callback"

	// The example of RFC 7636 appendix B.
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	// A second valid verifier, for "wrong verifier" cases.
	otherVerifier = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

type fixture struct {
	s      *Server
	srv    *httptest.Server
	clock  *testutil.Clock
	client *http.Client // does not follow redirects
}

// setup starts a simulator with three clients: web (confidential, PKCE
// required), legacy (confidential, PKCE optional, scopes restricted) and spa
// (public). mod may change the options first.
func setup(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	clock := testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	opts := Options{
		Clients: []Client{
			{ID: webID, Secret: webSecret, RedirectURIs: []string{webRedirect}, RequirePKCE: true},
			{ID: legacyID, Secret: legacySecret, RedirectURIs: []string{legacyRedirect}, Scopes: []string{"openid", "email", "profile"}},
			{ID: spaID, RedirectURIs: []string{spaRedirect}},
		},
		Now: clock.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	s := New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &fixture{s: s, srv: srv, clock: clock, client: c}
}

func redirectOf(clientID string) string {
	switch clientID {
	case webID:
		return webRedirect
	case legacyID:
		return legacyRedirect
	default:
		return spaRedirect
	}
}

func secretOf(clientID string) string {
	switch clientID {
	case webID:
		return webSecret
	case legacyID:
		return legacySecret
	default:
		return ""
	}
}

// authParams is an authorization request for clientID, with an S256
// challenge of verifier unless verifier is "".
func authParams(clientID, verifier string) url.Values {
	v := url.Values{
		"response_type": {"code"},
		"client_id":     {clientID},
		"redirect_uri":  {redirectOf(clientID)},
		"scope":         {"openid email"},
		"state":         {"st-" + clientID},
	}
	if verifier != "" {
		v.Set("code_challenge", S256Challenge(verifier))
		v.Set("code_challenge_method", "S256")
	}
	return v
}

// send makes a request and returns the answer with its body read.
func (f *fixture) send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return res, b
}

// postForm posts form to path, with HTTP Basic client authentication when
// basicID is not empty (form-encoding id and secret as RFC 6749 says).
func (f *fixture) postForm(t *testing.T, path string, form url.Values, basicID, basicSecret string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	res, b := f.send(t, req)
	return res, decodeJSON(t, res, b)
}

func decodeJSON(t *testing.T, res *http.Response, b []byte) map[string]any {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, body %s", res.Request.URL.Path, ct, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: body %s: %v", res.Request.URL.Path, b, err)
	}
	return v
}

// decide posts the consent form for params and returns the answer and its
// Location, if any.
func (f *fixture) decide(t *testing.T, params url.Values, user, decision string) (*http.Response, *url.URL, []byte) {
	t.Helper()
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("user", user)
	form.Set("decision", decision)
	req, err := http.NewRequest("POST", f.srv.URL+"/authorize", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, b := f.send(t, req)
	var loc *url.URL
	if l := res.Header.Get("Location"); l != "" {
		if loc, err = url.Parse(l); err != nil {
			t.Fatalf("Location %q: %v", l, err)
		}
	}
	return res, loc, b
}

// code runs the authorize step for clientID as user and returns the code.
func (f *fixture) code(t *testing.T, clientID, verifier, user string) string {
	t.Helper()
	params := authParams(clientID, verifier)
	res, loc, b := f.decide(t, params, user, "approve")
	if res.StatusCode != http.StatusSeeOther || loc == nil {
		t.Fatalf("approve: status %d, body %s", res.StatusCode, b)
	}
	q := loc.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("approve: redirected to %s", loc)
	}
	if q.Get("state") != params.Get("state") || q.Get("iss") != f.srv.URL {
		t.Fatalf("approve: state %q iss %q, want %q and %q", q.Get("state"), q.Get("iss"), params.Get("state"), f.srv.URL)
	}
	return q.Get("code")
}

// exchange redeems code with Basic authentication and returns the tokens,
// failing the test on any error.
func (f *fixture) exchange(t *testing.T, clientID, code, verifier string) TokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectOf(clientID)}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	res, body := f.postForm(t, "/token", form, clientID, secretOf(clientID))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("exchange: status %d, body %v", res.StatusCode, body)
	}
	return tokenOf(t, res, body)
}

func tokenOf(t *testing.T, res *http.Response, body map[string]any) TokenResponse {
	t.Helper()
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer Cache-Control %q, want no-store", res.Header.Get("Cache-Control"))
	}
	b, _ := json.Marshal(body)
	var tr TokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.AccessToken == "" || tr.RefreshToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 {
		t.Fatalf("token answer %v is missing fields", body)
	}
	return tr
}

// login runs the whole flow for the web client as user.
func (f *fixture) login(t *testing.T, user string) TokenResponse {
	t.Helper()
	return f.exchange(t, webID, f.code(t, webID, rfcVerifier, user), rfcVerifier)
}

func (f *fixture) refresh(t *testing.T, rt string) (*http.Response, map[string]any) {
	t.Helper()
	return f.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, webID, webSecret)
}

func (f *fixture) userinfo(t *testing.T, accessToken string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	res, b := f.send(t, req)
	return res, decodeJSON(t, res, b)
}

// wantError checks an OAuth error answer.
func wantError(t *testing.T, res *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	if res.StatusCode != status || body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", res.StatusCode, body, status, code)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Errorf("error %s has no error_description", code)
	}
}

// wantInvalidToken checks a userinfo refusal of accessToken.
func (f *fixture) wantInvalidToken(t *testing.T, accessToken string) {
	t.Helper()
	res, body := f.userinfo(t, accessToken)
	wantError(t, res, body, http.StatusUnauthorized, "invalid_token")
	if h := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate %q, want a Bearer invalid_token challenge", h)
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestConsentPageCarriesTheRequest reads the authorize page as a browser
// would and checks the form it would submit.
func TestConsentPageCarriesTheRequest(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	params := authParams(webID, rfcVerifier)
	params.Set("state", `a"<b>&c`)
	req, _ := http.NewRequest("GET", f.srv.URL+"/authorize?"+params.Encode(), nil)
	res, b := f.send(t, req)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /authorize: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("consent page may be framed")
	}
	page := string(b)
	for _, u := range DefaultUsers() {
		if !strings.Contains(page, `value="`+u.ID+`"`) {
			t.Errorf("page does not offer user %s", u.ID)
		}
	}
	if !strings.Contains(page, "(email not verified)") {
		t.Errorf("page does not mark the unverified user")
	}
	got := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		got.Set(m[1], html.UnescapeString(m[2]))
	}
	if got.Encode() != params.Encode() {
		t.Fatalf("form carries %v, want %v", got, params)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		clientID string
		edit     func(v url.Values)
		post     bool   // through the consent form's POST rather than GET
		page     string // want an error page containing this, never a redirect
		redirect string // want a redirect with this error
	}{
		{name: "no client_id", clientID: webID, edit: func(v url.Values) { v.Del("client_id") }, page: "no client_id"},
		{name: "unknown client", clientID: webID, edit: func(v url.Values) { v.Set("client_id", "evil") }, page: "Unknown client"},
		{name: "no redirect_uri", clientID: webID, edit: func(v url.Values) { v.Del("redirect_uri") }, page: "no redirect_uri"},
		{name: "unregistered redirect_uri", clientID: webID, edit: func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/evil") }, page: "not registered"},
		{name: "redirect_uri with extra path", clientID: webID, edit: func(v url.Values) { v.Set("redirect_uri", webRedirect+"/x") }, page: "not registered"},
		{name: "redirect_uri with extra query", clientID: webID, edit: func(v url.Values) { v.Set("redirect_uri", webRedirect+"?next=evil") }, page: "not registered"},
		{name: "redirect_uri of another client", clientID: webID, edit: func(v url.Values) { v.Set("redirect_uri", spaRedirect) }, page: "not registered"},
		{name: "repeated redirect_uri", clientID: webID, edit: func(v url.Values) { v.Add("redirect_uri", webRedirect) }, page: "once"},
		{name: "unknown client on POST", clientID: webID, post: true, edit: func(v url.Values) { v.Set("client_id", "evil") }, page: "Unknown client"},
		{name: "no response_type", clientID: webID, edit: func(v url.Values) { v.Del("response_type") }, redirect: "invalid_request"},
		{name: "implicit grant", clientID: webID, edit: func(v url.Values) { v.Set("response_type", "token") }, redirect: "unsupported_response_type"},
		{name: "PKCE required, no challenge", clientID: webID, edit: func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, redirect: "invalid_request"},
		{name: "PKCE required, no challenge, on POST", clientID: webID, post: true, edit: func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, redirect: "invalid_request"},
		{name: "public client, no challenge", clientID: spaID, edit: func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, redirect: "invalid_request"},
		{name: "plain method", clientID: webID, edit: func(v url.Values) { v.Set("code_challenge", rfcVerifier); v.Set("code_challenge_method", "plain") }, redirect: "invalid_request"},
		{name: "method absent means plain", clientID: webID, edit: func(v url.Values) { v.Del("code_challenge_method") }, redirect: "invalid_request"},
		{name: "method without challenge", clientID: legacyID, edit: func(v url.Values) { v.Del("code_challenge") }, redirect: "invalid_request"},
		{name: "challenge too short", clientID: webID, edit: func(v url.Values) { v.Set("code_challenge", "abc") }, redirect: "invalid_request"},
		{name: "challenge with bad characters", clientID: webID, edit: func(v url.Values) { v.Set("code_challenge", strings.Repeat("+", 43)) }, redirect: "invalid_request"},
		{name: "scope not allowed", clientID: legacyID, edit: func(v url.Values) { v.Set("scope", "openid admin") }, redirect: "invalid_scope"},
		{name: "repeated scope", clientID: webID, edit: func(v url.Values) { v.Add("scope", "admin") }, redirect: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			params := authParams(tc.clientID, rfcVerifier)
			tc.edit(params)
			var res *http.Response
			var b []byte
			if tc.post {
				res, _, b = f.decide(t, params, "user-alice", "approve")
			} else {
				req, _ := http.NewRequest("GET", f.srv.URL+"/authorize?"+params.Encode(), nil)
				res, b = f.send(t, req)
			}
			if tc.page != "" {
				if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
					t.Fatalf("status %d Location %q, want an error page", res.StatusCode, res.Header.Get("Location"))
				}
				if !strings.Contains(string(b), tc.page) {
					t.Fatalf("page %s does not say %q", b, tc.page)
				}
				return
			}
			loc, err := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusSeeOther || err != nil {
				t.Fatalf("status %d Location %q, want a redirect", res.StatusCode, res.Header.Get("Location"))
			}
			q := loc.Query()
			if q.Get("error") != tc.redirect || q.Get("error_description") == "" || q.Get("code") != "" {
				t.Fatalf("redirected to %s, want error %s", loc, tc.redirect)
			}
			if q.Get("state") != params.Get("state") || q.Get("iss") != f.srv.URL {
				t.Fatalf("error redirect %s lacks state or iss", loc)
			}
			if f.s.Stats().AuthorizeCalls != 1 {
				t.Errorf("authorize calls %d, want 1", f.s.Stats().AuthorizeCalls)
			}
		})
	}
}

func TestConsentDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user       string
		decision   string
		wantStatus int
		wantError  string // in the redirect
	}{
		{name: "deny", user: "user-alice", decision: "deny", wantStatus: http.StatusSeeOther, wantError: "access_denied"},
		{name: "unknown user", user: "nobody", decision: "approve", wantStatus: http.StatusBadRequest},
		{name: "no user", user: "", decision: "approve", wantStatus: http.StatusBadRequest},
		{name: "no decision", user: "user-alice", decision: "", wantStatus: http.StatusBadRequest},
		{name: "approve", user: "user-bob", decision: "approve", wantStatus: http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			res, loc, b := f.decide(t, authParams(legacyID, ""), tc.user, tc.decision)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tc.wantStatus, b)
			}
			if tc.wantStatus != http.StatusSeeOther {
				if loc != nil {
					t.Fatalf("redirected to %s", loc)
				}
				return
			}
			q := loc.Query()
			if q.Get("error") != tc.wantError || q.Get("iss") != f.srv.URL || q.Get("state") != "st-"+legacyID {
				t.Fatalf("redirected to %s", loc)
			}
			// The registered URI's own query survives.
			if q.Get("keep") != "1" || loc.Path != "/legacy/callback" {
				t.Fatalf("redirect %s lost the registered URI's path or query", loc)
			}
			if tc.wantError == "" && q.Get("code") == "" {
				t.Fatalf("approval without a code: %s", loc)
			}
		})
	}
}

func TestRFC7636Vector(t *testing.T) {
	t.Parallel()
	if got := S256Challenge(rfcVerifier); got != rfcChallenge {
		t.Fatalf("S256Challenge = %s, want %s", got, rfcChallenge)
	}
	// The vector end to end: a challenge sent literally, redeemed with
	// the verifier.
	f := setup(t, nil)
	params := authParams(webID, "")
	params.Set("code_challenge", rfcChallenge)
	params.Set("code_challenge_method", "S256")
	res, loc, b := f.decide(t, params, "user-alice", "approve")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", res.StatusCode, b)
	}
	f.exchange(t, webID, loc.Query().Get("code"), rfcVerifier)
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	// Each case gets a fresh code of clientID (with PKCE unless noPKCE) and
	// sends the exchange its edit makes.
	type request struct {
		form              url.Values
		basicID, basicKey string
	}
	tests := []struct {
		name       string
		clientID   string
		noPKCE     bool
		edit       func(f *fixture, r *request)
		wantStatus int
		wantError  string
	}{
		{name: "bad secret by Basic", clientID: webID, edit: func(_ *fixture, r *request) { r.basicKey = "wrong" }, wantStatus: 401, wantError: "invalid_client"},
		{name: "bad secret in body", clientID: webID, edit: func(_ *fixture, r *request) {
			r.basicID = ""
			r.form.Set("client_id", webID)
			r.form.Set("client_secret", "wrong")
		}, wantStatus: 401, wantError: "invalid_client"},
		{name: "Basic secret not form-encoded", clientID: webID, edit: func(_ *fixture, r *request) { r.basicKey = "%zz" }, wantStatus: 401, wantError: "invalid_client"},
		{name: "unknown client", clientID: webID, edit: func(_ *fixture, r *request) { r.basicID = "nobody" }, wantStatus: 401, wantError: "invalid_client"},
		{name: "no client authentication", clientID: webID, edit: func(_ *fixture, r *request) { r.basicID = "" }, wantStatus: 401, wantError: "invalid_client"},
		{name: "body client_id differs from Basic", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("client_id", legacyID) }, wantStatus: 401, wantError: "invalid_client"},
		{name: "Basic and body secret together", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("client_secret", webSecret) }, wantStatus: 400, wantError: "invalid_request"},
		{name: "public client sends a secret", clientID: spaID, edit: func(_ *fixture, r *request) {
			r.basicID = ""
			r.form.Set("client_id", spaID)
			r.form.Set("client_secret", "x")
		}, wantStatus: 401, wantError: "invalid_client"},
		{name: "wrong redirect_uri", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("redirect_uri", legacyRedirect) }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "missing redirect_uri", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Del("redirect_uri") }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "missing verifier", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Del("code_verifier") }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "wrong verifier", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("code_verifier", otherVerifier) }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "verifier is the challenge (plain)", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("code_verifier", rfcChallenge) }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "verifier too short", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("code_verifier", "short") }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "verifier without challenge", clientID: legacyID, noPKCE: true, edit: func(_ *fixture, r *request) { r.form.Set("code_verifier", rfcVerifier) }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "empty verifier without challenge", clientID: legacyID, noPKCE: true, edit: func(_ *fixture, r *request) { r.form.Set("code_verifier", "") }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "code of another client", clientID: webID, edit: func(_ *fixture, r *request) {
			r.basicID, r.basicKey = legacyID, legacySecret
			r.form.Set("redirect_uri", legacyRedirect)
		}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown code", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("code", "nope") }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "missing code", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Del("code") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "expired code", clientID: webID, edit: func(f *fixture, _ *request) { f.clock.Advance(CodeTTLDefault) }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unsupported grant", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Set("grant_type", "password") }, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "missing grant_type", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Del("grant_type") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "repeated parameter", clientID: webID, edit: func(_ *fixture, r *request) { r.form.Add("code", "again") }, wantStatus: 400, wantError: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			verifier := rfcVerifier
			if tc.noPKCE {
				verifier = ""
			}
			code := f.code(t, tc.clientID, verifier, "user-alice")
			r := &request{
				form:    url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectOf(tc.clientID)}},
				basicID: tc.clientID, basicKey: secretOf(tc.clientID),
			}
			if verifier != "" {
				r.form.Set("code_verifier", verifier)
			}
			tc.edit(f, r)
			res, body := f.postForm(t, "/token", r.form, r.basicID, r.basicKey)
			wantError(t, res, body, tc.wantStatus, tc.wantError)
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("error answer is cacheable")
			}
			if tc.wantStatus == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge")
			}
			st := f.s.Stats()
			if st.TokenCalls != 1 || st.TokensIssued != 0 {
				t.Errorf("stats %+v, want 1 call and 0 issued", st)
			}
			if wantIG := tc.wantError == "invalid_grant"; (st.InvalidGrant == 1) != wantIG {
				t.Errorf("invalid_grant count %d", st.InvalidGrant)
			}
		})
	}
}

// TestTokenRequestShape covers what a token request must look like on the
// wire: a form body, credentials not in the URL.
func TestTokenRequestShape(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {webID}, "client_secret": {webSecret}}

	req, _ := http.NewRequest("POST", f.srv.URL+"/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	res, b := f.send(t, req)
	wantError(t, res, decodeJSON(t, res, b), 400, "invalid_request")

	// Credentials in the query string are not read.
	req, _ = http.NewRequest("POST", f.srv.URL+"/token?"+form.Encode(), strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, b = f.send(t, req)
	wantError(t, res, decodeJSON(t, res, b), 401, "invalid_client")

	req, _ = http.NewRequest("GET", f.srv.URL+"/token", nil)
	res, b = f.send(t, req)
	wantError(t, res, decodeJSON(t, res, b), 405, "invalid_request")
	if res.Header.Get("Allow") != "POST" {
		t.Errorf("405 Allow %q", res.Header.Get("Allow"))
	}
}

// TestFailedExchangeUsesUpCode: once its client presented a code, the code
// is spent even if the exchange failed, and a retry counts as a replay.
func TestFailedExchangeUsesUpCode(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	code := f.code(t, webID, rfcVerifier, "user-alice")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {otherVerifier}}
	res, body := f.postForm(t, "/token", form, webID, webSecret)
	wantError(t, res, body, 400, "invalid_grant")
	form.Set("code_verifier", rfcVerifier)
	res, body = f.postForm(t, "/token", form, webID, webSecret)
	wantError(t, res, body, 400, "invalid_grant")
	if !strings.Contains(body["error_description"].(string), "already used") {
		t.Errorf("retry answered %v, want a replay refusal", body)
	}
}

func TestCodeReplayRevokesTokens(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	code := f.code(t, webID, rfcVerifier, "user-alice")
	tok := f.exchange(t, webID, code, rfcVerifier)
	if res, body := f.userinfo(t, tok.AccessToken); res.StatusCode != 200 || body["sub"] != "user-alice" {
		t.Fatalf("userinfo before replay: %d %v", res.StatusCode, body)
	}

	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {rfcVerifier}}
	res, body := f.postForm(t, "/token", form, webID, webSecret)
	wantError(t, res, body, 400, "invalid_grant")

	f.wantInvalidToken(t, tok.AccessToken)
	res, body = f.refresh(t, tok.RefreshToken)
	wantError(t, res, body, 400, "invalid_grant")

	st := f.s.Stats()
	if st.InvalidGrant != 2 || st.GrantsRevoked != 1 || st.TokensIssued != 1 {
		t.Fatalf("stats %+v, want 2 invalid_grant, 1 grant revoked, 1 issued", st)
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	t1 := f.login(t, "user-alice")

	res, body := f.refresh(t, t1.RefreshToken)
	t2 := tokenOf(t, res, body)
	if t2.RefreshToken == t1.RefreshToken || t2.AccessToken == t1.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", t2)
	}
	if t2.Scope != "openid email" {
		t.Errorf("refreshed scope %q", t2.Scope)
	}
	if res, _ := f.userinfo(t, t2.AccessToken); res.StatusCode != 200 {
		t.Fatalf("new access token refused: %d", res.StatusCode)
	}

	// The spent refresh token again: the whole family goes.
	res, body = f.refresh(t, t1.RefreshToken)
	wantError(t, res, body, 400, "invalid_grant")
	res, body = f.refresh(t, t2.RefreshToken)
	wantError(t, res, body, 400, "invalid_grant")
	f.wantInvalidToken(t, t2.AccessToken)
	f.wantInvalidToken(t, t1.AccessToken)

	st := f.s.Stats()
	if st.TokenCallsByGrant["refresh_token"] != 3 || st.TokenCallsByGrant["authorization_code"] != 1 || st.InvalidGrant != 2 || st.GrantsRevoked != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRefreshGrace(t *testing.T) {
	t.Parallel()
	f := setup(t, func(o *Options) { o.RefreshGrace = 30 * time.Second })
	t1 := f.login(t, "user-alice")
	res, body := f.refresh(t, t1.RefreshToken)
	t2 := tokenOf(t, res, body)

	f.clock.Advance(10 * time.Second)
	res, body = f.refresh(t, t1.RefreshToken)
	again := tokenOf(t, res, body)
	if again.RefreshToken != t2.RefreshToken || again.AccessToken == t2.AccessToken {
		t.Fatalf("reuse within grace answered %+v, want a new access token and the current refresh token", again)
	}

	f.clock.Advance(25 * time.Second)
	res, body = f.refresh(t, t1.RefreshToken)
	wantError(t, res, body, 400, "invalid_grant")
	res, body = f.refresh(t, t2.RefreshToken)
	wantError(t, res, body, 400, "invalid_grant")
}

func TestRefreshErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       func(*Options)
		edit       func(f *fixture, form url.Values) (id, secret string)
		wantStatus int
		wantError  string
		wantScope  string // on success
	}{
		{name: "another client", edit: func(_ *fixture, _ url.Values) (string, string) { return legacyID, legacySecret }, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown token", edit: func(_ *fixture, form url.Values) (string, string) {
			form.Set("refresh_token", "nope")
			return webID, webSecret
		}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "missing token", edit: func(_ *fixture, form url.Values) (string, string) {
			form.Del("refresh_token")
			return webID, webSecret
		}, wantStatus: 400, wantError: "invalid_request"},
		{name: "wider scope", edit: func(_ *fixture, form url.Values) (string, string) {
			form.Set("scope", "openid email admin")
			return webID, webSecret
		}, wantStatus: 400, wantError: "invalid_scope"},
		{name: "narrower scope", edit: func(_ *fixture, form url.Values) (string, string) {
			form.Set("scope", "email")
			return webID, webSecret
		}, wantStatus: 200, wantScope: "email"},
		{name: "expired refresh token", opts: func(o *Options) { o.RefreshTokenTTL = time.Hour }, edit: func(f *fixture, _ url.Values) (string, string) {
			f.clock.Advance(time.Hour)
			return webID, webSecret
		}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "refresh token within its lifetime", opts: func(o *Options) { o.RefreshTokenTTL = time.Hour }, edit: func(f *fixture, _ url.Values) (string, string) {
			f.clock.Advance(59 * time.Minute)
			return webID, webSecret
		}, wantStatus: 200, wantScope: "openid email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, tc.opts)
			tok := f.login(t, "user-bob")
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			id, secret := tc.edit(f, form)
			res, body := f.postForm(t, "/token", form, id, secret)
			if tc.wantStatus == 200 {
				if got := tokenOf(t, res, body); got.Scope != tc.wantScope {
					t.Fatalf("scope %q, want %q", got.Scope, tc.wantScope)
				}
				return
			}
			wantError(t, res, body, tc.wantStatus, tc.wantError)
			// A refused refresh by someone else must not revoke the
			// holder's tokens.
			if res, _ := f.userinfo(t, tok.AccessToken); tc.name == "another client" && res.StatusCode != 200 {
				t.Fatalf("another client's attempt revoked the tokens")
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		form        func(tok TokenResponse) url.Values
		id, secret  string
		wantStatus  int
		wantError   string
		accessOK    bool // the access token still works afterwards
		refreshOK   bool // the refresh token still works afterwards
		revocations int
	}{
		{name: "unknown token", form: func(TokenResponse) url.Values { return url.Values{"token": {"nope"}} }, id: webID, secret: webSecret, wantStatus: 200, accessOK: true, refreshOK: true, revocations: 1},
		{name: "refresh token", form: func(t TokenResponse) url.Values {
			return url.Values{"token": {t.RefreshToken}, "token_type_hint": {"refresh_token"}}
		}, id: webID, secret: webSecret, wantStatus: 200, revocations: 1},
		{name: "refresh token with the wrong hint", form: func(t TokenResponse) url.Values {
			return url.Values{"token": {t.RefreshToken}, "token_type_hint": {"access_token"}}
		}, id: webID, secret: webSecret, wantStatus: 200, revocations: 1},
		{name: "access token", form: func(t TokenResponse) url.Values { return url.Values{"token": {t.AccessToken}} }, id: webID, secret: webSecret, wantStatus: 200, refreshOK: true, revocations: 1},
		{name: "bad secret", form: func(t TokenResponse) url.Values { return url.Values{"token": {t.RefreshToken}} }, id: webID, secret: "wrong", wantStatus: 401, wantError: "invalid_client", accessOK: true, refreshOK: true},
		{name: "another client's token", form: func(t TokenResponse) url.Values { return url.Values{"token": {t.RefreshToken}} }, id: legacyID, secret: legacySecret, wantStatus: 400, wantError: "unauthorized_client", accessOK: true, refreshOK: true},
		{name: "no token", form: func(TokenResponse) url.Values { return url.Values{} }, id: webID, secret: webSecret, wantStatus: 400, wantError: "invalid_request", accessOK: true, refreshOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			tok := f.login(t, "user-alice")
			res, body := f.postForm(t, "/revoke", tc.form(tok), tc.id, tc.secret)
			if tc.wantStatus == 200 {
				if res.StatusCode != 200 {
					t.Fatalf("revoke: %d %v", res.StatusCode, body)
				}
			} else {
				wantError(t, res, body, tc.wantStatus, tc.wantError)
			}
			if got := f.s.Stats().Revocations; got != tc.revocations {
				t.Errorf("revocations %d, want %d", got, tc.revocations)
			}
			if tc.accessOK {
				if res, _ := f.userinfo(t, tok.AccessToken); res.StatusCode != 200 {
					t.Errorf("access token refused after revoke: %d", res.StatusCode)
				}
			} else {
				f.wantInvalidToken(t, tok.AccessToken)
			}
			res, body = f.refresh(t, tok.RefreshToken)
			if tc.refreshOK != (res.StatusCode == 200) {
				t.Errorf("refresh after revoke: %d %v, want ok=%v", res.StatusCode, body, tc.refreshOK)
			}
		})
	}
}

func TestUserinfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		user      string
		spoil     func(t *testing.T, f *fixture, tok TokenResponse) string // returns the token to present
		wantError bool
		noErrAttr bool // a challenge without error="..." (no credentials sent)
	}{
		{name: "valid", user: "user-alice", spoil: func(_ *testing.T, _ *fixture, tok TokenResponse) string { return tok.AccessToken }},
		{name: "unverified email", user: "user-mallory", spoil: func(_ *testing.T, _ *fixture, tok TokenResponse) string { return tok.AccessToken }},
		{name: "no token", user: "user-alice", spoil: func(*testing.T, *fixture, TokenResponse) string { return "" }, wantError: true, noErrAttr: true},
		{name: "unknown token", user: "user-alice", spoil: func(*testing.T, *fixture, TokenResponse) string { return "nope" }, wantError: true},
		{name: "refresh token as access token", user: "user-alice", spoil: func(_ *testing.T, _ *fixture, tok TokenResponse) string { return tok.RefreshToken }, wantError: true},
		{name: "expired by ExpireAccessTokens", user: "user-alice", spoil: func(t *testing.T, f *fixture, tok TokenResponse) string {
			f.s.ExpireAccessTokens()
			return tok.AccessToken
		}, wantError: true},
		{name: "expired by the clock", user: "user-alice", spoil: func(t *testing.T, f *fixture, tok TokenResponse) string {
			f.clock.Advance(AccessTokenTTLDefault)
			return tok.AccessToken
		}, wantError: true},
		{name: "one second before expiry", user: "user-alice", spoil: func(t *testing.T, f *fixture, tok TokenResponse) string {
			f.clock.Advance(AccessTokenTTLDefault - time.Second)
			return tok.AccessToken
		}},
		{name: "revoked", user: "user-alice", spoil: func(t *testing.T, f *fixture, tok TokenResponse) string {
			f.postForm(t, "/revoke", url.Values{"token": {tok.AccessToken}}, webID, webSecret)
			return tok.AccessToken
		}, wantError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			tok := f.login(t, tc.user)
			presented := tc.spoil(t, f, tok)
			if tc.wantError {
				if tc.noErrAttr {
					res, body := f.userinfo(t, presented)
					wantError(t, res, body, 401, "invalid_token")
					if h := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || strings.Contains(h, "error=") {
						t.Fatalf("WWW-Authenticate %q", h)
					}
					return
				}
				f.wantInvalidToken(t, presented)
				return
			}
			res, body := f.userinfo(t, presented)
			var want User
			for _, u := range DefaultUsers() {
				if u.ID == tc.user {
					want = u
				}
			}
			if res.StatusCode != 200 || body["sub"] != want.ID || body["email"] != want.Email || body["email_verified"] != want.EmailVerified || body["name"] != want.Name {
				t.Fatalf("userinfo %d %v, want %+v", res.StatusCode, body, want)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	for _, issuer := range []string{"", "https://auth.example.test/"} {
		t.Run("issuer="+issuer, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(o *Options) { o.Issuer = issuer })
			want := strings.TrimSuffix(issuer, "/")
			if want == "" {
				want = f.srv.URL
			}
			req, _ := http.NewRequest("GET", f.srv.URL+"/.well-known/oauth-authorization-server", nil)
			res, b := f.send(t, req)
			md := decodeJSON(t, res, b)
			if md["issuer"] != want || md["token_endpoint"] != want+"/token" || md["revocation_endpoint"] != want+"/revoke" ||
				md["userinfo_endpoint"] != want+"/userinfo" || md["authorization_endpoint"] != want+"/authorize" {
				t.Fatalf("metadata %v, want issuer %s", md, want)
			}
			if md["authorization_response_iss_parameter_supported"] != true {
				t.Errorf("metadata does not announce iss")
			}
			if m, _ := md["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
				t.Errorf("code_challenge_methods_supported %v", md["code_challenge_methods_supported"])
			}
			// The iss of an authorization response is the issuer.
			_, loc, _ := f.decide(t, authParams(webID, rfcVerifier), "user-alice", "approve")
			if loc.Query().Get("iss") != want {
				t.Fatalf("iss %q, want %q", loc.Query().Get("iss"), want)
			}
		})
	}
}

func TestNotSimulated(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	req, _ := http.NewRequest("GET", f.srv.URL+"/oauth2/v4/token", nil)
	res, b := f.send(t, req)
	body := decodeJSON(t, res, b)
	if res.StatusCode != 404 || body["error"] != "not_simulated" || body["error_description"] == "" {
		t.Fatalf("got %d %v", res.StatusCode, body)
	}
	routes, _ := body["routes"].([]any)
	var found bool
	for _, r := range routes {
		found = found || r == "POST /token"
	}
	if !found {
		t.Fatalf("routes %v do not list POST /token", routes)
	}
}

func TestPublicClient(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	code := f.code(t, spaID, rfcVerifier, "user-alice")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {spaRedirect}, "code_verifier": {rfcVerifier}, "client_id": {spaID}}
	res, body := f.postForm(t, "/token", form, "", "")
	tok := tokenOf(t, res, body)
	if res, _ := f.userinfo(t, tok.AccessToken); res.StatusCode != 200 {
		t.Fatalf("userinfo: %d", res.StatusCode)
	}
}

func TestResetForgetsEverything(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	tok := f.login(t, "user-alice")
	if err := f.s.Fault(RouteUserinfo, Fault{Status: 500}); err != nil {
		t.Fatal(err)
	}
	f.s.AddClient(Client{ID: "late", Secret: "x", RedirectURIs: []string{"http://127.0.0.1:9/late"}})
	f.s.Reset()
	f.wantInvalidToken(t, tok.AccessToken) // not the 500: the fault went too
	st := f.s.Stats()
	if st.TokenCalls != 0 || st.UserinfoCalls != 1 || st.FaultsInjected != 0 {
		t.Fatalf("stats after reset %+v", st)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/authorize?client_id=late&redirect_uri=http://127.0.0.1:9/late", nil)
	if res, b := f.send(t, req); !strings.Contains(string(b), "Unknown client") {
		t.Fatalf("a client added after New survived Reset: %d %s", res.StatusCode, b)
	}
}
