package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// maxFormBytes bounds form and JSON bodies: OAuth requests are a few
// hundred bytes.
const maxFormBytes = 64 << 10

// realm names the simulator in WWW-Authenticate challenges.
const realm = "oauth-simulator"

// Error codes of RFC 6749 section 5.2 and RFC 6750 section 3.1.
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errInvalidGrant         = "invalid_grant"
	errInvalidScope         = "invalid_scope"
	errUnauthorizedClient   = "unauthorized_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidToken         = "invalid_token"
)

// TokenResponse is the body of a successful token answer (RFC 6749 section
// 5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// oauthError is an error answer of the token or revocation endpoint.
type oauthError struct {
	status int
	code   string
	desc   string
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func badRequest(code, format string, args ...any) *oauthError {
	return &oauthError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

func invalidClient(desc string) *oauthError {
	return &oauthError{http.StatusUnauthorized, errInvalidClient, desc}
}

// writeJSON answers v as JSON. Every answer of the simulator is marked
// no-store: token answers must be (RFC 6749 section 5.1) and no other
// answer is worth caching.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are marshalled; this is a bug.
		panic(fmt.Sprintf("oauth simulator: marshal answer: %v", err))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError answers an RFC 6749 section 5.2 error body.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// writeOAuthError answers e, with the challenge RFC 6749 section 5.2
// requires on a 401.
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	}
	writeError(w, e.status, e.code, e.desc)
}

// failLocked counts e in the stats and returns it.
func (s *Server) failLocked(e *oauthError) *oauthError {
	switch e.code {
	case errInvalidGrant:
		s.stats.InvalidGrant++
	case errInvalidClient:
		s.stats.InvalidClient++
	}
	return e
}

// parseForm reads an application/x-www-form-urlencoded body into
// r.PostForm. Parameters in the query string are not read: RFC 6749 puts
// token and revocation parameters, credentials above all, in the body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return fmt.Errorf("the body must be application/x-www-form-urlencoded, not %q", r.Header.Get("Content-Type"))
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("read form: %w", err)
	}
	return nil
}

// repeated returns the name of a parameter sent more than once, which RFC
// 6749 section 3.1 forbids, or "".
func repeated(v url.Values) string {
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if len(v[k]) > 1 {
			return k
		}
	}
	return ""
}

// secretEqual compares secrets in constant time (of their digests, so the
// length does not leak either).
func secretEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// authenticateClientLocked finds the client of a token or revocation
// request: HTTP Basic (RFC 6749 section 2.3.1, with the form-urlencoding
// of id and secret undone) or client_id and client_secret in the body, but
// never both ways at once.
func (s *Server) authenticateClientLocked(r *http.Request) (Client, *oauthError) {
	form := r.PostForm
	var id, secret string
	if r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return Client{}, invalidClient("the Authorization header is not HTTP Basic client authentication")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err := errors.Join(err1, err2); err != nil {
			return Client{}, invalidClient("the Basic credentials are not form-urlencoded: " + err.Error())
		}
		if form.Has("client_secret") {
			return Client{}, badRequest(errInvalidRequest, "the client authenticated both by HTTP Basic and by client_secret in the body; use one")
		}
		if form.Has("client_id") && form.Get("client_id") != id {
			return Client{}, invalidClient("client_id in the body does not match the HTTP Basic client")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
		if id == "" {
			return Client{}, invalidClient("client authentication is required (HTTP Basic or client_id and client_secret in the body)")
		}
	}
	c, ok := s.clients[id]
	if !ok {
		secretEqual(secret, secret) // spend the same time as for a known client
		return Client{}, invalidClient("unknown client")
	}
	if c.Secret == "" {
		if secret != "" {
			return Client{}, invalidClient("public client sent a client_secret")
		}
		return c, nil
	}
	if !secretEqual(secret, c.Secret) {
		return Client{}, invalidClient("client authentication failed")
	}
	return c, nil
}

// handleToken is POST /token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	resp, e := s.token(r)
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// token runs one token request under the lock, so that of two concurrent
// uses of one code or refresh token exactly one wins.
func (s *Server) token(r *http.Request) (*TokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := repeated(r.PostForm); k != "" {
		return nil, s.failLocked(badRequest(errInvalidRequest, "parameter %s is repeated", k))
	}
	c, e := s.authenticateClientLocked(r)
	if e != nil {
		return nil, s.failLocked(e)
	}
	var resp *TokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "":
		e = badRequest(errInvalidRequest, "grant_type is required")
	case "authorization_code":
		resp, e = s.grantCodeLocked(r.PostForm, c)
	case "refresh_token":
		resp, e = s.grantRefreshLocked(r.PostForm, c)
	default:
		e = badRequest(errUnsupportedGrantType, "grant_type %q is not supported (authorization_code, refresh_token)", gt)
	}
	if e != nil {
		return nil, s.failLocked(e)
	}
	s.stats.TokensIssued++
	return resp, nil
}

