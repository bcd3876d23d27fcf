package idv

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// initiateRequest is the JSON body of POST /api/v4/initiate.
type initiateRequest struct {
	CustomerInternalReference string          `json:"customerInternalReference"`
	UserReference             string          `json:"userReference"`
	ReportingCriteria         string          `json:"reportingCriteria,omitempty"`
	SuccessURL                string          `json:"successUrl,omitempty"`
	ErrorURL                  string          `json:"errorUrl,omitempty"`
	CallbackURL               string          `json:"callbackUrl,omitempty"`
	WorkflowID                *int            `json:"workflowId,omitempty"`
	Presets                   json.RawMessage `json:"presets,omitempty"`
	Locale                    string          `json:"locale,omitempty"`
	TokenLifetimeInMinutes    *int            `json:"tokenLifetimeInMinutes,omitempty"`
}

// initiateResponse is the answer to a successful initiate.
type initiateResponse struct {
	Timestamp            string `json:"timestamp"`
	TransactionReference string `json:"transactionReference"`
	RedirectURL          string `json:"redirectUrl"`
}

// apiError writes an error in the vendor's JSON form.
func apiError(w http.ResponseWriter, r *http.Request, status int, message string) {
	simkit.WriteJSON(w, status, map[string]any{
		"httpStatus": fmt.Sprint(status),
		"message":    message,
		"requestURI": r.URL.Path,
	})
}

// authorize checks the Basic credentials and the User-Agent the vendor
// requires on every API call, answering the refusal itself.
func (s *IDV) authorize(w http.ResponseWriter, r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || !s.credentialsMatch(user, pass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Netverify"`)
		apiError(w, r, http.StatusUnauthorized, "Full authentication is required to access this resource")
		return false
	}
	if strings.TrimSpace(r.UserAgent()) == "" {
		apiError(w, r, http.StatusBadRequest, "User-Agent header is required")
		return false
	}
	return true
}

// credentialsMatch compares digests in constant time, so neither the
// content nor the length of the secret leaks through timing.
func (s *IDV) credentialsMatch(user, pass string) bool {
	a := sha256.Sum256([]byte(user))
	b := sha256.Sum256([]byte(s.opts.APIToken))
	c := sha256.Sum256([]byte(pass))
	d := sha256.Sum256([]byte(s.opts.APISecret))
	return subtle.ConstantTimeCompare(a[:], b[:])&subtle.ConstantTimeCompare(c[:], d[:]) == 1
}

// jsLength counts UTF-16 code units, as the vendor's (Java) limits do.
func jsLength(s string) int { return len(utf16.Encode([]rune(s))) }

var workflowIDs = []int{100, 101, 102, 200, 201, 202}

// validate checks the body against the documented limits and returns the
// first problem.
func (q *initiateRequest) validate() string {
	switch {
	case strings.TrimSpace(q.CustomerInternalReference) == "":
		return "customerInternalReference: must not be blank"
	case jsLength(q.CustomerInternalReference) > 100:
		return "customerInternalReference: size must be between 0 and 100"
	case strings.TrimSpace(q.UserReference) == "":
		return "userReference: must not be blank"
	case jsLength(q.UserReference) > 100:
		return "userReference: size must be between 0 and 100"
	case jsLength(q.ReportingCriteria) > 100:
		return "reportingCriteria: size must be between 0 and 100"
	case jsLength(q.SuccessURL) > 2047:
		return "successUrl: size must be between 0 and 2047"
	case jsLength(q.ErrorURL) > 255:
		return "errorUrl: size must be between 0 and 255"
	case jsLength(q.CallbackURL) > 255:
		return "callbackUrl: size must be between 0 and 255"
	case jsLength(q.Locale) > 5:
		return "locale: size must be between 0 and 5"
	case q.WorkflowID != nil && !slices.Contains(workflowIDs, *q.WorkflowID):
		return "workflowId: unsupported value"
	case q.TokenLifetimeInMinutes != nil && (*q.TokenLifetimeInMinutes < 5 || *q.TokenLifetimeInMinutes > 86400):
		return "tokenLifetimeInMinutes: must be between 5 and 86400"
	}
	// The real service wants public HTTPS URLs without IP addresses or
	// ports; the simulator accepts loopback http so tests can receive them.
	for _, f := range []struct{ name, u string }{{"successUrl", q.SuccessURL}, {"errorUrl", q.ErrorURL}, {"callbackUrl", q.CallbackURL}} {
		name, u := f.name, f.u
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.Fragment != "" {
			return name + ": must be a valid absolute http(s) URL without a fragment"
		}
	}
	return ""
}

func (s *IDV) handleInitiate(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, r, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var req initiateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		apiError(w, r, http.StatusBadRequest, "Malformed JSON request body")
		return
	}
	if msg := req.validate(); msg != "" {
		apiError(w, r, http.StatusBadRequest, msg)
		return
	}

	now := s.opts.Now()
	lifetime := s.opts.TokenLifetime
	if req.TokenLifetimeInMinutes != nil {
		lifetime = time.Duration(*req.TokenLifetimeInMinutes) * time.Minute
	}
	tx := &transaction{
		ref:     newUUID(),
		token:   newToken(),
		req:     req,
		created: now,
		expires: now.Add(lifetime),
		status:  "PENDING",
	}
	s.mu.Lock()
	s.txs[tx.ref] = tx
	s.byToken[tx.token] = tx.ref
	s.mu.Unlock()

	base := s.opts.PublicURL
	if base == "" {
		base = requestOrigin(r)
	}
	locale := req.Locale
	if locale == "" {
		locale = "en"
	}
	redirect := strings.TrimRight(base, "/") + "/web/v4/app?" + url.Values{
		"locale":             {locale},
		"authorizationToken": {tx.token},
	}.Encode()
	simkit.WriteJSON(w, http.StatusOK, initiateResponse{
		Timestamp:            timestamp(now),
		TransactionReference: tx.ref,
		RedirectURL:          redirect,
	})
}

// handleScanStatus answers the retrieval API's status call.
func (s *IDV) handleScanStatus(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	ref := r.PathValue("ref")
	s.mu.Lock()
	tx := s.txs[ref]
	var status string
	if tx != nil {
		status = tx.status
	}
	s.mu.Unlock()
	if tx == nil {
		apiError(w, r, http.StatusNotFound, "scan reference not found")
		return
	}
	simkit.WriteJSON(w, http.StatusOK, map[string]any{
		"timestamp":     timestamp(s.opts.Now()),
		"scanReference": ref,
		"status":        status,
	})
}

// requestOrigin is the scheme and host the request was addressed to.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
