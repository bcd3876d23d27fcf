package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/auth"

	"golang.org/x/sync/singleflight"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

// Sharetribe authenticator limits and defaults.
const (
	// SharetribeCacheTTL is the longest a verified token is trusted
	// without asking the marketplace again (shorter if the token expires
	// sooner).
	SharetribeCacheTTL = 60 * time.Second

	sharetribeCacheMax  = 10000
	sharetribeTimeout   = 5 * time.Second
	sharetribeMaxBody   = 1 << 20
	sharetribeMaxCookie = 8192
)

// Sharetribe accepts a marketplace user's access token, from
// `Authorization: Bearer` or from the Sharetribe SDK's cookie
// `st-<client_id>-token`, and verifies it by asking the marketplace who
// the user is (GET /v1/api/current_user/show). Answers are cached, keyed by
// the token's SHA-256, for SharetribeCacheTTL or until the token expires.
type Sharetribe struct {
	name       string
	cookieName string
	showURL    string
	client     *http.Client
	now        func() time.Time
	// cop guards unsafe requests authenticated by the SDK cookie, which a
	// browser attaches to cross-site requests too (SPEC 5.3).
	cop *http.CrossOriginProtection

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[[sha256.Size]byte]sharetribeEntry
}

// sharetribeEntry is a cached verdict: a Principal (without refresh token)
// or the Failure the marketplace's answer meant. Tokens never turn valid
// later, so refusals are cached as well as acceptances.
type sharetribeEntry struct {
	p       *auth.Principal
	fail    *auth.Failure
	expires time.Time
}

// sdkToken is the token JSON the Sharetribe SDK keeps in its cookie.
type sdkToken struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
}

var _ auth.Authenticator = (*Sharetribe)(nil)

func newSharetribe(name string, cfg config.Authenticator, mkt config.Marketplace, deps Deps) (*Sharetribe, error) {
	deps = deps.withDefaults()
	if mkt.Type != "" && mkt.Type != "sharetribe" {
		return nil, fmt.Errorf("marketplace %q has type %q, want sharetribe", cfg.Marketplace, mkt.Type)
	}
	if mkt.ClientID == "" {
		return nil, fmt.Errorf("marketplace %q: client_id is required (it names the SDK cookie)", cfg.Marketplace)
	}
	base := mkt.APIURL
	if base == "" {
		base = config.SharetribeAPIDefault
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("marketplace %q: api_url %q is not an http(s) URL", cfg.Marketplace, base)
	}
	// Never follow redirects: the token must go to the configured host only.
	client := *deps.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sharetribe{
		name:       name,
		cookieName: "st-" + mkt.ClientID + "-token",
		showURL:    strings.TrimRight(base, "/") + "/v1/api/current_user/show",
		client:     &client,
		now:        deps.Now,
		cache:      map[[sha256.Size]byte]sharetribeEntry{},
		cop:        http.NewCrossOriginProtection(),
	}, nil
}

// Name implements Authenticator.
func (a *Sharetribe) Name() string { return a.name }

// Type implements Authenticator.
func (a *Sharetribe) Type() string { return config.AuthSharetribe }

// CookieName is the SDK cookie this authenticator reads.
func (a *Sharetribe) CookieName() string { return a.cookieName }

// Authenticate implements Authenticator. A refusal by the marketplace is a
// *Failure; a marketplace that cannot be asked is a 503 *httpapi.Error.
func (a *Sharetribe) Authenticate(r *http.Request) (*auth.Principal, error) {
	tok, refresh, fromCookie, err := a.credential(r)
	if err != nil {
		return nil, err
	}
	if fromCookie && !safeMethod(r.Method) {
		if f := checkOrigin(a.cop, r); f != nil {
			return nil, f
		}
	}
	p, err := a.verify(r.Context(), tok)
	if err != nil {
		var f *auth.Failure
		if errors.As(err, &f) && !fromCookie {
			// A bearer token the marketplace does not know may well be
			// meant for another authenticator on the same route.
			cp := *f
			cp.Foreign = true
			return nil, &cp
		}
		return nil, err
	}
	out := *p
	out.Scopes = slices.Clone(p.Scopes)
	out.Claims = maps.Clone(p.Claims)
	out.RefreshToken = refresh
	return &out, nil
}

// credential finds the access token: the bearer header first, then the
// SDK cookie. The refresh token is taken from the cookie only when the
// cookie holds the same access token, so a Principal never carries another
// session's refresh token.
func (a *Sharetribe) credential(r *http.Request) (tok, refresh string, fromCookie bool, err error) {
	raw, hasCookie := a.rawCookie(r)
	if t, ok := bearer(r); ok {
		if t == "" {
			return "", "", false, &auth.Failure{Reason: "empty bearer token"}
		}
		if hasCookie {
			if c, err := parseSDKCookie(raw); err == nil && c.AccessToken == t {
				refresh = c.RefreshToken
			}
		}
		return t, refresh, false, nil
	}
	if !hasCookie {
		return "", "", false, auth.ErrNoCredential
	}
	c, err := parseSDKCookie(raw)
	if err != nil {
		return "", "", true, &auth.Failure{Reason: "malformed marketplace cookie " + a.cookieName, Err: err}
	}
	if c.Scope == "public-read" && c.RefreshToken == "" {
		// A logged-out visitor's SDK holds an anonymous token; no need to
		// ask the marketplace to refuse it.
		return "", "", true, &auth.Failure{Reason: "anonymous marketplace token: the user is not signed in"}
	}
	return c.AccessToken, c.RefreshToken, true, nil
}

