package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// oauth2Config is an x/oauth2 client of the web client, with the given way
// of sending its credentials.
func (f *fixture) oauth2Config(style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     webID,
		ClientSecret: webSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.srv.URL + "/authorize",
			TokenURL:  f.srv.URL + "/token",
			AuthStyle: style,
		},
		RedirectURL: webRedirect,
		Scopes:      []string{"openid", "email"},
	}
}

func (f *fixture) ctx(t *testing.T) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, f.srv.Client())
}

// browse plays the browser on authURL: loads the consent page, submits its
// form as user, and returns the redirect it is sent to.
func (f *fixture) browse(t *testing.T, authURL, user string) url.Values {
	t.Helper()
	req, _ := http.NewRequest("GET", authURL, nil)
	res, b := f.send(t, req)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d %s", res.StatusCode, b)
	}
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(b), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	_, loc, b := f.decide(t, form, user, "approve")
	if loc == nil {
		t.Fatalf("consent form: no redirect; body %s", b)
	}
	return loc.Query()
}

// TestCodeFlowWithOAuth2Client runs the authorization code flow with PKCE
// and a refresh with golang.org/x/oauth2, as backlot's connections do, with
// both ways of client authentication.
func TestCodeFlowWithOAuth2Client(t *testing.T) {
	t.Parallel()
	for _, style := range []struct {
		name  string
		style oauth2.AuthStyle
	}{{"Basic", oauth2.AuthStyleInHeader}, {"body", oauth2.AuthStyleInParams}} {
		t.Run(style.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			cfg := f.oauth2Config(style.style)
			ctx := f.ctx(t)
			verifier := oauth2.GenerateVerifier()
			q := f.browse(t, cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier)), "user-bob")
			if q.Get("state") != "state-123" || q.Get("iss") != f.srv.URL || q.Get("code") == "" {
				t.Fatalf("authorization response %v", q)
			}

			tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "openid email" ||
				time.Until(tok.Expiry) < 59*time.Minute {
				t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
			}

			// Userinfo through the client's authenticated transport.
			res, err := cfg.Client(ctx, tok).Get(f.srv.URL + "/userinfo")
			if err != nil {
				t.Fatal(err)
			}
			var u User
			err = json.NewDecoder(res.Body).Decode(&u)
			res.Body.Close()
			if err != nil || u.ID != "user-bob" || u.Email != "bob@example.com" || !u.EmailVerified {
				t.Fatalf("userinfo %+v, %v", u, err)
			}

			// A token the client believes expired is refreshed, and
			// rotated.
			old := *tok
			tok.Expiry = time.Now().Add(-time.Minute)
			fresh, err := cfg.TokenSource(ctx, tok).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == old.RefreshToken {
				t.Fatalf("refresh did not rotate")
			}

			// Reusing the old refresh token is refused and revokes the
			// family, the fresh tokens included.
			old.Expiry = time.Now().Add(-time.Minute)
			_, err = cfg.TokenSource(ctx, &old).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("reuse of a rotated refresh token: %v, want invalid_grant", err)
			}
			f.wantInvalidToken(t, fresh.AccessToken)

			st := f.s.Stats()
			if st.TokenCalls != 3 || st.TokenCallsByGrant["authorization_code"] != 1 || st.TokenCallsByGrant["refresh_token"] != 2 ||
				st.InvalidGrant != 1 || st.GrantsRevoked != 1 || st.TokensIssued != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestConcurrentRefresh sends one refresh token many times at once: a
