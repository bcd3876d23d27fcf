package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/stripesig"
)

// Stripe App signature defaults.
const (
	// stripeMaxBody bounds how much body is read to find user_id and
	// account_id when the server has not already limited it.
	stripeMaxBody = 1 << 20
)

// StripeApp verifies requests from a Stripe App's UI extension, signed with
// the app secret by fetchStripeSignature(): the Stripe-Signature header
// over {"user_id":…,"account_id":…}.
type StripeApp struct {
	name      string
	secrets   [][]byte
	tolerance time.Duration
	now       func() time.Time
}

var _ auth.Authenticator = (*StripeApp)(nil)

func newStripeApp(name string, cfg config.Authenticator, deps Deps) (*StripeApp, error) {
	deps = deps.withDefaults()
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("secrets: at least one app secret is required")
	}
	a := &StripeApp{name: name, tolerance: cfg.Tolerance.D(), now: deps.Now}
	if a.tolerance <= 0 {
		a.tolerance = config.ToleranceDefault
	}
	for i, s := range cfg.Secrets {
		if s == "" {
			return nil, fmt.Errorf("secrets[%d] is empty", i)
		}
		a.secrets = append(a.secrets, []byte(s))
	}
	return a, nil
}

// Name implements Authenticator.
func (a *StripeApp) Name() string { return a.name }

// Type implements Authenticator.
func (a *StripeApp) Type() string { return config.AuthStripeApp }

// Challenge implements Challenger.
func (a *StripeApp) Challenge() string { return `Stripe-Signature realm="` + realm + `"` }

// Authenticate implements Authenticator. The user and account come from
// the Stripe-User-Id and Stripe-Account-Id headers when both are present,
// else from the JSON body's user_id and account_id. Either way, a JSON
// object body that names a user_id or account_id must name exactly the
// verified ones, once, in exactly that spelling (400 otherwise): a handler
// reading the body then never acts for anyone but the Principal. The body
// is restored for the handler, unchanged.
func (a *StripeApp) Authenticate(r *http.Request) (*auth.Principal, error) {
	sig := r.Header.Get("Stripe-Signature")
	if sig == "" {
		return nil, auth.ErrNoCredential
	}
	body, err := scanBodyIDs(r)
	if err != nil {
		return nil, err
	}
	user, acct := r.Header.Get("Stripe-User-Id"), r.Header.Get("Stripe-Account-Id")
	if user == "" || acct == "" {
		switch {
		case !body.object:
			if body.present {
				return nil, &auth.Failure{Reason: "request body is not JSON with user_id and account_id"}
			}
			return nil, &auth.Failure{Reason: "Stripe-User-Id and Stripe-Account-Id headers (or a JSON body with user_id and account_id) are required"}
		case !body.hasUser || !body.hasAcct || body.user == "" || body.acct == "":
			return nil, &auth.Failure{Reason: "user_id and account_id are required (headers or JSON body)"}
		}
		user, acct = body.user, body.acct
	}
	if err := a.verify(sig, user, acct); err != nil {
		return nil, err
	}
	if body.hasUser && (!body.userIsString || body.user != user) {
		return nil, httpapi.E(http.StatusBadRequest, "invalid_request", "the body's user_id is not the signed user")
	}
	if body.hasAcct && (!body.acctIsString || body.acct != acct) {
		return nil, httpapi.E(http.StatusBadRequest, "invalid_request", "the body's account_id is not the signed account")
	}
	return &auth.Principal{Authenticator: a.name, Subject: user, Tenant: acct}, nil
}

// bodyIDs is what scanBodyIDs found in a request body.
type bodyIDs struct {
	present      bool // the request has a non-empty body
	object       bool // it is one JSON object
	hasUser      bool
	hasAcct      bool
	userIsString bool
	acctIsString bool
	user, acct   string
}

// stripeSniff is how much of a body is read to see whether it is a JSON
// object; a body that is not one is passed on without being read further.
const stripeSniff = 512

