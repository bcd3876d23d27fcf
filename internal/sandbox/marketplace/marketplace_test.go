package marketplace

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

const (
	testClientID    = "08ec69f6-d37e-414d-83eb-324e94afddf0"
	testSecret      = "market-secret"
	testIntegID     = "integ-client"
	testIntegSecret = "integ-secret"
	testEmail       = "joe.dunphy@example.com"
	testPassword    = "secret-joe"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

type fixture struct {
	m      *Marketplace
	srv    *httptest.Server
	clock  *testutil.Clock
	userID string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	clock := testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	m := New(Options{
		ClientID:                testClientID,
		ClientSecret:            testSecret,
		IntegrationClientID:     testIntegID,
		IntegrationClientSecret: testIntegSecret,
		AccessTokenTTL:          time.Hour,
		Now:                     clock.Now,
	})
	id := m.AddUser(testEmail, testPassword, Profile{
		FirstName:   "Joe",
		LastName:    "Dunphy",
		Bio:         "Sky diver",
		PublicData:  map[string]any{"role": "customer"},
		PrivateData: map[string]any{"idv": "pending"},
	})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return &fixture{m: m, srv: srv, clock: clock, userID: id}
}

// post sends a form to path and decodes the JSON answer.
func (f *fixture) post(t *testing.T, path string, form url.Values, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func (f *fixture) get(t *testing.T, path, authorization string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Accept", "application/json")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", req.Method, req.URL.Path, ct, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: body %s: %v", req.Method, req.URL.Path, b, err)
	}
	return res.StatusCode, v
}

func (f *fixture) login(t *testing.T) TokenResponse {
	t.Helper()
	return f.token(t, url.Values{"client_id": {testClientID}, "grant_type": {"password"},
		"username": {testEmail}, "password": {testPassword}, "scope": {"user"}})
}

func (f *fixture) anon(t *testing.T) TokenResponse {
	t.Helper()
	return f.token(t, url.Values{"client_id": {testClientID}, "grant_type": {"client_credentials"}, "scope": {"public-read"}})
}

func (f *fixture) token(t *testing.T, form url.Values) TokenResponse {
	t.Helper()
	status, body := f.post(t, "/v1/auth/token", form, nil)
	if status != 200 {
		t.Fatalf("token %v: %d %v", form.Get("grant_type"), status, body)
	}
	b, _ := json.Marshal(body)
	var tr TokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTokenGrants(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := f.login(t)
	tests := []struct {
		name        string
		form        url.Values
		scope       string
		wantRefresh bool
	}{
		{"client_credentials anonymous", url.Values{"client_id": {testClientID}, "grant_type": {"client_credentials"}, "scope": {"public-read"}}, "public-read", false},
		{"client_credentials anonymous without scope", url.Values{"client_id": {testClientID}, "grant_type": {"client_credentials"}}, "public-read", false},
		{"password", url.Values{"client_id": {testClientID}, "grant_type": {"password"}, "username": {testEmail}, "password": {testPassword}, "scope": {"user"}}, "user", true},
		{"password email case-insensitive", url.Values{"client_id": {testClientID}, "grant_type": {"password"}, "username": {strings.ToUpper(testEmail)}, "password": {testPassword}}, "user", true},
		{"client_credentials integration", url.Values{"client_id": {testIntegID}, "client_secret": {testIntegSecret}, "grant_type": {"client_credentials"}, "scope": {"integ"}}, "integ", true},
		{"token_exchange", url.Values{"client_id": {testClientID}, "client_secret": {testSecret}, "grant_type": {"token_exchange"}, "subject_token": {user.AccessToken}, "scope": {"trusted:user"}}, "trusted:user", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.post(t, "/v1/auth/token", tc.form, nil)
			if status != 200 {
				t.Fatalf("status %d, body %v", status, body)
			}
			if body["token_type"] != "bearer" || body["scope"] != tc.scope || body["expires_in"] != float64(3600) {
				t.Errorf("body %v, want bearer, scope %s, expires_in 3600", body, tc.scope)
			}
			if at, _ := body["access_token"].(string); len(at) < 32 {
				t.Errorf("access_token %q too short", at)
			}
			_, hasRefresh := body["refresh_token"]
			if hasRefresh != tc.wantRefresh {
				t.Errorf("refresh_token present = %v, want %v", hasRefresh, tc.wantRefresh)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	banned := f.m.AddUser("banned@example.com", "pw-banned", Profile{FirstName: "B"})
	f.m.SetBanned(banned, true)
	user := f.login(t)
	pw := func(user, pass string) url.Values {
		return url.Values{"client_id": {testClientID}, "grant_type": {"password"}, "username": {user}, "password": {pass}}
	}
	tests := []struct {
		name   string
		form   url.Values
		ctype  string
		status int
		code   string
	}{
		{"json body", nil, "application/json", 400, "invalid_request"},
		{"missing grant_type", url.Values{"client_id": {testClientID}}, "", 400, "invalid_request"},
		{"unknown grant_type", url.Values{"client_id": {testClientID}, "grant_type": {"implicit"}}, "", 400, "unsupported_grant_type"},
		{"unknown client", url.Values{"client_id": {"nope"}, "grant_type": {"client_credentials"}}, "", 401, "invalid_client"},
		{"missing client", url.Values{"grant_type": {"client_credentials"}}, "", 401, "invalid_client"},
		{"anonymous wrong scope", url.Values{"client_id": {testClientID}, "grant_type": {"client_credentials"}, "scope": {"user"}}, "", 400, "invalid_scope"},
		{"integration wrong secret", url.Values{"client_id": {testIntegID}, "client_secret": {"wrong"}, "grant_type": {"client_credentials"}}, "", 401, "invalid_client"},
		{"integration no secret", url.Values{"client_id": {testIntegID}, "grant_type": {"client_credentials"}}, "", 401, "invalid_client"},
		{"wrong password", pw(testEmail, "wrong"), "", 401, "invalid_grant"},
		{"unknown user", pw("nobody@example.com", testPassword), "", 401, "invalid_grant"},
		{"banned user", pw("banned@example.com", "pw-banned"), "", 401, "invalid_grant"},
		{"missing password", pw(testEmail, ""), "", 400, "invalid_request"},
		{"password wrong scope", url.Values{"client_id": {testClientID}, "grant_type": {"password"}, "username": {testEmail}, "password": {testPassword}, "scope": {"integ"}}, "", 400, "invalid_scope"},
		{"password with integration client", url.Values{"client_id": {testIntegID}, "grant_type": {"password"}, "username": {testEmail}, "password": {testPassword}}, "", 401, "invalid_client"},
		{"unknown refresh token", url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, "", 401, "invalid_grant"},
		{"missing refresh token", url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}}, "", 400, "invalid_request"},
		{"refresh with other client", url.Values{"client_id": {testIntegID}, "grant_type": {"refresh_token"}, "refresh_token": {user.RefreshToken}}, "", 401, "invalid_grant"},
		{"token_exchange without secret", url.Values{"client_id": {testClientID}, "grant_type": {"token_exchange"}, "subject_token": {user.AccessToken}}, "", 401, "invalid_client"},
		{"token_exchange bad subject", url.Values{"client_id": {testClientID}, "client_secret": {testSecret}, "grant_type": {"token_exchange"}, "subject_token": {"nope"}}, "", 401, "invalid_grant"},
		{"oversized body", url.Values{"client_id": {testClientID}, "grant_type": {"client_credentials"}, "pad": {strings.Repeat("x", maxFormBytes)}}, "", 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.form.Encode()
			if tc.form == nil {
				body = `{"grant_type":"client_credentials"}`
			}
			req, _ := http.NewRequest("POST", f.srv.URL+"/v1/auth/token", strings.NewReader(body))
			ct := tc.ctype
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ct)
			status, got := do(t, req)
			if status != tc.status || got["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, got, tc.status, tc.code)
			}
			if d, _ := got["error_description"].(string); d == "" {
				t.Errorf("no error_description in %v", got)
			}
			if _, ok := got["access_token"]; ok {
				t.Errorf("error response carries a token: %v", got)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	first := f.login(t)
	refreshForm := func(rt string) url.Values {
		return url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}, "refresh_token": {rt}}
	}
	second := f.token(t, refreshForm(first.RefreshToken))
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("refresh did not rotate: %+v after %+v", second, first)
	}
	if second.Scope != ScopeUser {
		t.Errorf("scope %q after refresh", second.Scope)
	}
	// The used refresh token is spent.
	if status, body := f.post(t, "/v1/auth/token", refreshForm(first.RefreshToken), nil); status != 401 || body["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", status, body)
	}
	// Both access tokens still work until they expire.
	for _, at := range []string{first.AccessToken, second.AccessToken} {
		if status, body := f.get(t, "/v1/api/current_user/show", "bearer "+at); status != 200 {
			t.Fatalf("access token after refresh: %d %v", status, body)
		}
	}
	// Once expired, the refresh token gets a working one again.
	f.clock.Advance(time.Hour)
	if status, _ := f.get(t, "/v1/api/current_user/show", "Bearer "+second.AccessToken); status != 401 {
		t.Fatalf("expired token accepted: %d", status)
	}
	third := f.token(t, refreshForm(second.RefreshToken))
	if status, body := f.get(t, "/v1/api/current_user/show", "Bearer "+third.AccessToken); status != 200 {
		t.Fatalf("refreshed token: %d %v", status, body)
	}
	// An integration session refreshes too.
	integ := f.token(t, url.Values{"client_id": {testIntegID}, "client_secret": {testIntegSecret}, "grant_type": {"client_credentials"}})
	ri := f.token(t, url.Values{"client_id": {testIntegID}, "grant_type": {"refresh_token"}, "refresh_token": {integ.RefreshToken}})
	if ri.Scope != ScopeIntegration {
		t.Errorf("integration refresh scope %q", ri.Scope)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a := f.login(t)
	b := f.login(t)
	// A second access token in a's family.
	a2 := f.token(t, url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
	revoke := url.Values{"token": {a2.RefreshToken}}

	status, body := f.post(t, "/v1/auth/revoke", revoke, nil)
	if status != 401 || apiCode(body) != "auth-missing-access-token" {
		t.Fatalf("revoke without bearer: %d %v", status, body)
	}
	status, body = f.post(t, "/v1/auth/revoke", revoke, http.Header{"Authorization": {"Bearer garbage"}})
	if status != 401 || apiCode(body) != "auth-invalid-access-token" {
		t.Fatalf("revoke with bad bearer: %d %v", status, body)
	}
	status, body = f.post(t, "/v1/auth/revoke", url.Values{}, http.Header{"Authorization": {"Bearer " + b.AccessToken}})
	if status != 400 || body["error"] != "invalid_request" {
		t.Fatalf("revoke without token: %d %v", status, body)
	}

	status, body = f.post(t, "/v1/auth/revoke", revoke, http.Header{"Authorization": {"Bearer " + a2.AccessToken}})
	if status != 200 || body["action"] != "revoked" {
		t.Fatalf("revoke: %d %v", status, body)
	}
	for _, at := range []string{a.AccessToken, a2.AccessToken} {
		if status, body := f.get(t, "/v1/api/current_user/show", "Bearer "+at); status != 401 || apiCode(body) != "auth-invalid-access-token" {
			t.Errorf("revoked family's access token: %d %v", status, body)
		}
	}
	if status, body := f.post(t, "/v1/auth/token", url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}, "refresh_token": {a2.RefreshToken}}, nil); status != 401 || body["error"] != "invalid_grant" {
		t.Errorf("revoked refresh token: %d %v", status, body)
	}
	// Another login is untouched, and revoking again does nothing.
	if status, _ := f.get(t, "/v1/api/current_user/show", "Bearer "+b.AccessToken); status != 200 {
		t.Errorf("other session's token: %d", status)
	}
	status, body = f.post(t, "/v1/auth/revoke", revoke, http.Header{"Authorization": {"Bearer " + b.AccessToken}})
	if status != 200 || body["action"] != "nothing" {
		t.Errorf("second revoke: %d %v", status, body)
	}
}

func TestCurrentUserShow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok := f.login(t)
	status, body := f.get(t, "/v1/api/current_user/show", "bearer "+tok.AccessToken)
	if status != 200 {
		t.Fatalf("status %d %v", status, body)
	}
	data := body["data"].(map[string]any)
	if data["id"] != f.userID || !uuidRE.MatchString(f.userID) || data["type"] != "currentUser" {
		t.Fatalf("data %v, want id %s (a UUID), type currentUser", data, f.userID)
	}
	attr := data["attributes"].(map[string]any)
	if attr["email"] != testEmail || attr["emailVerified"] != true || attr["banned"] != false || attr["deleted"] != false {
		t.Errorf("attributes %v", attr)
	}
	if attr["createdAt"] != "2026-03-01T12:00:00.000Z" {
		t.Errorf("createdAt %v", attr["createdAt"])
	}
	p := attr["profile"].(map[string]any)
	want := map[string]any{"firstName": "Joe", "lastName": "Dunphy", "displayName": "Joe D", "abbreviatedName": "JD", "bio": "Sky diver"}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("profile.%s = %v, want %v", k, p[k], v)
		}
	}
	if p["publicData"].(map[string]any)["role"] != "customer" || p["privateData"].(map[string]any)["idv"] != "pending" {
		t.Errorf("extended data %v", p)
	}
	if m, ok := p["protectedData"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("protectedData %v, want {}", p["protectedData"])
	}
	// A trusted:user token sees the same user.
	tr := f.token(t, url.Values{"client_id": {testClientID}, "client_secret": {testSecret}, "grant_type": {"token_exchange"}, "subject_token": {tok.AccessToken}})
	status, body = f.get(t, "/v1/api/current_user/show", "Bearer "+tr.AccessToken)
	if status != 200 || body["data"].(map[string]any)["id"] != f.userID {
		t.Errorf("trusted token: %d %v", status, body)
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	expiring := f.login(t)
	f.clock.Advance(time.Hour) // expiring's lifetime is exactly over
	anon := f.anon(t)
	integ := f.token(t, url.Values{"client_id": {testIntegID}, "client_secret": {testIntegSecret}, "grant_type": {"client_credentials"}})
	tests := []struct {
		name   string
		path   string
		auth   string
		status int
		code   string
	}{
		{"missing token", "/v1/api/current_user/show", "", 401, "auth-missing-access-token"},
		{"basic scheme", "/v1/api/current_user/show", "Basic am9lOnNlY3JldA==", 401, "auth-invalid-access-token"},
		{"empty bearer", "/v1/api/current_user/show", "Bearer ", 401, "auth-invalid-access-token"},
		{"garbage token", "/v1/api/current_user/show", "Bearer not-a-token", 401, "auth-invalid-access-token"},
		{"expired token", "/v1/api/current_user/show", "Bearer " + expiring.AccessToken, 401, "auth-invalid-access-token"},
		{"anonymous token", "/v1/api/current_user/show", "Bearer " + anon.AccessToken, 403, "forbidden"},
		{"integration token", "/v1/api/current_user/show", "Bearer " + integ.AccessToken, 403, "forbidden"},
		{"unknown endpoint", "/v1/api/nope/show", "Bearer " + anon.AccessToken, 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.get(t, tc.path, tc.auth)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			errs, _ := body["errors"].([]any)
			if len(errs) != 1 {
				t.Fatalf("errors %v", body)
			}
			e := errs[0].(map[string]any)
			if e["code"] != tc.code || e["status"] != float64(tc.status) || e["title"] == "" || !uuidRE.MatchString(e["id"].(string)) {
				t.Errorf("error %v, want code %s status %d with a UUID id and a title", e, tc.code, tc.status)
			}
		})
	}
}

func TestExpireTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok := f.login(t)
	if status, _ := f.get(t, "/v1/api/current_user/show", "Bearer "+tok.AccessToken); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	f.m.ExpireTokens()
	if status, body := f.get(t, "/v1/api/current_user/show", "Bearer "+tok.AccessToken); status != 401 || apiCode(body) != "auth-invalid-access-token" {
		t.Fatalf("after ExpireTokens: %d %v", status, body)
	}
	// Refresh tokens survive ExpireTokens.
	next := f.token(t, url.Values{"client_id": {testClientID}, "grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status, _ := f.get(t, "/v1/api/current_user/show", "Bearer "+next.AccessToken); status != 200 {
		t.Fatalf("after refresh: %d", status)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	m := New(Options{ClientID: "c"})
	srv := httptest.NewServer(m)
	defer srv.Close()
	res, err := http.PostForm(srv.URL+"/v1/auth/token", url.Values{"client_id": {"c"}, "grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tr TokenResponse
	if err := json.NewDecoder(res.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if tr.ExpiresIn != int64(AccessTokenTTLDefault/time.Second) || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("expires_in %d, Cache-Control %q", tr.ExpiresIn, res.Header.Get("Cache-Control"))
	}
	// No client secret configured: token_exchange is refused.
	res2, err := http.PostForm(srv.URL+"/v1/auth/token", url.Values{"client_id": {"c"}, "client_secret": {""}, "grant_type": {"token_exchange"}, "subject_token": {tr.AccessToken}})
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != 401 {
		t.Errorf("token_exchange without configured secret: %d", res2.StatusCode)
	}
}

func apiCode(body map[string]any) string {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].(map[string]any)["code"].(string)
	return c
}

func TestAccessTokenClaims(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok := f.login(t)
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not JWT-shaped", tok.AccessToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ClientID string `json:"client-id"`
		Scope    string `json:"scope"`
		Exp      int64  `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.ClientID != testClientID || c.Scope != "user" || c.Exp != f.clock.Now().Add(time.Hour).Unix() {
		t.Errorf("claims %+v", c)
	}
	// Validity is the simulator's table, not the claims: a token with the
	// same claims but another signature is refused.
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("forged"))
	if status, body := f.get(t, "/v1/api/current_user/show", "Bearer "+forged); status != 401 || apiCode(body) != "auth-invalid-access-token" {
		t.Errorf("forged token: %d %v", status, body)
	}
}

func TestTransitEncoding(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"map keys are keywords, sorted", map[string]any{"b": 1, "a": "x"}, `["^ ","~:a","x","~:b",1]`},
		{"tags", []any{uuidValue("u-1"), keyword("user"), timestamp(ts)}, `["~uu-1","~:user","~m1772366400000"]`},
		{"strings that look like tags are escaped", []any{"~x", "^ ", "`y", "plain"}, `["~~x","~^ ","~` + "`" + `y","plain"]`},
		{"scalars", []any{nil, true, 1.5, json.Number("7")}, `[null,true,1.5,7]`},
		{"typed extended data", map[string]any{"tags": []string{"a"}}, `["^ ","~:tags",["a"]]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := encodeTransit(&b, tc.in, false); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %s, want %s", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	if err := encodeTransit(&b, math.Inf(1), false); err == nil {
		t.Error("encoded +Inf")
	}
}

func TestCurrentUserShowTransit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok := f.login(t)
	for _, auth := range []string{"Bearer " + tok.AccessToken, "Bearer nope"} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/api/current_user/show", nil)
		req.Header.Set("Authorization", auth)
		req.Header.Set("Accept", "application/transit+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/transit+json") {
			t.Errorf("Content-Type %q", ct)
		}
		var v []any
		if err := json.Unmarshal(body, &v); err != nil || len(v) == 0 || v[0] != "^ " {
			t.Fatalf("not a Transit map: %s", body)
		}
		want := `"~u` + f.userID + `"`
		if res.StatusCode != 200 {
			want = `"~:errors"`
		}
		if !strings.Contains(string(body), want) {
			t.Errorf("%d body %s lacks %s", res.StatusCode, body, want)
		}
	}
}