// rawCookie returns the SDK cookie's value. It reads the Cookie header
// itself because net/http drops values holding characters such as '"',
// which an unencoded JSON cookie would.
func (a *Sharetribe) rawCookie(r *http.Request) (string, bool) {
	prefix := a.cookieName + "="
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if v, ok := strings.CutPrefix(part, prefix); ok {
				return v, true
			}
		}
	}
	return "", false
}

// parseSDKCookie decodes the SDK's cookie: the token JSON, URL-encoded by
// js-cookie or Express (encodeURIComponent, so '+' is literal), possibly
// quoted, possibly with Express's "j:" prefix for JSON values (older SDKs).
func parseSDKCookie(v string) (sdkToken, error) {
	var t sdkToken
	if len(v) > sharetribeMaxCookie {
		return t, fmt.Errorf("cookie is %d bytes, over %d", len(v), sharetribeMaxCookie)
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	s, err := url.PathUnescape(v)
	if err != nil {
		return t, fmt.Errorf("cookie is not URL-encoded: %w", err)
	}
	s = strings.TrimPrefix(s, "j:")
	if err := json.Unmarshal([]byte(s), &t); err != nil {
		return t, errors.New("cookie is not token JSON")
	}
	if t.AccessToken == "" {
		return t, errors.New("cookie has no access_token")
	}
	if t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer") {
		return t, fmt.Errorf("cookie token_type %q is not bearer", t.TokenType)
	}
	return t, nil
}