// strict server lets exactly one through, and the others, seen as reuse,
// revoke the family (the winner's new tokens included).
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 50} {
		t.Run(fmt.Sprintf("%d at once", n), func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			tok := f.login(t, "user-alice")
			start := make(chan struct{})
			type result struct {
				status int
				body   map[string]any
			}
			results := make(chan result, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					<-start
					form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
					req, _ := http.NewRequest("POST", f.srv.URL+"/token", strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(url.QueryEscape(webID), url.QueryEscape(webSecret))
					res, err := f.client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					var body map[string]any
					err = json.NewDecoder(res.Body).Decode(&body)
					res.Body.Close()
					if err != nil {
						t.Error(err)
						return
					}
					results <- result{res.StatusCode, body}
				})
			}
			close(start)
			wg.Wait()
			close(results)
			var wins, refused int
			var winner string
			for r := range results {
				switch {
				case r.status == 200:
					wins++
					winner, _ = r.body["access_token"].(string)
				case r.status == 400 && r.body["error"] == "invalid_grant":
					refused++
				default:
					t.Errorf("unexpected answer %d %v", r.status, r.body)
				}
			}
			if wins != 1 || refused != n-1 {
				t.Fatalf("%d successes and %d invalid_grant, want 1 and %d", wins, refused, n-1)
			}
			f.wantInvalidToken(t, winner)
			st := f.s.Stats()
			if st.TokenCallsByGrant["refresh_token"] != n || st.InvalidGrant != n-1 || st.GrantsRevoked != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route string
		fault Fault
		// calls are made in order; want lists each call's status (0: the
		// client gave up) and, for faulted ones, error and Retry-After.
		want []faultWant
	}{
		{name: "503 once", route: RouteToken, fault: Fault{Status: 503, Count: 1},
			want: []faultWant{{status: 503, err: "temporarily_unavailable"}, {status: 200}}},
		{name: "500 until cleared", route: RouteToken, fault: Fault{Status: 500},
			want: []faultWant{{status: 500, err: "server_error"}, {status: 500, err: "server_error"}, {status: 500, err: "server_error"}}},
		{name: "429 says when to come back", route: RouteToken, fault: Fault{Status: 429, Count: 2},
			want: []faultWant{{status: 429, err: "temporarily_unavailable", retryAfter: "1"}, {status: 429, retryAfter: "1", err: "temporarily_unavailable"}, {status: 200}}},
		{name: "503 with Retry-After rounded up", route: RouteToken, fault: Fault{Status: 503, RetryAfter: 2500 * time.Millisecond, Count: 1},
			want: []faultWant{{status: 503, err: "temporarily_unavailable", retryAfter: "3"}, {status: 200}}},
		{name: "error in a 200", route: RouteToken, fault: Fault{OAuthError: "invalid_grant", Count: 1},
			want: []faultWant{{status: 200, err: "invalid_grant"}, {status: 200}}},
		{name: "latency then the real answer", route: RouteToken, fault: Fault{Latency: 30 * time.Millisecond, Count: 1},
			want: []faultWant{{status: 200, minElapsed: 30 * time.Millisecond}}},
		{name: "a server that does not answer in time", route: RouteToken, fault: Fault{Latency: time.Minute, Count: 1},
			want: []faultWant{{status: 0}, {status: 200}}},
		{name: "fault on another route", route: RouteUserinfo, fault: Fault{Status: 502},
			want: []faultWant{{status: 200}, {status: 200}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			tok := f.login(t, "user-alice")
			if err := f.s.Fault(tc.route, tc.fault); err != nil {
				t.Fatal(err)
			}
			rt := tok.RefreshToken
			for i, w := range tc.want {
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				timeout := 5 * time.Second
				if w.status == 0 {
					timeout = 200 * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(t.Context(), timeout)
				req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(url.QueryEscape(webID), url.QueryEscape(webSecret))
				began := time.Now()
				res, err := f.client.Do(req)
				cancel()
				if w.status == 0 {
					if err == nil {
						res.Body.Close()
						t.Fatalf("call %d answered %d, want no answer", i, res.StatusCode)
					}
					continue
				}
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				var body map[string]any
				json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				if res.StatusCode != w.status || (w.err != "" && body["error"] != w.err) || (w.err == "" && body["error"] != nil) {
					t.Fatalf("call %d: %d %v, want %d %q", i, res.StatusCode, body, w.status, w.err)
				}
				if got := res.Header.Get("Retry-After"); got != w.retryAfter {
					t.Fatalf("call %d: Retry-After %q, want %q", i, got, w.retryAfter)
				}
				if el := time.Since(began); el < w.minElapsed {
					t.Fatalf("call %d took %s, want at least %s", i, el, w.minElapsed)
				}
				if w.err == "" {
					rt = body["refresh_token"].(string)
				}
			}
			st := f.s.Stats()
			// Faulted calls are token calls too, counted by grant.
			if st.TokenCallsByGrant["refresh_token"] != len(tc.want) {
				t.Fatalf("refresh calls %d, want %d", st.TokenCallsByGrant["refresh_token"], len(tc.want))
			}
		})
	}
}

type faultWant struct {
	status     int
	err        string
	retryAfter string
	minElapsed time.Duration
}