// scanBodyIDs reads the request body, if it is a JSON object, and finds
// its top-level user_id and account_id with a token-level scan: struct
// decoding would match keys case-insensitively and let a later duplicate
// win, so a body could carry one identity for the signature and another
// for the handler. Case variants (by Unicode folding, as encoding/json
// matches), duplicates, invalid JSON and a second JSON value are answered
// 400. The body is restored for the handler either way.
func scanBodyIDs(r *http.Request) (bodyIDs, error) {
	var ids bodyIDs
	if r.Body == nil || r.Body == http.NoBody {
		return ids, nil
	}
	orig := r.Body
	head := make([]byte, stripeSniff)
	n, err := io.ReadFull(orig, head)
	head = head[:n]
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), orig), orig}
		return ids, bodyReadError(err)
	}
	ids.present = n > 0
	first := bytes.TrimLeft(head, " \t\r\n")
	if len(first) == 0 && eof || len(first) > 0 && first[0] != '{' {
		// Not a JSON object (empty, a form, an array, bytes): hand it on
		// as it is, unread beyond the sniff.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), orig), orig}
		return ids, nil
	}
	b := head
	if !eof {
		rest, err := io.ReadAll(io.LimitReader(orig, stripeMaxBody+1-int64(n)))
		b = append(head, rest...)
		if err != nil {
			r.Body = readCloser{io.MultiReader(bytes.NewReader(b), orig), orig}
			return ids, bodyReadError(err)
		}
	}
	orig.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if len(b) > stripeMaxBody {
		return ids, httpapi.ErrTooLarge
	}
	ids.object = true
	if err := scanTopLevel(b, &ids); err != nil {
		return ids, httpapi.E(http.StatusBadRequest, "invalid_request", err.Error())
	}
	return ids, nil
}

func bodyReadError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return httpapi.AsError(err)
	}
	return fmt.Errorf("read request body: %w", err)
}

// scanTopLevel walks one JSON object token by token, recording user_id and
// account_id, skipping every other value whole.
func scanTopLevel(b []byte, ids *bodyIDs) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("request body is not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return errors.New("request body is not valid JSON")
		}
		key, _ := t.(string)
		var has, isString *bool
		var val *string
		switch {
		case key == "user_id":
			has, isString, val = &ids.hasUser, &ids.userIsString, &ids.user
		case key == "account_id":
			has, isString, val = &ids.hasAcct, &ids.acctIsString, &ids.acct
		case strings.EqualFold(key, "user_id"), strings.EqualFold(key, "account_id"):
			return fmt.Errorf("request body has %q: only user_id and account_id, in lower case, are accepted", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return errors.New("request body is not valid JSON")
		}
		if has == nil {
			continue
		}
		if *has {
			return fmt.Errorf("request body has %s more than once", key)
		}
		*has = true
		*isString = json.Unmarshal(raw, val) == nil && len(raw) > 0 && raw[0] == '"'
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return errors.New("request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("request body has more than one JSON value")
	}
	return nil
}

// readCloser joins a reader with the original body's Close.
type readCloser struct {
	io.Reader
	io.Closer
}

// stripeID reports whether s is a plain Stripe identifier. Restricting ids
// to printable ASCII without quotes or backslashes makes the signed payload
// the same whatever JSON encoder the signer used.
func stripeID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// StripeAppPayload is the signed payload for a user and account, in the
// exact key order Stripe signs.
func StripeAppPayload(user, acct string) string {
	return `{"user_id":"` + user + `","account_id":"` + acct + `"}`
}

// verify checks a Stripe-Signature header against user and acct.
func (a *StripeApp) verify(header, user, acct string) error {
	if !stripeID(user) || !stripeID(acct) {
		return &auth.Failure{Reason: "malformed user or account id"}
	}
	err := stripesig.Verify(header, []byte(StripeAppPayload(user, acct)), a.secrets, a.now(), a.tolerance)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stripesig.ErrMismatch):
		return &auth.Failure{Reason: "bad signature"}
	default:
		return &auth.Failure{Reason: err.Error(), Err: err}
	}
}
