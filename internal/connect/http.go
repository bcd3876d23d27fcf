package connect

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
)

// bindingCookie is the cookie that ties a pending login to the browser
// that started it: the callback carries no credential of the caller (the
// third party redirects the browser), so the state alone could be finished
// in another browser, connecting someone else's account to the caller.
const bindingCookie = "backlot_connect"

// Register mounts every connection's endpoints under /connect/<name>/.
func (s *Set) Register(mux *http.ServeMux) {
	for _, name := range s.Names() {
		c := s.conns[name]
		base := "/connect/" + name + "/"
		require := s.deps.Auth.Require(c.cfg.Auth, auth.Rule{})
		mux.Handle("GET "+base+"login", c.queryCredential(require(http.HandlerFunc(c.handleLogin))))
		mux.HandleFunc("GET "+base+"callback", c.handleCallback)
		mux.Handle("GET "+base+"userinfo", require(http.HandlerFunc(c.handleUserinfo)))
		mux.Handle("GET "+base+"status", require(http.HandlerFunc(c.handleStatus)))
		mux.Handle("POST "+base+"logout", require(http.HandlerFunc(c.handleLogout)))
	}
}

// queryCredential lets a Stripe App's browser redirect to GET login carry
// its credential as query parameters (user_id, account_id and signature,
// the value fetchStripeSignature returns): they become the Stripe-User-Id,
// Stripe-Account-Id and Stripe-Signature headers and are then verified
// exactly as those are. A request that has the header already is left
// alone; one that has both is ambiguous and refused.
func (c *Conn) queryCredential(next http.Handler) http.Handler {
	if !c.stripe {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !q.Has("signature") {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Stripe-Signature") != "" {
			httpapi.WriteError(w, r, httpapi.E(http.StatusBadRequest, "invalid_request",
				"the Stripe signature is both in the Stripe-Signature header and in the query; send one"))
			return
		}
		for _, k := range []string{"signature", "user_id", "account_id"} {
			if len(q[k]) > 1 {
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid_request", "query parameter %s is repeated", k))
				return
			}
		}
		r2 := r.Clone(r.Context())
		r2.Header.Set("Stripe-Signature", q.Get("signature"))
		r2.Header.Set("Stripe-User-Id", q.Get("user_id"))
		r2.Header.Set("Stripe-Account-Id", q.Get("account_id"))
		next.ServeHTTP(w, r2)
	})
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// authorizeURL is the third party's authorization URL for state, with the
// PKCE S256 challenge of verifier unless pkce is off.
func (c *Conn) authorizeURL(state, verifier string) string {
	var opts []oauth2.AuthCodeOption
	if c.cfg.PKCE == nil || *c.cfg.PKCE {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	return c.oauth.AuthCodeURL(state, opts...)
}

// handleLogin is GET /connect/<name>/login: a pending login bound to the
// caller and to this browser, then 303 to the third party.
func (c *Conn) handleLogin(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	if _, err := c.scope(p); err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden", err.Error()))
		return
	}
	state, binding, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	sh := hash(state)
	sealed, err := c.set.deps.Keys.Seal(store.KindConnectState, hex.EncodeToString(sh), c.name, []byte(verifier))
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("seal login verifier: %w", err))
		return
	}
	now := c.set.deps.Now()
	err = c.set.deps.Store.PutConnectState(r.Context(), store.ConnectState{
		Hash: sh, Connection: c.name, Authenticator: p.Authenticator, Tenant: p.Tenant, Subject: p.Subject,
		BindingHash: hash(binding), Verifier: sealed, ExpiresAt: now.Add(StateTTL),
	})
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: bindingCookie, Value: binding, Path: "/connect/" + c.name + "/",
		MaxAge: int(StateTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(c.set.deps.PublicURL, "https://"),
	})
	w.Header().Set("Cache-Control", "no-store")
	// The login URL may carry a signature: keep it out of Referer headers.
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, c.authorizeURL(state, verifier), http.StatusSeeOther)
}

func badCallback(code, desc string) *httpapi.Error {
	e := httpapi.E(http.StatusBadRequest, code, desc)
	e.Message = "The sign-in could not be completed. Please start it again."
	return e
}

