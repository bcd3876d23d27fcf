package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// tokens is what a connection row's ciphertext holds.
type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token,omitempty"`
	TokenType string `json:"token_type,omitempty"`
}

func (c *Conn) seal(scope string, t tokens) (keyID string, ct []byte, err error) {
	pt, err := json.Marshal(t)
	if err != nil {
		return "", nil, err
	}
	defer clear(pt)
	ct, err = c.set.deps.Keys.Seal(store.KindConnection, scope, c.name, pt)
	if err != nil {
		return "", nil, fmt.Errorf("seal tokens of %s %q: %w", scope, c.name, err)
	}
	return c.set.deps.Keys.Current(), ct, nil
}

func (c *Conn) open(row store.Connection) (tokens, error) {
	pt, err := c.set.deps.Keys.Open(store.KindConnection, row.Scope, row.Name, row.Ciphertext)
	if err != nil {
		return tokens{}, fmt.Errorf("open tokens of %s %q: %w", row.Scope, row.Name, err)
	}
	defer clear(pt)
	var t tokens
	if err := json.Unmarshal(pt, &t); err != nil {
		return tokens{}, fmt.Errorf("open tokens of %s %q: %w", row.Scope, row.Name, err)
	}
	return t, nil
}

// due reports whether the row's access token should be refreshed now.
func (c *Conn) due(row store.Connection, now time.Time) bool {
	return !row.ExpiresAt.IsZero() && !now.Before(row.ExpiresAt.Add(-c.cfg.RefreshBefore.D()))
}

// usable reports whether the row's access token has not expired yet.
func usable(row store.Connection, now time.Time) bool {
	return row.ExpiresAt.IsZero() || now.Before(row.ExpiresAt)
}

// Token returns p's access token, refreshed first when it is due. Errors
// match ErrNotConnected, ErrExpired or ErrUnavailable; a cancelled ctx
// stops the wait, never the refresh.
func (c *Conn) Token(ctx context.Context, p *auth.Principal) (string, error) {
	scope, err := c.scope(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	return c.token(ctx, scope)
}

func (c *Conn) token(ctx context.Context, scope string) (string, error) {
	row, err := c.set.deps.Store.GetConnection(ctx, scope, c.name)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotConnected
	}
	if err != nil {
		return "", err
	}
	if row.State == store.ConnectionExpired {
		return "", ErrExpired
	}
	t, err := c.open(row)
	if err != nil {
		return "", err
	}
	now := c.set.deps.Now()
	if !c.due(row, now) {
		return t.Access, nil
	}
	if row.State == store.ConnectionFailing && now.Before(row.RetryAt) {
		if usable(row, now) {
			return t.Access, nil
		}
		return "", &UnavailableError{RetryAt: row.RetryAt}
	}
	return c.refresh(ctx, scope, t.Access, false)
}