// TestErrorIn200FailsOAuth2Client: an error field in a 200 token answer is
// a failure to x/oauth2, as to backlot.
func TestErrorIn200FailsOAuth2Client(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	cfg := f.oauth2Config(oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	q := f.browse(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "user-alice")
	if err := f.s.Fault(RouteToken, Fault{OAuthError: "server_error", Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := cfg.Exchange(f.ctx(t), q.Get("code"), oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != 200 || re.ErrorCode != "server_error" {
		t.Fatalf("exchange: %v, want a RetrieveError from a 200", err)
	}
	// The fault answered in place of the server: the code is still good.
	if _, err := cfg.Exchange(f.ctx(t), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange after the fault: %v", err)
	}
}

func TestFaultValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route string
		fault Fault
	}{
		{name: "unknown route", route: "/nope", fault: Fault{Status: 500}},
		{name: "control route", route: "/_sim/stats", fault: Fault{Status: 500}},
		{name: "4xx status", route: RouteToken, fault: Fault{Status: 404}},
		{name: "2xx status", route: RouteToken, fault: Fault{Status: 200}},
		{name: "negative count", route: RouteToken, fault: Fault{Status: 500, Count: -1}},
		{name: "negative latency", route: RouteToken, fault: Fault{Latency: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{})
			if err := s.Fault(tc.route, tc.fault); err == nil {
				t.Fatalf("Fault(%q, %+v) accepted", tc.route, tc.fault)
			}
		})
	}
}

// TestSimControlsOverHTTP drives faults, stats and reset as `backlot dev`
// does, over HTTP.
func TestSimControlsOverHTTP(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	tok := f.login(t, "user-alice")
	postJSON := func(path, body string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, b := f.send(t, req)
		return res, decodeJSON(t, res, b)
	}
	get := func(path string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		res, b := f.send(t, req)
		return res, decodeJSON(t, res, b)
	}

	// Bad fault bodies are refused.
	for _, bad := range []string{`{"route":"/token","status":404}`, `{"route":"/nope","status":500}`, `{"route":"/token","status":500,"extra":1}`, `not json`} {
		if res, body := postJSON("/_sim/faults", bad); res.StatusCode != 400 || body["error"] != "invalid_request" {
			t.Errorf("POST /_sim/faults %s: %d %v", bad, res.StatusCode, body)
		}
	}

	res, body := postJSON("/_sim/faults", `{"route":"/userinfo","status":429,"retry_after_seconds":7,"count":2}`)
	if res.StatusCode != 200 {
		t.Fatalf("set fault: %d %v", res.StatusCode, body)
	}
	if fl, _ := body["faults"].(map[string]any)["/userinfo"].(map[string]any); fl["status"] != float64(429) || fl["count"] != float64(2) {
		t.Fatalf("faults listed %v", body)
	}
	res, _ = f.userinfo(t, tok.AccessToken)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "7" {
		t.Fatalf("userinfo under fault: %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if _, body := get("/_sim/faults"); body["faults"].(map[string]any)["/userinfo"].(map[string]any)["count"] != float64(1) {
		t.Fatalf("remaining count not listed: %v", body)
	}

	req, _ := http.NewRequest("DELETE", f.srv.URL+"/_sim/faults", nil)
	if res, _ := f.send(t, req); res.StatusCode != 200 {
		t.Fatalf("clear faults: %d", res.StatusCode)
	}
	if res, _ := f.userinfo(t, tok.AccessToken); res.StatusCode != 200 {
		t.Fatalf("userinfo after clearing: %d", res.StatusCode)
	}

	_, st := get("/_sim/stats")
	if st["token_calls"] != float64(1) || st["userinfo_calls"] != float64(2) || st["faults_injected"] != float64(1) ||
		st["token_calls_by_grant"].(map[string]any)["authorization_code"] != float64(1) {
		t.Fatalf("stats %v", st)
	}

	if res, _ := postJSON("/_sim/reset", ``); res.StatusCode != 200 {
		t.Fatalf("reset: %d", res.StatusCode)
	}
	f.wantInvalidToken(t, tok.AccessToken)
	if _, st := get("/_sim/stats"); st["token_calls"] != float64(0) || st["userinfo_calls"] != float64(1) {
		t.Fatalf("stats after reset %v", st)
	}
}