// handleCallback is GET /connect/<name>/callback, where the third party
// sends the browser back. Every refusal stores nothing.
func (c *Conn) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	for _, k := range []string{"state", "code", "iss", "error"} {
		if len(q[k]) > 1 {
			httpapi.WriteError(w, r, badCallback("invalid_request", "query parameter "+k+" is repeated"))
			return
		}
	}
	state := q.Get("state")
	if state == "" {
		httpapi.WriteError(w, r, badCallback("invalid_state", "state is missing"))
		return
	}
	st, err := c.set.deps.Store.TakeConnectState(ctx, hash(state))
	if errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, r, badCallback("invalid_state", "state is unknown or was already used"))
		return
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	now := c.set.deps.Now()
	switch {
	case st.Connection != c.name:
		httpapi.WriteError(w, r, badCallback("invalid_state", "state belongs to another connection"))
		return
	case !now.Before(st.ExpiresAt):
		httpapi.WriteError(w, r, badCallback("invalid_state", "state has expired; start the login again"))
		return
	}
	ck, err := r.Cookie(bindingCookie)
	if err != nil || subtle.ConstantTimeCompare(hash(ck.Value), st.BindingHash) != 1 {
		e := httpapi.E(http.StatusForbidden, "state_mismatch", "state was issued to another principal or browser")
		e.Message = "This sign-in was started by someone else. Please start it again."
		httpapi.WriteError(w, r, e)
		return
	}
	// A callback that carries the caller's credential must be the same
	// principal the state was issued to.
	if p, err := c.set.deps.Auth.Authenticate(r, c.cfg.Auth, auth.Rule{}); err == nil && p != nil &&
		(p.Authenticator != st.Authenticator || p.Tenant != st.Tenant || p.Subject != st.Subject) {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "state_mismatch", "state was issued to another principal"))
		return
	}
	if q.Has("iss") && q.Get("iss") != c.issuer {
		httpapi.WriteError(w, r, badCallback("issuer_mismatch", "the authorization response's iss is not this connection's issuer"))
		return
	}
	if code := q.Get("error"); code != "" {
		orig, _ := json.Marshal(map[string]string{"error": code, "error_description": q.Get("error_description")})
		e := httpapi.E(http.StatusForbidden, "access_denied", "the third party refused the authorization")
		if code != "access_denied" {
			e = httpapi.E(http.StatusBadGateway, "authorization_failed", "the third party answered the authorization with an error")
		}
		e.Message = "The sign-in was not completed."
		e.Original = orig
		httpapi.WriteError(w, r, e)
		return
	}
	code := q.Get("code")
	if code == "" {
		httpapi.WriteError(w, r, badCallback("invalid_request", "code is missing"))
		return
	}
	verifier, err := c.set.deps.Keys.Open(store.KindConnectState, hex.EncodeToString(st.Hash), c.name, st.Verifier)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("open login verifier: %w", err))
		return
	}
	octx := httpContext(ctx, c.tokenHTTP)
	var opts []oauth2.AuthCodeOption
	if c.cfg.PKCE == nil || *c.cfg.PKCE {
		opts = append(opts, oauth2.VerifierOption(string(verifier)))
	}
	tok, err := c.oauth.Exchange(octx, code, opts...)
	if err != nil {
		httpapi.WriteError(w, r, exchangeError(err))
		return
	}
	if tok.AccessToken == "" {
		httpapi.WriteError(w, r, httpapi.E(http.StatusBadGateway, "exchange_failed", "the token answer has no access token"))
		return
	}
	scope, err := c.scope(&auth.Principal{Tenant: st.Tenant, Subject: st.Subject})
	if err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden", err.Error()))
		return
	}
	keyID, ct, err := c.seal(scope, tokens{Access: tok.AccessToken, Refresh: tok.RefreshToken, TokenType: tok.TokenType})
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	scopes := strings.Join(c.cfg.Scopes, " ")
	if sc, ok := tok.Extra("scope").(string); ok && sc != "" {
		scopes = sc
	}
	err = c.set.deps.Store.PutConnection(ctx, store.Connection{
		Scope: scope, Name: c.name, KeyID: keyID, Ciphertext: ct, State: store.ConnectionActive,
		Scopes: scopes, ExpiresAt: expiryOf(tok, now), CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if err := c.audit(r, st.Authenticator+":"+st.Subject, store.AuditConnActive, scope, now); err != nil {
		// The connection is made; the log line below still records it.
		c.set.deps.Logger.ErrorContext(ctx, "connection connected: audit log", "connection", c.name, "error", err.Error())
	}
	c.set.deps.Logger.InfoContext(ctx, "connection connected", "connection", c.name, "scope", scope)
	http.SetCookie(w, &http.Cookie{Name: bindingCookie, Value: "", Path: "/connect/" + c.name + "/", MaxAge: -1, HttpOnly: true})
	w.Header().Set("Cache-Control", "no-store")
	if c.cfg.ReturnTo == "" {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"connection": c.name, "connected": true})
		return
	}
	http.Redirect(w, r, c.cfg.ReturnTo, http.StatusSeeOther)
}