// verify returns the Principal for tok from the cache or the marketplace.
// Concurrent verifications of one token share one marketplace call.
func (a *Sharetribe) verify(ctx context.Context, tok string) (*auth.Principal, error) {
	key := sha256.Sum256([]byte(tok))
	if e, ok := a.cached(key); ok {
		if e.fail != nil {
			return nil, e.fail
		}
		return e.p, nil
	}
	// The shared call must not die with the first caller's request.
	v, err, _ := a.flight.Do(hex.EncodeToString(key[:]), func() (any, error) {
		if e, ok := a.cached(key); ok {
			return e, nil
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharetribeTimeout)
		defer cancel()
		p, err := a.ask(cctx, tok)
		var f *auth.Failure
		if err != nil && !errors.As(err, &f) {
			return nil, err // the marketplace could not answer: nothing to cache
		}
		e := sharetribeEntry{p: p, fail: f, expires: a.cacheUntil(tok)}
		a.store(key, e)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	e := v.(sharetribeEntry)
	if e.fail != nil {
		return nil, e.fail
	}
	return e.p, nil
}

// ask calls current_user/show with tok.
func (a *Sharetribe) ask(ctx context.Context, tok string) (*auth.Principal, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.showURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build marketplace request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	res, err := a.client.Do(req)
	if err != nil {
		return nil, marketplaceUnavailable("the marketplace is unreachable", nil, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, sharetribeMaxBody+1))
	if err != nil {
		return nil, marketplaceUnavailable("reading the marketplace's answer failed", nil, err)
	}
	if len(body) > sharetribeMaxBody {
		return nil, marketplaceBadAnswer(res.StatusCode, nil, errors.New("answer over 1 MiB"))
	}
	switch {
	case res.StatusCode == http.StatusOK:
		return a.principal(body, tok)
	case res.StatusCode == http.StatusUnauthorized:
		return nil, &auth.Failure{Reason: "the marketplace refused the token (invalid, expired or revoked)",
			Err: fmt.Errorf("current_user/show answered %d %s", res.StatusCode, errorCodes(body))}
	case res.StatusCode == http.StatusForbidden:
		return nil, &auth.Failure{Reason: "not a marketplace user token (anonymous or integration token)",
			Err: fmt.Errorf("current_user/show answered %d %s", res.StatusCode, errorCodes(body))}
	case res.StatusCode == http.StatusTooManyRequests:
		e := marketplaceUnavailable("the marketplace is rate limiting backlot", jsonOrNil(body),
			fmt.Errorf("current_user/show answered %d", res.StatusCode))
		if ra := res.Header.Get("Retry-After"); ra != "" {
			e.Header = http.Header{"Retry-After": []string{ra}}
		}
		return nil, e
	case res.StatusCode >= 500:
		return nil, marketplaceUnavailable("the marketplace failed", jsonOrNil(body),
			fmt.Errorf("current_user/show answered %d", res.StatusCode))
	default:
		return nil, marketplaceBadAnswer(res.StatusCode, jsonOrNil(body), nil)
	}
}

// principal builds the Principal from a current_user/show answer. Only
// non-secret profile fields become claims: never protected or private data.
func (a *Sharetribe) principal(body []byte, tok string) (*auth.Principal, error) {
	var doc struct {
		Data struct {
			ID         string `json:"id"`
			Type       string `json:"type"`
			Attributes struct {
				Email         string `json:"email"`
				EmailVerified bool   `json:"emailVerified"`
				Banned        bool   `json:"banned"`
				Deleted       bool   `json:"deleted"`
				Profile       struct {
					FirstName       string         `json:"firstName"`
					LastName        string         `json:"lastName"`
					DisplayName     string         `json:"displayName"`
					AbbreviatedName string         `json:"abbreviatedName"`
					PublicData      map[string]any `json:"publicData"`
					Metadata        map[string]any `json:"metadata"`
				} `json:"profile"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Data.ID == "" || doc.Data.Type != "currentUser" {
		return nil, marketplaceBadAnswer(http.StatusOK, nil, fmt.Errorf("current_user/show: not a currentUser resource: %v", err))
	}
	at := doc.Data.Attributes
	if at.Banned || at.Deleted {
		return nil, &auth.Failure{Reason: "the marketplace user is banned or deleted"}
	}
	scopes := []string{"user"}
	if c, ok := jwtClaims(tok); ok && c.Scope != "" {
		scopes = strings.Fields(c.Scope)
	}
	claims := map[string]any{
		"firstName":       at.Profile.FirstName,
		"lastName":        at.Profile.LastName,
		"displayName":     at.Profile.DisplayName,
		"abbreviatedName": at.Profile.AbbreviatedName,
		"emailVerified":   at.EmailVerified,
	}
	if at.Profile.PublicData != nil {
		claims["publicData"] = at.Profile.PublicData
	}
	if at.Profile.Metadata != nil {
		claims["metadata"] = at.Profile.Metadata
	}
	return &auth.Principal{
		Authenticator: a.name,
		Subject:       doc.Data.ID,
		Email:         at.Email,
		Scopes:        scopes,
		Claims:        claims,
	}, nil
}

// cacheUntil is when a verdict on tok stops being trusted: the earlier of
// SharetribeCacheTTL from now and the token's own expiry, when the token
// is a JWT that states one. The claim is only ever used to shorten.
func (a *Sharetribe) cacheUntil(tok string) time.Time {
	until := a.now().Add(SharetribeCacheTTL)
	if c, ok := jwtClaims(tok); ok && c.Exp > 0 {
		if exp := time.Unix(int64(c.Exp), 0); exp.Before(until) {
			until = exp
		}
	}
	return until
}

func (a *Sharetribe) cached(key [sha256.Size]byte) (sharetribeEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[key]
	if !ok {
		return e, false
	}
	if !a.now().Before(e.expires) {
		delete(a.cache, key)
		return e, false
	}
	return e, true
}

// store caches e, first dropping expired entries and then, if the cache is
// still full, arbitrary ones: memory stays bounded at the price of some
// extra marketplace calls.
func (a *Sharetribe) store(key [sha256.Size]byte, e sharetribeEntry) {
	now := a.now()
	if !now.Before(e.expires) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= sharetribeCacheMax {
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		for k := range a.cache {
			if len(a.cache) < sharetribeCacheMax*9/10 {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[key] = e
}

type tokenClaims struct {
	Exp   float64 `json:"exp"`
	Scope string  `json:"scope"`
}

// jwtClaims reads (without verifying) the claims of a JWT-shaped token.
// Only the marketplace's acceptance of the whole token makes them
// trustworthy; they are used for the cache lifetime and scopes.
func jwtClaims(tok string) (tokenClaims, bool) {
	var c tokenClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 4096 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, false
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, false
	}
	return c, true
}

func marketplaceUnavailable(desc string, original json.RawMessage, err error) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "marketplace_unavailable",
		Description: "cannot verify the marketplace session: " + desc, Original: original, Err: err}
}

func marketplaceBadAnswer(status int, original json.RawMessage, err error) *httpapi.Error {
	if err == nil {
		err = fmt.Errorf("current_user/show answered %d", status)
	}
	return &httpapi.Error{Status: http.StatusBadGateway, Code: "marketplace_error",
		Description: fmt.Sprintf("cannot verify the marketplace session: unexpected answer (%d) from the marketplace", status),
		Original:    original, Err: err}
}

// jsonOrNil passes an upstream error body on only if it is JSON.
func jsonOrNil(b []byte) json.RawMessage {
	if len(b) == 0 || !json.Valid(b) {
		return nil
	}
	return json.RawMessage(b)
}

// errorCodes summarises a Sharetribe error body ({"errors":[{code}]}) for logs.
func errorCodes(b []byte) string {
	var doc struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &doc) != nil || len(doc.Errors) == 0 {
		return ""
	}
	codes := make([]string, len(doc.Errors))
	for i, e := range doc.Errors {
		codes[i] = e.Code
	}
	return strings.Join(codes, ",")
}
