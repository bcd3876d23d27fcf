package idv

import (
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Decisions the hosted page offers, each standing for how a real user
// journey can end.
const (
	DecisionApprove     = "approve"     // a genuine, readable ID: APPROVED_VERIFIED
	DecisionDeny        = "deny"        // unreadable after the attempts: ERROR_NOT_READABLE_ID
	DecisionFraud       = "fraud"       // a manipulated document: DENIED_FRAUD
	DecisionUnsupported = "unsupported" // an ID type not accepted: DENIED_UNSUPPORTED_ID_TYPE
	DecisionNoID        = "no_id"       // the user gave up: NO_ID_UPLOADED
)

// Decisions lists the decisions in the order the page shows them.
var Decisions = []string{DecisionApprove, DecisionDeny, DecisionFraud, DecisionUnsupported, DecisionNoID}

var decisionLabels = map[string]string{
	DecisionApprove:     "Approve (APPROVED_VERIFIED)",
	DecisionDeny:        "Deny: ID not readable (ERROR_NOT_READABLE_ID)",
	DecisionFraud:       "Deny: fraud (DENIED_FRAUD)",
	DecisionUnsupported: "Deny: unsupported ID type (DENIED_UNSUPPORTED_ID_TYPE)",
	DecisionNoID:        "Give up (NO_ID_UPLOADED)",
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ID verification (simulated)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}
button{display:block;width:100%;margin:.4rem 0;padding:.6rem;font-size:1rem}</style></head>
<body>
<h1>{{.Title}}</h1>
{{if .Message}}<p id="message">{{.Message}}</p>{{end}}
{{if .Token}}
<p>Transaction <code id="transaction">{{.Ref}}</code>. This page stands in for the vendor's document and selfie capture: choose how the verification ends.</p>
<form method="post" action="/web/v4/app">
<input type="hidden" name="authorizationToken" value="{{.Token}}">
{{range .Choices}}<button type="submit" name="decision" value="{{.Value}}" id="decision-{{.Value}}">{{.Label}}</button>
{{end}}</form>
{{end}}
</body></html>
`))

type choice struct{ Value, Label string }

type pageData struct {
	Title, Message, Ref, Token string
	Choices                    []choice
}

func renderPage(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The real client is embedded in an iframe by the merchant's page.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action *")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

// lookupToken finds the pending transaction of an authorization token,
// answering the page itself when there is none.
func (s *IDV) lookupToken(w http.ResponseWriter, token string) (*transaction, bool) {
	s.mu.Lock()
	tx := s.txs[s.byToken[token]]
	var expired, decided bool
	if tx != nil {
		expired = !s.opts.Now().Before(tx.expires)
		decided = tx.decision != ""
	}
	s.mu.Unlock()
	switch {
	case tx == nil:
		renderPage(w, http.StatusNotFound, pageData{Title: "Link not valid", Message: "This verification link is unknown."})
	case decided:
		renderPage(w, http.StatusConflict, pageData{Title: "Already completed", Message: "This verification has already been completed.", Ref: tx.ref})
	case expired:
		renderPage(w, http.StatusGone, pageData{Title: "Link expired", Message: "This verification link has expired. Please start again.", Ref: tx.ref})
	default:
		return tx, true
	}
	return nil, false
}

func (s *IDV) handlePage(w http.ResponseWriter, r *http.Request) {
	tx, ok := s.lookupToken(w, r.URL.Query().Get("authorizationToken"))
	if !ok {
		return
	}
	d := pageData{Title: "Verify your identity", Ref: tx.ref, Token: tx.token}
	for _, v := range Decisions {
		d.Choices = append(d.Choices, choice{Value: v, Label: decisionLabels[v]})
	}
	renderPage(w, http.StatusOK, d)
}

func (s *IDV) handleDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		renderPage(w, http.StatusBadRequest, pageData{Title: "Bad request", Message: "The form could not be read."})
		return
	}
	tx, ok := s.lookupToken(w, r.PostForm.Get("authorizationToken"))
	if !ok {
		return
	}
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	dest, err := s.decide(tx.ref, r.PostForm.Get("decision"), clientIP)
	switch {
	case errors.Is(err, errUnknownDecision):
		renderPage(w, http.StatusBadRequest, pageData{Title: "Bad request", Message: err.Error()})
		return
	case errors.Is(err, errAlreadyDecided):
		renderPage(w, http.StatusConflict, pageData{Title: "Already completed", Message: "This verification has already been completed.", Ref: tx.ref})
		return
	case err != nil:
		renderPage(w, http.StatusInternalServerError, pageData{Title: "Error", Message: err.Error()})
		return
	}
	if dest != "" {
		http.Redirect(w, r, dest, http.StatusSeeOther)
		return
	}
	renderPage(w, http.StatusOK, pageData{Title: "Thank you", Message: "Your documents were submitted. You can close this page.", Ref: tx.ref})
}

var (
	errUnknownDecision = errors.New("decision must be one of " + strings.Join(Decisions, ", "))
	errAlreadyDecided  = errors.New("transaction already decided")
	errUnknownRef      = errors.New("unknown transaction reference")
)

// Decide ends transaction ref's user journey with decision (one of
// Decisions) as if the user had chosen it on the hosted page, and queues
// the callback. clientIP is reported in the callback's clientIp.
func (s *IDV) Decide(ref, decision, clientIP string) error {
	_, err := s.decide(ref, decision, clientIP)
	return err
}

// decide records the decision, queues the callback, and returns where the
// user's browser goes next: the success or error URL with the vendor's
// parameters, or "" when the merchant gave none.
func (s *IDV) decide(ref, decision, clientIP string) (string, error) {
	out, ok := outcomes[decision]
	if !ok {
		return "", fmt.Errorf("decide %q: %w", decision, errUnknownDecision)
	}
	s.mu.Lock()
	tx := s.txs[ref]
	if tx == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("decide %s: %w", ref, errUnknownRef)
	}
	if tx.decision != "" {
		s.mu.Unlock()
		return "", fmt.Errorf("decide %s: %w", ref, errAlreadyDecided)
	}
	tx.decision = decision
	tx.status = out.scanStatus
	req := tx.req
	form := s.callbackForm(tx, out, clientIP)
	s.mu.Unlock()

	if req.CallbackURL != "" {
		s.startDelivery(ref, req.CallbackURL, form)
	}

	q := url.Values{
		"transactionStatus":         {out.transactionStatus},
		"customerInternalReference": {req.CustomerInternalReference},
		"transactionReference":      {ref},
	}
	dest := req.SuccessURL
	if out.transactionStatus == "ERROR" {
		dest = req.ErrorURL
		q.Set("errorCode", out.errorCode)
	}
	if dest == "" {
		return "", nil
	}
	sep := "?"
	if strings.Contains(dest, "?") {
		sep = "&"
	}
	return dest + sep + q.Encode(), nil
}
