package backlot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/connect"
	"github.com/backlothq/backlot/internal/secrets"
)

// Errors of Connection.Token and of requests made with Connection.Client.
var (
	// ErrNotConnected: the principal has not connected this account, or
	// has logged out.
	ErrNotConnected = errors.New("not connected")
	// ErrConnectionExpired: the third party refused the refresh token;
	// the user must connect again (on_expired has been enqueued).
	ErrConnectionExpired = errors.New("connection expired: connect again")
	// ErrConnectionUnavailable: the access token has expired and the
	// third party could not refresh it (network, 5xx); retried with
	// backoff on later calls.
	ErrConnectionUnavailable = errors.New("connection unavailable: the third party could not refresh the token")
)

// ErrSecretNotFound is returned by Secrets.Get and Secrets.Delete for a
// secret that does not exist. It matches ErrNotFound too.
var ErrSecretNotFound = errors.New("secret not found")

// SecretScope is whom a secret belongs to: a principal by Tenant and
// Subject (a Stripe account and user, say), or, when System is set, a named
// scope of the deployment owned by no principal.
type SecretScope struct {
	Tenant  string
	Subject string
	// System names a system scope; Tenant and Subject are then ignored.
	System string
}

// PrincipalScope is the scope of p's secrets: its tenant and subject.
func PrincipalScope(p *auth.Principal) SecretScope {
	return SecretScope{Tenant: p.Tenant, Subject: p.Subject}
}

func (s SecretScope) internal() secrets.Scope {
	if s.System != "" {
		return secrets.SystemScope(s.System)
	}
	return secrets.Scope{Tenant: s.Tenant, Subject: s.Subject}
}

// Secrets is the encrypted secret store: named values per scope, sealed
// with the keyring before they reach the database and bound to their scope
// and name, so a value copied to another row does not open. Values never
// appear in logs or errors.
type Secrets struct {
	s *secrets.Store
}

// Secrets returns the secret store. Put needs `keys` in the configuration.
func (a *App) Secrets() *Secrets { return a.secrets }

// Put sets the secret name of scope to value, replacing any earlier one.
func (s *Secrets) Put(ctx context.Context, scope SecretScope, name string, value []byte) error {
	return public(s.s.Put(ctx, scope.internal(), name, value))
}

// Get returns the secret name of scope; an error matching
// ErrSecretNotFound when there is none.
func (s *Secrets) Get(ctx context.Context, scope SecretScope, name string) ([]byte, error) {
	v, err := s.s.Get(ctx, scope.internal(), name)
	return v, public(err)
}

// Delete removes the secret name of scope; an error matching
// ErrSecretNotFound when there was none.
func (s *Secrets) Delete(ctx context.Context, scope SecretScope, name string) error {
	return public(s.s.Delete(ctx, scope.internal(), name))
}

// Connection is one configured OAuth connection, for calling the third
// party as a principal who connected there.
type Connection struct {
	c *connect.Conn
}

// Connection returns the connection named name (from `connections`), or
// nil when there is none.
func (a *App) Connection(name string) *Connection {
	c := a.conns.Get(name)
	if c == nil {
		return nil
	}
	return &Connection{c: c}
}

// Token returns p's access token, refreshing it first when it is due (once
// across every instance sharing the store). Errors match ErrNotConnected,
// ErrConnectionExpired or ErrConnectionUnavailable. Cancelling ctx ends
// the wait, never a refresh in progress.
func (c *Connection) Token(ctx context.Context, p *auth.Principal) (string, error) {
	tok, err := c.c.Token(ctx, p)
	return tok, public(err)
}

// Client returns an HTTP client that adds p's access token to every
// request as "Authorization: Bearer …". When the third party answers 401,
// the token is refreshed once and a request whose body can be replayed is
// sent again. A request fails, before anything is sent, with an error
// matching ErrNotConnected, ErrConnectionExpired or ErrConnectionUnavailable
// when there is no usable token. ctx bounds token look-ups and refreshes;
// each request's own context bounds the request.
func (c *Connection) Client(ctx context.Context, p *auth.Principal) *http.Client {
	return &http.Client{Transport: &bearerTransport{ctx: ctx, c: c.c, p: p, base: http.DefaultTransport}}
}

type bearerTransport struct {
	ctx  context.Context
	c    *connect.Conn
	p    *auth.Principal
	base http.RoundTripper
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := t.c.Token(t.ctx, t.p)
	if err != nil {
		closeBody(r)
		return nil, fmt.Errorf("connection %q: %w", t.c.Name(), public(err))
	}
	resp, err := t.base.RoundTrip(withBearer(r, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (r.Body != nil && r.GetBody == nil) {
		return resp, err
	}
	next, err := t.c.Refresh(t.ctx, t.p, tok)
	if err != nil || next == tok {
		return resp, nil // keep the third party's 401
	}
	r2 := r
	if r.Body != nil {
		body, err := r.GetBody()
		if err != nil {
			return resp, nil
		}
		r2 = r.Clone(r.Context())
		r2.Body = body
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.base.RoundTrip(withBearer(r2, next))
}

func withBearer(r *http.Request, token string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+token)
	return r2
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}
