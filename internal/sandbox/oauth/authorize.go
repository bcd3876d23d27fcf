package oauth

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authorizeParams are the authorization request parameters the consent
// form carries from GET /authorize to POST /authorize.
func authorizeParams() []string {
	return []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}
}

// authzRequest is a validated authorization request.
type authzRequest struct {
	client      Client
	redirectURI *url.URL
	scope       string
	state       string
	challenge   string
}

// redirectError is an error the client is told about on its redirect URI
// (RFC 6749 section 4.1.2.1), once the client and the redirect URI are
// known to be genuine.
type redirectError struct {
	code string
	desc string
}

// checkAuthorizeLocked validates an authorization request. A non-empty
// pageErr means the client or its redirect URI cannot be trusted, so the
// user is shown the error and never redirected; a redirectErr is reported
// to the client on its redirect URI.
func (s *Server) checkAuthorizeLocked(v url.Values) (req authzRequest, pageErr string, redirectErr *redirectError) {
	if len(v["client_id"]) > 1 || len(v["redirect_uri"]) > 1 {
		return req, "client_id and redirect_uri must be sent once.", nil
	}
	id := v.Get("client_id")
	if id == "" {
		return req, "The request has no client_id.", nil
	}
	c, ok := s.clients[id]
	if !ok {
		return req, "Unknown client " + id + ".", nil
	}
	req.client = c
	ru := v.Get("redirect_uri")
	if ru == "" {
		return req, "The request has no redirect_uri.", nil
	}
	if !slices.Contains(c.RedirectURIs, ru) {
		return req, "The redirect_uri " + ru + " is not registered for client " + id + " (registered URIs must match exactly).", nil
	}
	u, err := url.Parse(ru)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return req, "The registered redirect_uri " + ru + " is not an absolute URI without a fragment.", nil
	}
	req.redirectURI = u
	req.state = v.Get("state")

	if k := repeated(v); k != "" {
		return req, "", &redirectError{errInvalidRequest, "parameter " + k + " is repeated"}
	}
	switch rt := v.Get("response_type"); rt {
	case "code":
	case "":
		return req, "", &redirectError{errInvalidRequest, "response_type is required"}
	default:
		return req, "", &redirectError{"unsupported_response_type", "only response_type=code is supported"}
	}
	req.scope = v.Get("scope")
	if len(c.Scopes) > 0 {
		for _, sc := range strings.Fields(req.scope) {
			if !slices.Contains(c.Scopes, sc) {
				return req, "", &redirectError{errInvalidScope, "scope " + sc + " is not allowed for this client"}
			}
		}
		if req.scope == "" {
			req.scope = strings.Join(c.Scopes, " ")
		}
	}
	req.challenge = v.Get("code_challenge")
	method := v.Get("code_challenge_method")
	switch {
	case req.challenge == "" && method != "":
		return req, "", &redirectError{errInvalidRequest, "code_challenge_method sent without code_challenge"}
	case req.challenge == "" && (c.RequirePKCE || c.Secret == ""):
		return req, "", &redirectError{errInvalidRequest, "this client must use PKCE: code_challenge and code_challenge_method=S256 are required"}
	case req.challenge != "" && method != "S256":
		// RFC 7636 section 4.3: an absent method means plain.
		return req, "", &redirectError{errInvalidRequest, "code_challenge_method must be S256; plain is not supported"}
	case req.challenge != "" && (len(req.challenge) != 43 || !unreservedOnly(req.challenge)):
		return req, "", &redirectError{errInvalidRequest, "code_challenge must be 43 base64url characters (an S256 digest)"}
	}
	return req, "", nil
}

// redirect answers 303 to the client's redirect URI with params added to
// its query, plus state and iss (RFC 9207), which every authorization
// response carries.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, req authzRequest, params url.Values) {
	u := *req.redirectURI
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", s.issuer(r))
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authzRequest, e *redirectError) {
	s.redirect(w, r, req, url.Values{"error": {e.code}, "error_description": {e.desc}})
}