// refresh refreshes the token of scope unless someone already replaced
// stale (or, without force, it is not due any more), and returns the
// current access token. One refresh per connection runs in this process
// (singleflight), and one across processes (the row lock). It runs on a
// context detached from ctx, so a caller going away does not abort it
// half-way; ctx only bounds the caller's wait.
func (c *Conn) refresh(ctx context.Context, scope, stale string, force bool) (string, error) {
	ch := c.flight.DoChan(scope, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.set.deps.RefreshTimeout)
		defer cancel()
		return c.refreshLocked(rctx, scope, stale, force)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// jobPayload is the payload of on_expired and on_recovered jobs: who, not
// any token.
type jobPayload struct {
	Connection string `json:"connection"`
	Scope      string `json:"scope"`
	At         string `json:"at"`
}

func (c *Conn) refreshLocked(ctx context.Context, scope, stale string, force bool) (string, error) {
	var (
		out    string
		outErr error
	)
	err := c.set.deps.Store.LockConnection(ctx, scope, c.name, func(tx store.Tx, row store.Connection) error {
		now := c.set.deps.Now()
		if row.State == store.ConnectionExpired {
			outErr = ErrExpired
			return nil
		}
		t, err := c.open(row)
		if err != nil {
			return err
		}
		// Another caller or instance may have refreshed while we waited
		// for the lock: then its token is ours.
		if t.Access != stale && !c.due(row, now) {
			out = t.Access
			return nil
		}
		if !force && !c.due(row, now) {
			out = t.Access
			return nil
		}
		if row.State == store.ConnectionFailing && now.Before(row.RetryAt) {
			if usable(row, now) && !force {
				out = t.Access
			} else {
				outErr = &UnavailableError{RetryAt: row.RetryAt}
			}
			return nil
		}
		if t.Refresh == "" {
			// Nothing to refresh with: the user must connect again.
			return c.expire(ctx, tx, row, now, &outErr, errors.New("no refresh token"))
		}
		octx := httpContext(ctx, c.tokenHTTP)
		nt, err := c.oauth.TokenSource(octx, &oauth2.Token{RefreshToken: t.Refresh}).Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
				return c.expire(ctx, tx, row, now, &outErr, err)
			}
			return c.fail(ctx, tx, row, t, now, &out, &outErr, err)
		}
		wasFailing := row.State == store.ConnectionFailing
		next := tokens{Access: nt.AccessToken, Refresh: nt.RefreshToken, TokenType: nt.TokenType}
		if next.Refresh == "" {
			next.Refresh = t.Refresh
		}
		row.KeyID, row.Ciphertext, err = c.seal(scope, next)
		if err != nil {
			return err
		}
		row.ExpiresAt = expiryOf(nt, now)
		if sc, ok := nt.Extra("scope").(string); ok && sc != "" {
			row.Scopes = sc
		}
		row.State, row.Failures, row.RetryAt, row.UpdatedAt = store.ConnectionActive, 0, time.Time{}, now
		if err := c.set.deps.Store.UpdateConnectionTx(ctx, tx, row); err != nil {
			return err
		}
		if wasFailing {
			if err := c.auditTx(ctx, tx, store.AuditConnActive, row, "refresh succeeded after failures"); err != nil {
				return err
			}
		}
		if wasFailing && c.cfg.OnRecovered != "" {
			if err := c.enqueue(ctx, tx, c.cfg.OnRecovered, row, now); err != nil {
				return err
			}
		}
		c.count("ok")
		c.set.deps.Logger.Info("connection refreshed", "connection", c.name, "scope", scope, "recovered", wasFailing)
		out = next.Access
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotConnected
	}
	if err != nil {
		return "", fmt.Errorf("refresh connection %q: %w", c.name, err)
	}
	return out, outErr
}

// expire marks row expired (the user must reconnect) and enqueues
// on_expired: this runs once per expiry, since an expired row is never
// refreshed again.
func (c *Conn) expire(ctx context.Context, tx store.Tx, row store.Connection, now time.Time, outErr *error, cause error) error {
	row.State, row.Failures, row.RetryAt, row.UpdatedAt = store.ConnectionExpired, 0, time.Time{}, now
	if err := c.set.deps.Store.UpdateConnectionTx(ctx, tx, row); err != nil {
		return err
	}
	if err := c.auditTx(ctx, tx, store.AuditConnExpired, row, cause.Error()); err != nil {
		return err
	}
	if c.cfg.OnExpired != "" {
		if err := c.enqueue(ctx, tx, c.cfg.OnExpired, row, now); err != nil {
			return err
		}
	}
	c.count("expired")
	c.set.deps.Logger.Warn("connection expired: the user must connect again", "connection", c.name, "scope", row.Scope, "error", cause.Error())
	*outErr = ErrExpired
	return nil
}

// fail records a failed refresh (network, 5xx, anything but invalid_grant)
// and schedules the next attempt with exponential backoff. The current
// token is still handed out while it has not expired.
func (c *Conn) fail(ctx context.Context, tx store.Tx, row store.Connection, t tokens, now time.Time, out *string, outErr *error, cause error) error {
	wasFailing := row.State == store.ConnectionFailing
	row.State = store.ConnectionFailing
	row.Failures++
	wait := c.set.deps.RetryBase << min(row.Failures-1, 20)
	if wait <= 0 || wait > c.set.deps.RetryMax {
		wait = c.set.deps.RetryMax
	}
	row.RetryAt, row.UpdatedAt = now.Add(wait), now
	if err := c.set.deps.Store.UpdateConnectionTx(ctx, tx, row); err != nil {
		return err
	}
	if !wasFailing {
		if err := c.auditTx(ctx, tx, store.AuditConnFailing, row, cause.Error()); err != nil {
			return err
		}
	}
	c.count("failed")
	c.set.deps.Logger.Warn("connection refresh failed; will retry", "connection", c.name, "scope", row.Scope,
		"failures", row.Failures, "retry_at", row.RetryAt, "error", cause.Error())
	if usable(row, now) {
		*out = t.Access
		return nil
	}
	*outErr = &UnavailableError{RetryAt: row.RetryAt, Err: cause}
	return nil
}