// exchangeError turns a failed code exchange into the envelope, with the
// third party's error body as original_error.
func exchangeError(err error) *httpapi.Error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		e := httpapi.E(http.StatusBadGateway, "exchange_failed", "the token endpoint could not be reached")
		e.Err = err
		return e
	}
	status := http.StatusBadRequest
	if re.Response != nil && (re.Response.StatusCode >= 500 || re.Response.StatusCode == http.StatusTooManyRequests) {
		status = http.StatusBadGateway
	}
	e := httpapi.Errorf(status, "exchange_failed", "the token endpoint refused the code: %s", re.ErrorCode)
	e.Message = "The sign-in could not be completed. Please start it again."
	if json.Valid(re.Body) {
		e.Original = re.Body
	}
	return e
}

// tokenError is the envelope for an error of Token.
func (c *Conn) tokenError(err error) error {
	var ue *UnavailableError
	switch {
	case errors.Is(err, ErrNotConnected):
		e := httpapi.Errorf(http.StatusUnauthorized, "not_connected", "no %s account is connected for this caller", c.name)
		e.Message = "Please connect your account."
		return e
	case errors.Is(err, ErrExpired):
		e := httpapi.Errorf(http.StatusUnauthorized, "connection_expired", "the %s connection has expired; connect again", c.name)
		e.Message = "Your connection has expired. Please connect your account again."
		return e
	case errors.As(err, &ue):
		e := httpapi.Errorf(http.StatusServiceUnavailable, "connection_unavailable", "refreshing the %s token failed; retry later", c.name)
		wait := max(1, int(time.Until(ue.RetryAt).Seconds()+0.999))
		e.Header = http.Header{"Retry-After": {strconv.Itoa(wait)}}
		e.Err = err
		return e
	}
	return err
}