// handleAuthorize is GET /authorize: the consent page, or an error.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	req, pageErr, rerr := s.checkAuthorizeLocked(q)
	users := slices.Clone(s.users)
	s.mu.Unlock()
	switch {
	case pageErr != "":
		renderPage(w, http.StatusBadRequest, errorPage, pageErr)
		return
	case rerr != nil:
		s.redirectError(w, r, req, rerr)
		return
	}
	data := consentData{ClientID: req.client.ID, Scope: req.scope, Users: users}
	for _, k := range authorizeParams() {
		if q.Has(k) {
			data.Hidden = append(data.Hidden, hiddenField{k, q.Get(k)})
		}
	}
	renderPage(w, http.StatusOK, consentPage, data)
}

// handleAuthorizeDecision is POST /authorize, the consent form's answer:
// the authorization request's parameters again, plus user=<id> and
// decision=approve|deny. Approval redirects with a code, denial with
// error=access_denied.
func (s *Server) handleAuthorizeDecision(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		renderPage(w, http.StatusBadRequest, errorPage, "Bad form: "+err.Error())
		return
	}
	f := r.PostForm
	params := url.Values{}
	for _, k := range authorizeParams() {
		if vs, ok := f[k]; ok {
			params[k] = vs
		}
	}
	s.mu.Lock()
	req, pageErr, rerr := s.checkAuthorizeLocked(params)
	if pageErr != "" || rerr != nil {
		s.mu.Unlock()
		if pageErr != "" {
			renderPage(w, http.StatusBadRequest, errorPage, pageErr)
		} else {
			s.redirectError(w, r, req, rerr)
		}
		return
	}
	switch f.Get("decision") {
	case "deny":
		s.mu.Unlock()
		s.redirectError(w, r, req, &redirectError{"access_denied", "the user denied the request"})
	case "approve":
		userID := f.Get("user")
		if _, ok := s.user(userID); !ok {
			s.mu.Unlock()
			renderPage(w, http.StatusBadRequest, errorPage, "Pick one of the demo users (user="+userID+" is unknown).")
			return
		}
		now := s.opts.Now()
		s.sweepLocked(now)
		code := newToken()
		s.codes[keyOf(code)] = &authCode{
			clientID:    req.client.ID,
			redirectURI: req.redirectURI.String(),
			scope:       req.scope,
			userID:      userID,
			challenge:   req.challenge,
			expires:     now.Add(s.opts.CodeTTL),
		}
		s.mu.Unlock()
		s.redirect(w, r, req, url.Values{"code": {code}})
	default:
		s.mu.Unlock()
		renderPage(w, http.StatusBadRequest, errorPage, "decision must be approve or deny.")
	}
}

type hiddenField struct{ Name, Value string }

type consentData struct {
	ClientID string
	Scope    string
	Users    []User
	Hidden   []hiddenField
}

// renderPage answers an HTML page. Pages may not be framed (a consent page
// in a frame invites clickjacking) and load nothing from elsewhere.
func renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "render page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{block "title" .}}{{end}} · OAuth simulator</title>
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}label{display:block;margin:.4rem 0}
button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}.muted{color:#777}
</style></head><body>`

var (
	consentPage = template.Must(template.New("consent").Parse(pageHead + `{{define "title"}}Authorize {{.ClientID}}{{end}}
<h1>Authorize <code>{{.ClientID}}</code></h1>
<p>The application <code>{{.ClientID}}</code> asks for access{{if .Scope}} with scope <code>{{.Scope}}</code>{{end}}.</p>
<form method="post" action="authorize">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<fieldset><legend>Sign in as</legend>
{{range $i, $u := .Users}}<label><input type="radio" name="user" value="{{$u.ID}}"{{if eq $i 0}} checked{{end}}> {{$u.Name}} <span class="muted">&lt;{{$u.Email}}&gt;{{if not $u.EmailVerified}} (email not verified){{end}}</span></label>
{{end}}</fieldset>
<button type="submit" name="decision" value="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
<p class="muted">This is a local OAuth 2.0 simulator; no real account is involved.</p>
</body></html>`))

	errorPage = template.Must(template.New("error").Parse(pageHead + `{{define "title"}}Authorization error{{end}}
<h1>Authorization error</h1>
<p id="error">{{.}}</p>
</body></html>`))
)