// grantCodeLocked exchanges an authorization code (RFC 6749 section 4.1.3,
// RFC 7636 section 4.6). Once its own client has presented it, a code is
// used up even if the exchange fails, and any later presentation is a
// replay that revokes what the code issued (RFC 6749 section 4.1.2).
func (s *Server) grantCodeLocked(f url.Values, c Client) (*TokenResponse, *oauthError) {
	raw := f.Get("code")
	if raw == "" {
		return nil, badRequest(errInvalidRequest, "code is required")
	}
	now := s.opts.Now()
	ac := s.codes[keyOf(raw)]
	switch {
	case ac == nil:
		return nil, badRequest(errInvalidGrant, "unknown authorization code")
	case ac.clientID != c.ID:
		return nil, badRequest(errInvalidGrant, "the authorization code was issued to another client")
	case ac.used:
		s.revokeGrantLocked(ac.grant)
		return nil, badRequest(errInvalidGrant, "the authorization code was already used; the tokens issued from it are revoked")
	case !now.Before(ac.expires):
		return nil, badRequest(errInvalidGrant, "the authorization code expired")
	}
	ac.used = true
	if got := f.Get("redirect_uri"); got != ac.redirectURI {
		return nil, badRequest(errInvalidGrant, "redirect_uri does not match the one of the authorization request")
	}
	verifier := f.Get("code_verifier")
	if ac.challenge == "" {
		// RFC 9700 section 2.1.1: a verifier without a challenge is a
		// PKCE downgrade attempt.
		if f.Has("code_verifier") {
			return nil, badRequest(errInvalidGrant, "code_verifier sent but the authorization request had no code_challenge")
		}
	} else {
		switch {
		case verifier == "":
			return nil, badRequest(errInvalidGrant, "code_verifier is required: the authorization request had a code_challenge")
		case !validVerifier(verifier):
			return nil, badRequest(errInvalidGrant, "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 section 4.1)")
		case !secretEqual(S256Challenge(verifier), ac.challenge):
			return nil, badRequest(errInvalidGrant, "code_verifier does not match the code_challenge")
		}
	}
	g := &grant{clientID: c.ID, userID: ac.userID, scope: ac.scope}
	ac.grant = g
	return s.issueLocked(g, ac.scope, now, true), nil
}

// grantRefreshLocked rotates a refresh token (RFC 6749 section 6, RFC 9700
// section 4.14.2): the token presented is spent and a new one issued; a
// spent token presented again (after Options.RefreshGrace) revokes the
// whole family, since either its holder or an attacker is replaying it.
func (s *Server) grantRefreshLocked(f url.Values, c Client) (*TokenResponse, *oauthError) {
	raw := f.Get("refresh_token")
	if raw == "" {
		return nil, badRequest(errInvalidRequest, "refresh_token is required")
	}
	now := s.opts.Now()
	rt := s.refresh[keyOf(raw)]
	if rt == nil {
		return nil, badRequest(errInvalidGrant, "unknown refresh token")
	}
	g := rt.grant
	switch {
	case g.clientID != c.ID:
		return nil, badRequest(errInvalidGrant, "the refresh token was issued to another client")
	case g.revoked:
		return nil, badRequest(errInvalidGrant, "the refresh token was revoked")
	case !rt.expires.IsZero() && !now.Before(rt.expires):
		return nil, badRequest(errInvalidGrant, "the refresh token expired")
	}
	scope := g.scope
	if req := f.Get("scope"); req != "" {
		// RFC 6749 section 6: a refresh may narrow the scope, never widen it.
		granted := strings.Fields(g.scope)
		for _, sc := range strings.Fields(req) {
			if !slices.Contains(granted, sc) {
				return nil, badRequest(errInvalidScope, "scope %q was not granted", sc)
			}
		}
		scope = req
	}
	if rt.rotated {
		if s.opts.RefreshGrace > 0 && now.Sub(rt.rotatedAt) < s.opts.RefreshGrace {
			resp := s.issueLocked(g, scope, now, false)
			resp.RefreshToken = g.currentRaw
			return resp, nil
		}
		s.revokeGrantLocked(g)
		return nil, badRequest(errInvalidGrant, "the refresh token was already used; every token of its family is revoked")
	}
	rt.rotated = true
	rt.rotatedAt = now
	return s.issueLocked(g, scope, now, true), nil
}

