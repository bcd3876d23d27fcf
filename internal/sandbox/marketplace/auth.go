package marketplace

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxFormBytes bounds the body of the Authentication API's form posts.
const maxFormBytes = 64 << 10

// TokenResponse is the body of a successful POST /v1/auth/token.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// OAuth error codes the Authentication API answers with (RFC 6749 5.2).
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errInvalidGrant         = "invalid_grant"
	errInvalidScope         = "invalid_scope"
	errUnsupportedGrantType = "unsupported_grant_type"
)

// handleToken issues tokens: POST /v1/auth/token, form-encoded in, JSON out.
func (m *Marketplace) handleToken(w http.ResponseWriter, r *http.Request) {
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	clientID := f.Get("client_id")
	grant := f.Get("grant_type")
	scope := f.Get("scope")

	m.mu.Lock()
	defer m.mu.Unlock()

	switch grant {
	case "":
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "grant_type is required")
	case "client_credentials":
		switch {
		case m.isMarketplaceClient(clientID):
			if !scopeOK(scope, ScopePublicRead) {
				writeOAuthError(w, http.StatusBadRequest, errInvalidScope, "client_credentials grants scope public-read")
				return
			}
			// Anonymous tokens need no secret and carry no refresh token.
			m.writeToken(w, m.issueAccess(clientID, ScopePublicRead, "", nil), "")
		case m.isIntegrationClient(clientID):
			if !secretOK(f.Get("client_secret"), m.opts.IntegrationClientSecret) {
				writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "invalid client credentials")
				return
			}
			if !scopeOK(scope, ScopeIntegration) {
				writeOAuthError(w, http.StatusBadRequest, errInvalidScope, "client_credentials grants scope integ")
				return
			}
			s := m.newSession(clientID, ScopeIntegration, "")
			m.writeToken(w, m.issueAccess(clientID, ScopeIntegration, "", s), s.refresh)
		default:
			writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "unknown client_id")
		}
	case "password":
		if !m.isMarketplaceClient(clientID) {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "unknown client_id")
			return
		}
		if !scopeOK(scope, ScopeUser) {
			writeOAuthError(w, http.StatusBadRequest, errInvalidScope, "password grants scope user")
			return
		}
		username, password := f.Get("username"), f.Get("password")
		if username == "" || password == "" {
			writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "username and password are required")
			return
		}
		u := m.checkPassword(username, password)
		if u == nil || u.banned {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidGrant, "invalid username or password")
			return
		}
		s := m.newSession(clientID, ScopeUser, u.id)
		m.writeToken(w, m.issueAccess(clientID, ScopeUser, u.id, s), s.refresh)
	case "refresh_token":
		if !m.isMarketplaceClient(clientID) && !m.isIntegrationClient(clientID) {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "unknown client_id")
			return
		}
		rt := f.Get("refresh_token")
		if rt == "" {
			writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "refresh_token is required")
			return
		}
		s := m.sessions[rt]
		if s == nil || s.clientID != clientID {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidGrant, "invalid refresh token")
			return
		}
		if s.userID != "" && m.users[s.userID].banned {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidGrant, "invalid refresh token")
			return
		}
		// Rotate: the used refresh token stops working and a new one is
		// issued. Access tokens already issued live out their lifetime.
		delete(m.sessions, rt)
		s.refresh = newToken()
		m.sessions[s.refresh] = s
		m.writeToken(w, m.issueAccess(clientID, s.scope, s.userID, s), s.refresh)
	case "token_exchange":
		if !m.isMarketplaceClient(clientID) || m.opts.ClientSecret == "" ||
			!secretOK(f.Get("client_secret"), m.opts.ClientSecret) {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "invalid client credentials")
			return
		}
		if !scopeOK(scope, ScopeTrustedUser) {
			writeOAuthError(w, http.StatusBadRequest, errInvalidScope, "token_exchange grants scope trusted:user")
			return
		}
		at := m.lookupAccess(f.Get("subject_token"))
		if at == nil || at.userID == "" || at.clientID != clientID {
			writeOAuthError(w, http.StatusUnauthorized, errInvalidGrant, "invalid subject_token")
			return
		}
		s := m.newSession(clientID, ScopeTrustedUser, at.userID)
		m.writeToken(w, m.issueAccess(clientID, ScopeTrustedUser, at.userID, s), s.refresh)
	default:
		writeOAuthError(w, http.StatusBadRequest, errUnsupportedGrantType, "unsupported grant_type")
	}
}

// handleRevoke revokes a refresh token and every access token issued under
// it: POST /v1/auth/revoke with token=<refresh token>. Like the real API
// (and the SDK, which sends its current access token), it needs a valid
// access token in Authorization.
func (m *Marketplace) handleRevoke(w http.ResponseWriter, r *http.Request) {
	raw, ok := bearer(w, r)
	if !ok {
		return
	}
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lookupAccess(raw) == nil {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-invalid-access-token", "Invalid access token")
		return
	}
	t := f.Get("token")
	if t == "" {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "token is required")
		return
	}
	action := "nothing"
	if s := m.sessions[t]; s != nil {
		delete(m.sessions, t)
		for a := range s.access {
			delete(m.access, a)
		}
		action = "revoked"
	}
	writeJSON(w, http.StatusOK, map[string]string{"action": action})
}

func (m *Marketplace) isMarketplaceClient(id string) bool {
	return id != "" && id == m.opts.ClientID
}

func (m *Marketplace) isIntegrationClient(id string) bool {
	return id != "" && id == m.opts.IntegrationClientID
}

// newSession starts a refresh-token family. Callers hold m.mu.
func (m *Marketplace) newSession(clientID, scope, userID string) *session {
	s := &session{clientID: clientID, scope: scope, userID: userID, refresh: newToken(), access: map[string]struct{}{}}
	m.sessions[s.refresh] = s
	return s
}

// issueAccess mints an access token. Callers hold m.mu.
func (m *Marketplace) issueAccess(clientID, scope, userID string, s *session) string {
	exp := m.opts.Now().Add(m.opts.AccessTokenTTL)
	t := m.newAccessToken(clientID, scope, exp)
	m.access[t] = &accessToken{clientID: clientID, scope: scope, userID: userID, expires: exp, sess: s}
	if s != nil {
		s.access[t] = struct{}{}
	}
	return t
}

func (m *Marketplace) writeToken(w http.ResponseWriter, access, refresh string) {
	at := m.access[access]
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken:  access,
		TokenType:    "bearer",
		ExpiresIn:    int64(m.opts.AccessTokenTTL / time.Second),
		Scope:        at.scope,
		RefreshToken: refresh,
	})
}

// readForm checks the content type and parses a bounded form body,
// answering the error itself when it cannot.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "Content-Type must be application/x-www-form-urlencoded")
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "malformed form body")
		return nil, false
	}
	return r.PostForm, true
}

func scopeOK(got, want string) bool { return got == "" || got == want }

func secretOK(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// bearer returns the access token of an "Authorization: bearer <token>"
// header (scheme case-insensitive), answering the API's 401 itself when
// there is none.
func bearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-missing-access-token", "Missing access token")
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-invalid-access-token", "Invalid access token")
		return "", false
	}
	return tok, true
}
