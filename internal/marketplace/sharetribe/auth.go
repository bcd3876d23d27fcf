package sharetribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Token is an answer of the Authentication API's token endpoint.
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Expiry is when the access token expires, by Config.Now when it was
	// issued.
	Expiry time.Time `json:"-"`
}

// errNoIntegration refuses Integration API calls without credentials.
var errNoIntegration = errors.New("sharetribe: the Integration API needs IntegrationClientID and IntegrationClientSecret")

// token posts a grant to base's /v1/auth/token.
func (c *Client) token(ctx context.Context, base string, form url.Values) (*Token, error) {
	const path = "/v1/auth/token"
	rq := request{method: http.MethodPost, url: base + path, path: path, body: []byte(form.Encode()), header: http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Accept":       {"application/json"},
	}}
	res, b, err := c.send(ctx, rq)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, c.apiError(rq, res, b)
	}
	var t Token
	// A 200 that carries an "error" is a failure all the same.
	var probe struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" || (json.Unmarshal(b, &probe) == nil && probe.Error != "") {
		e := c.apiError(rq, res, b)
		e.Status = http.StatusBadGateway
		return nil, fmt.Errorf("sharetribe: token (%s): unusable token answer: %w", form.Get("grant_type"), e)
	}
	t.Expiry = c.cfg.Now().Add(time.Duration(t.ExpiresIn) * time.Second)
	return &t, nil
}

// AnonymousToken gets a public-read token for the Marketplace API
// (client_credentials with the Marketplace client id).
func (c *Client) AnonymousToken(ctx context.Context) (*Token, error) {
	return c.token(ctx, c.cfg.APIURL, url.Values{"client_id": {c.cfg.ClientID}, "grant_type": {"client_credentials"}, "scope": {"public-read"}})
}

// PasswordToken logs a user in (grant password, scope user).
func (c *Client) PasswordToken(ctx context.Context, username, password string) (*Token, error) {
	return c.token(ctx, c.cfg.APIURL, url.Values{"client_id": {c.cfg.ClientID}, "grant_type": {"password"},
		"username": {username}, "password": {password}, "scope": {"user"}})
}

// RefreshToken exchanges a Marketplace API refresh token for a new access
// token (and, Sharetribe rotating them, a new refresh token).
func (c *Client) RefreshToken(ctx context.Context, refreshToken string) (*Token, error) {
	return c.token(ctx, c.cfg.APIURL, url.Values{"client_id": {c.cfg.ClientID}, "grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// ExchangeToken turns a user's access token into a trusted:user token
// (Sharetribe's token_exchange grant), which needs the Marketplace
// client's secret.
func (c *Client) ExchangeToken(ctx context.Context, subjectToken string) (*Token, error) {
	if c.cfg.ClientSecret == "" {
		return nil, errors.New("sharetribe: token_exchange needs ClientSecret")
	}
	return c.token(ctx, c.cfg.APIURL, url.Values{"client_id": {c.cfg.ClientID}, "client_secret": {c.cfg.ClientSecret},
		"grant_type": {"token_exchange"}, "subject_token": {subjectToken}, "scope": {"trusted:user"}})
}

// IntegrationToken returns an Integration API token (client_credentials,
// scope integ), from the cache while it has more than a minute to live.
func (c *Client) IntegrationToken(ctx context.Context) (*Token, error) {
	return c.integrationToken(ctx, false)
}

func (c *Client) integrationToken(ctx context.Context, refresh bool) (*Token, error) {
	if c.cfg.IntegrationClientID == "" || c.cfg.IntegrationClientSecret == "" {
		return nil, errNoIntegration
	}
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if refresh {
		c.integTok = nil
	}
	if t := c.integTok; t != nil && c.cfg.Now().Add(tokenSkew).Before(t.Expiry) {
		return t, nil
	}
	t, err := c.token(ctx, c.cfg.IntegrationURL, url.Values{"client_id": {c.cfg.IntegrationClientID},
		"client_secret": {c.cfg.IntegrationClientSecret}, "grant_type": {"client_credentials"}, "scope": {"integ"}})
	if err != nil {
		return nil, err
	}
	c.integTok = t
	return t, nil
}

func (c *Client) integCall(kind Kind, path string, q url.Values, body any) call {
	return call{kind: kind, base: c.cfg.IntegrationURL, path: "/v1/integration_api/" + path, query: q, body: body, refreshable: true,
		token: func(ctx context.Context, refresh bool) (string, error) {
			t, err := c.integrationToken(ctx, refresh)
			if err != nil {
				return "", err
			}
			return t.AccessToken, nil
		}}
}

func (c *Client) userCall(kind Kind, userToken, path string, q url.Values, body any) call {
	return call{kind: kind, base: c.cfg.APIURL, path: "/v1/api/" + path, query: q, body: body,
		token: func(context.Context, bool) (string, error) {
			if strings.TrimSpace(userToken) == "" {
				return "", errors.New("sharetribe: no user access token")
			}
			return userToken, nil
		}}
}
