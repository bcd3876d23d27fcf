package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/stripesig"
)

// Stripe App signature defaults.
const (
	DefaultStripeTolerance = 5 * time.Minute
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
		a.tolerance = DefaultStripeTolerance
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
// else from the JSON body's user_id and account_id (the body is restored
// for the handler).
func (a *StripeApp) Authenticate(r *http.Request) (*auth.Principal, error) {
	sig := r.Header.Get("Stripe-Signature")
	if sig == "" {
		return nil, auth.ErrNoCredential
	}
	user, acct := r.Header.Get("Stripe-User-Id"), r.Header.Get("Stripe-Account-Id")
	if user == "" || acct == "" {
		var err error
		if user, acct, err = idsFromBody(r); err != nil {
			return nil, err
		}
	}
	if err := a.verify(sig, user, acct); err != nil {
		return nil, err
	}
	return &auth.Principal{Authenticator: a.name, Subject: user, Tenant: acct}, nil
}

func idsFromBody(r *http.Request) (user, acct string, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return "", "", &auth.Failure{Reason: "Stripe-User-Id and Stripe-Account-Id headers (or a JSON body with user_id and account_id) are required"}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, stripeMaxBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return "", "", httpapi.AsError(err)
		}
		return "", "", fmt.Errorf("read request body: %w", err)
	}
	if len(b) > stripeMaxBody {
		return "", "", httpapi.ErrTooLarge
	}
	var ids struct {
		UserID    string `json:"user_id"`
		AccountID string `json:"account_id"`
	}
	if err := json.Unmarshal(b, &ids); err != nil {
		return "", "", &auth.Failure{Reason: "request body is not JSON with user_id and account_id", Err: err}
	}
	if ids.UserID == "" || ids.AccountID == "" {
		return "", "", &auth.Failure{Reason: "user_id and account_id are required (headers or JSON body)"}
	}
	return ids.UserID, ids.AccountID, nil
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