// handleUserinfo is GET /connect/<name>/userinfo: the third party's
// userinfo for the caller's token, asked on every request (nothing is
// cached). An access token the third party refuses is refreshed once and
// the call retried.
func (c *Conn) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c.cfg.UserinfoURL == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "not_found", "connection %q has no userinfo_url", c.name))
		return
	}
	p, _ := auth.FromContext(ctx)
	scope, err := c.scope(p)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden", err.Error()))
		return
	}
	tok, err := c.token(ctx, scope)
	if err != nil {
		httpapi.WriteError(w, r, c.tokenError(err))
		return
	}
	status, body, err := c.userinfo(r, tok)
	if err == nil && status == http.StatusUnauthorized {
		if tok, err = c.refresh(ctx, scope, tok, true); err != nil {
			httpapi.WriteError(w, r, c.tokenError(err))
			return
		}
		status, body, err = c.userinfo(r, tok)
	}
	if err != nil {
		e := httpapi.E(http.StatusBadGateway, "upstream_error", "the userinfo endpoint could not be reached")
		e.Err = err
		httpapi.WriteError(w, r, e)
		return
	}
	if status != http.StatusOK {
		e := httpapi.Errorf(http.StatusBadGateway, "upstream_error", "the userinfo endpoint answered %d", status)
		if status == http.StatusUnauthorized {
			e = httpapi.E(http.StatusUnauthorized, "connection_expired", "the third party refused the refreshed token; connect again")
		}
		if json.Valid(body) {
			e.Original = body
		}
		httpapi.WriteError(w, r, e)
		return
	}
	var info map[string]any
	if err := json.Unmarshal(body, &info); err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusBadGateway, "upstream_error", "the userinfo answer is not a JSON object"))
		return
	}
	if c.cfg.RequireVerifiedEmail && info["email_verified"] != true {
		e := httpapi.E(http.StatusForbidden, "email_not_verified", "the third-party account's email is not verified")
		e.Message = "Please verify your email address with the third party first."
		httpapi.WriteError(w, r, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (c *Conn) userinfo(r *http.Request, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, c.cfg.UserinfoURL, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.set.deps.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("userinfo of %q: %w", c.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	if err != nil {
		return 0, nil, fmt.Errorf("userinfo of %q: %w", c.name, err)
	}
	return resp.StatusCode, body, nil
}

// statusBody is GET status's answer: never a token.
type statusBody struct {
	Connection  string     `json:"connection"`
	Connected   bool       `json:"connected"`
	State       string     `json:"state,omitempty"`
	Scopes      []string   `json:"scopes,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RetryAt     *time.Time `json:"retry_at,omitempty"`
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// handleStatus is GET /connect/<name>/status.
func (c *Conn) handleStatus(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	scope, err := c.scope(p)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden", err.Error()))
		return
	}
	out := statusBody{Connection: c.name}
	row, err := c.set.deps.Store.GetConnection(r.Context(), scope, c.name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		httpapi.WriteError(w, r, err)
		return
	default:
		out.Connected, out.State = true, row.State
		out.Scopes = strings.Fields(row.Scopes)
		out.ExpiresAt, out.RetryAt, out.ConnectedAt = timePtr(row.ExpiresAt), timePtr(row.RetryAt), timePtr(row.CreatedAt)
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// handleLogout is POST /connect/<name>/logout: revoke at the third party
// (RFC 7009), then forget the tokens. 200 and an "invalid token" answer
// count as revoked; 503 keeps the tokens and asks to retry later.
func (c *Conn) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := auth.FromContext(ctx)
	scope, err := c.scope(p)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden", err.Error()))
		return
	}
	row, err := c.set.deps.Store.GetConnection(ctx, scope, c.name)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if c.cfg.RevokeURL != "" && row.State != store.ConnectionExpired {
		t, err := c.open(row)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		if herr := c.revoke(r, t); herr != nil {
			httpapi.WriteError(w, r, herr)
			return
		}
	}
	if err := c.set.deps.Store.DeleteConnection(ctx, scope, c.name); err != nil && !errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, r, err)
		return
	}
	if err := c.audit(r, p.Authenticator+":"+p.Subject, store.AuditConnDisconnect, scope, c.set.deps.Now()); err != nil {
		c.set.deps.Logger.ErrorContext(ctx, "connection logged out: audit log", "connection", c.name, "error", err.Error())
	}
	c.set.deps.Logger.InfoContext(ctx, "connection logged out", "connection", c.name, "scope", scope)
	w.WriteHeader(http.StatusNoContent)
}

// revoke revokes the refresh token (which takes its access tokens with it
// at a conforming server), or the access token when there is none.
func (c *Conn) revoke(r *http.Request, t tokens) *httpapi.Error {
	form := url.Values{"token": {t.Refresh}, "token_type_hint": {"refresh_token"}}
	if t.Refresh == "" {
		form = url.Values{"token": {t.Access}, "token_type_hint": {"access_token"}}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, c.cfg.RevokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return &httpapi.Error{Status: http.StatusInternalServerError, Code: "internal_error", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	resp, err := c.set.deps.HTTPClient.Do(req)
	if err != nil {
		e := httpapi.E(http.StatusBadGateway, "revocation_failed", "the revocation endpoint could not be reached; retry later")
		e.Err = err
		return e
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var oe struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Error == "invalid_token" {
		return nil // already invalid: as good as revoked
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		e := httpapi.E(http.StatusServiceUnavailable, "revocation_unavailable", "the third party cannot revoke now; retry later")
		ra := resp.Header.Get("Retry-After")
		if ra == "" {
			ra = "1"
		}
		e.Header = http.Header{"Retry-After": {ra}}
		if json.Valid(body) {
			e.Original = body
		}
		return e
	}
	e := httpapi.Errorf(http.StatusBadGateway, "revocation_failed", "the revocation endpoint answered %d", resp.StatusCode)
	if json.Valid(body) && len(body) > 0 {
		e.Original = body
	}
	return e
}