// issueLocked mints an access token of g with scope and, with newRefresh,
// a refresh token that becomes g's current one.
func (s *Server) issueLocked(g *grant, scope string, now time.Time, newRefresh bool) *TokenResponse {
	s.sweepLocked(now)
	at := newToken()
	s.access[keyOf(at)] = &accessToken{grant: g, scope: scope, expires: now.Add(s.opts.AccessTokenTTL)}
	resp := &TokenResponse{
		AccessToken: at,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.AccessTokenTTL / time.Second),
		Scope:       scope,
	}
	if newRefresh {
		rt := newToken()
		t := &refreshToken{grant: g}
		if s.opts.RefreshTokenTTL > 0 {
			t.expires = now.Add(s.opts.RefreshTokenTTL)
		}
		s.refresh[keyOf(rt)] = t
		g.currentRaw = rt
		resp.RefreshToken = rt
	}
	return resp
}

// S256Challenge is the PKCE code_challenge of verifier with method S256
// (RFC 7636 section 4.2): BASE64URL(SHA256(ASCII(verifier))).
func S256Challenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// validVerifier reports whether v has the form RFC 7636 section 4.1 gives a
// code_verifier; a code_challenge must have the same alphabet and, for
// S256, exactly 43 characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	return unreservedOnly(v)
}

func unreservedOnly(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// handleRevoke is POST /revoke (RFC 7009): revoking a refresh token revokes
// its family, access tokens included; revoking an access token revokes it
// alone; an unknown token is answered 200 like a revoked one.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if e := s.revoke(r); e != nil {
		writeOAuthError(w, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(r *http.Request) *oauthError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := repeated(r.PostForm); k != "" {
		return s.failLocked(badRequest(errInvalidRequest, "parameter %s is repeated", k))
	}
	c, e := s.authenticateClientLocked(r)
	if e != nil {
		return s.failLocked(e)
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		return s.failLocked(badRequest(errInvalidRequest, "token is required"))
	}
	// token_type_hint only orders the search (RFC 7009 section 2.1); both
	// kinds are looked up whatever it says.
	k := keyOf(raw)
	if rt := s.refresh[k]; rt != nil {
		if rt.grant.clientID != c.ID {
			return s.failLocked(badRequest(errUnauthorizedClient, "the token was issued to another client"))
		}
		s.revokeGrantLocked(rt.grant)
	} else if at := s.access[k]; at != nil {
		if at.grant.clientID != c.ID {
			return s.failLocked(badRequest(errUnauthorizedClient, "the token was issued to another client"))
		}
		at.revoked = true
	}
	s.stats.Revocations++
	return nil
}

// handleUserinfo is GET (or POST) /userinfo with a Bearer access token in
// the Authorization header (RFC 6750 section 2.1; tokens in the query or
// body are not accepted).
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Get("Authorization")
	scheme, raw, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		// RFC 6750 section 3.1: a request without credentials gets a
		// challenge without an error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		writeError(w, http.StatusUnauthorized, errInvalidToken, "a Bearer access token is required in the Authorization header")
		return
	}
	u, desc := s.userForToken(strings.TrimSpace(raw))
	if desc != "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s", error="invalid_token", error_description="%s"`, realm, desc))
		writeError(w, http.StatusUnauthorized, errInvalidToken, desc)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// userForToken returns the user an access token speaks for, or why it is
// not valid.
func (s *Server) userForToken(raw string) (User, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.access[keyOf(raw)]
	switch {
	case at == nil:
		return User{}, "unknown access token"
	case at.revoked || at.grant.revoked:
		return User{}, "the access token was revoked"
	case !s.opts.Now().Before(at.expires):
		return User{}, "the access token expired"
	}
	u, ok := s.user(at.grant.userID)
	if !ok {
		return User{}, "the token's user no longer exists"
	}
	return u, ""
}

// handleMetadata is the authorization server metadata (RFC 8414).
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	iss := s.issuer(r)
	authMethods := []string{"client_secret_basic", "client_secret_post", "none"}
	md := map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + RouteAuthorize,
		"token_endpoint":                                 iss + RouteToken,
		"revocation_endpoint":                            iss + RouteRevoke,
		"userinfo_endpoint":                              iss + RouteUserinfo,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          authMethods,
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"authorization_response_iss_parameter_supported": true,
	}
	s.mu.Lock()
	var scopes []string
	for _, c := range s.clients {
		for _, sc := range c.Scopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	s.mu.Unlock()
	if len(scopes) > 0 {
		slices.Sort(scopes)
		md["scopes_supported"] = scopes
	}
	writeJSON(w, http.StatusOK, md)
}