func (c *Conn) enqueue(ctx context.Context, tx store.Tx, kind string, row store.Connection, now time.Time) error {
	payload, err := json.Marshal(jobPayload{Connection: c.name, Scope: row.Scope, At: now.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	_, err = c.set.deps.Enqueuer.EnqueueTx(ctx, tx, kind, payload, &jobs.EnqueueOpts{
		DedupeKey: kind + ":" + c.name + ":" + row.Scope + ":" + now.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return nil
}

func (c *Conn) count(outcome string) {
	if c.set.refreshes != nil {
		c.set.refreshes.WithLabelValues(c.name, outcome).Inc()
	}
}

// errorFieldTransport turns a token endpoint's 200 answer whose JSON
// carries an "error" field into a 400, so that x/oauth2 reports it as the
// *oauth2.RetrieveError it is (with its error code) instead of a missing
// access token, or worse, a success.
type errorFieldTransport struct{ base http.RoundTripper }

func (t errorFieldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read token answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		Error any `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != nil && e.Error != "" {
		resp.StatusCode, resp.Status = http.StatusBadRequest, "400 Bad Request (200 with an error field)"
		if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			resp.Header.Set("Content-Type", "application/json")
		}
	}
	return resp, nil
}

// httpContext makes x/oauth2 use client.
func httpContext(ctx context.Context, client *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, client)
}

// Refresh refreshes p's token because the third party refused stale,
// unless someone has replaced stale already; it returns the current access
// token.
func (c *Conn) Refresh(ctx context.Context, p *auth.Principal, stale string) (string, error) {
	scope, err := c.scope(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	return c.refresh(ctx, scope, stale, true)
}

// expiryOf is when nt expires by backlot's clock: x/oauth2 stamps Expiry
// with the wall clock, so expires_in is read again and added to now.
func expiryOf(nt *oauth2.Token, now time.Time) time.Time {
	var secs float64
	switch v := nt.Extra("expires_in").(type) {
	case float64:
		secs = v
	case json.Number:
		secs, _ = v.Float64()
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs > 0 {
		return now.Add(time.Duration(secs * float64(time.Second)))
	}
	return nt.Expiry
}

// auditTx records a connection's state change in the audit log, in the
// transaction that writes the new state: backlot itself is the actor (a
// refresh outcome), and the detail says why, never a token.
func (c *Conn) auditTx(ctx context.Context, tx store.Tx, action string, row store.Connection, why string) error {
	detail, err := json.Marshal(map[string]any{"connection": c.name, "scope": row.Scope, "state": row.State,
		"failures": row.Failures, "reason": why})
	if err != nil {
		return err
	}
	return c.set.deps.Store.InsertAuditTx(ctx, tx, store.AuditEntry{
		At: row.UpdatedAt, Actor: store.AuditActorSystem, Action: action,
		Target: "connection " + c.name + " " + row.Scope, Count: 1, Detail: string(detail),
	})
}

// audit records a state change a user made (connected, disconnected).
func (c *Conn) audit(r *http.Request, actor, action, scope string, now time.Time) error {
	detail, err := json.Marshal(map[string]any{"connection": c.name, "scope": scope})
	if err != nil {
		return err
	}
	addr := ""
	if ip := httpapi.ClientIP(r); ip.IsValid() {
		addr = ip.String()
	}
	_, err = c.set.deps.Store.InsertAudit(r.Context(), store.AuditEntry{
		At: now, Actor: actor, Action: action, Target: "connection " + c.name + " " + scope,
		Count: 1, Detail: string(detail), Address: addr,
	})
	return err
}
