// Package auth is what a Go user of backlot needs to know about callers:
// the Principal that every authenticator yields (read it in a handler with
// FromContext), the Authenticator interface for adding your own, the
// Failure a custom authenticator returns for a credential it refuses, and
// the Rule a route sets on scopes and tenant. The built-in authenticators
// (hs256, jwks, stripe_app, sharetribe, session, api_key) are configured in
// YAML and live in backlot's internal packages.
package auth

import (
	"context"
	"errors"
	"net/http"
)

// Principal is an authenticated caller.
type Principal struct {
	// Authenticator is the name (from config) of the authenticator that accepted the caller.
	Authenticator string   `json:"authenticator"`
	Subject       string   `json:"subject"`
	Tenant        string   `json:"tenant"`
	Email         string   `json:"email"`
	Scopes        []string `json:"scopes"`
	// Claims are extra, non-secret facts (JWT claims, Sharetribe profile fields).
	Claims map[string]any `json:"claims"`

	// RefreshToken is the marketplace refresh token a sharetribe caller
	// carried, kept for sealed callbacks. Never serialised or logged.
	RefreshToken string `json:"-"`
}

// HasScope reports whether p holds scope s.
func (p *Principal) HasScope(s string) bool {
	for _, v := range p.Scopes {
		if v == s {
			return true
		}
	}
	return false
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal of the request, if authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// ErrNoCredential is returned by an Authenticator when the request carries
// no credential of its kind, so the next authenticator may try.
var ErrNoCredential = errors.New("no credential")

// Authenticator verifies one kind of credential.
type Authenticator interface {
	// Name is the configured name ("users", "stripe").
	Name() string
	// Type is the configured type ("hs256", "jwks", …).
	Type() string
	// Authenticate returns the caller, ErrNoCredential when the request has
	// no credential of this kind, or another error when it has one that
	// does not verify.
	Authenticate(r *http.Request) (*Principal, error)
}
