package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/netguard"
)

// lookup is a `lookup` credential: for every request, POST to the
// partner's middleware with its shared secret as the whole Authorization
// value and a JSON object made of
//
//   - the caller's body fields named in body_fields, when present, as sent;
//   - the principal's subject, tenant or email under the names in
//     principal_fields;
//
// and take the token from the answer's `field` (default access_token).
// The token is used for this one request and never stored: the seed
// dashboards fetch it on every call so a revoked merchant is cut off at
// once.
type lookup struct {
	cfg     config.LookupCredential
	url     *url.URL
	label   string // metrics label: "lookup:<host>"
	path    []string
	client  *http.Client
	timeout time.Duration
}

func newLookup(cfg config.LookupCredential, client *http.Client, timeout time.Duration) (*lookup, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("url: want an absolute http(s) URL")
	}
	if !validHeaderValue(cfg.Secret) {
		return nil, errors.New("secret: empty or contains a line break")
	}
	field := cfg.Field
	if field == "" {
		field = config.LookupFieldDefault
	}
	return &lookup{cfg: cfg, url: u, label: "lookup:" + u.Host, path: strings.Split(field, "."),
		client: client, timeout: timeout}, nil
}

// lookupToken asks the middleware for the token of this request.
func (s *Set) lookupToken(ctx context.Context, lk *lookup, p *auth.Principal, fields map[string]json.RawMessage) (string, *upstreamError) {
	q := make(map[string]any, len(lk.cfg.BodyFields)+len(lk.cfg.PrincipalFields))
	for _, f := range lk.cfg.BodyFields {
		if v, ok := fields[f]; ok {
			q[f] = v
		}
	}
	for k, attr := range lk.cfg.PrincipalFields {
		q[k] = principalAttr(p, attr)
	}
	body, err := json.Marshal(q)
	if err != nil {
		return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_failed", desc: "could not build the lookup request", err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, lk.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lk.url.String(), bytes.NewReader(body))
	if err != nil {
		return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_failed", desc: "could not build the lookup request", err: err}
	}
	req.Header.Set("Authorization", lk.cfg.Secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := lk.client.Do(req)
	if err != nil {
		timedOut := ctx.Err() != nil
		class := "error"
		if timedOut {
			class = "timeout"
		}
		s.latency.WithLabelValues(lk.label, class).Observe(time.Since(start).Seconds())
		switch {
		case errors.Is(err, netguard.ErrProhibited):
			return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_prohibited",
				desc: "the token lookup URL resolves to an address backlot may not call (loopback and private networks need allow_private on the lookup)", err: err}
		case timedOut:
			return "", &upstreamError{status: http.StatusGatewayTimeout, code: "lookup_timeout",
				desc: fmt.Sprintf("the token lookup did not answer within %s", lk.timeout), err: err}
		}
		return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_failed", desc: "the token lookup could not be reached", err: err}
	}
	s.latency.WithLabelValues(lk.label, statusClass(resp.StatusCode)).Observe(time.Since(start).Seconds())
	if resp.StatusCode >= 300 {
		orig := readErrorBody(resp)
		e := &upstreamError{status: resp.StatusCode, code: "lookup_failed", original: orig,
			desc: fmt.Sprintf("the token lookup answered %d", resp.StatusCode)}
		switch {
		case resp.StatusCode < 400, resp.StatusCode >= 500,
			resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
			// A redirect, a server error, or a refused secret is backlot's
			// (or the middleware's) problem, not the caller's.
			e.status = http.StatusBadGateway
		default:
			// Not found, bad input: the caller asked for a merchant the
			// middleware does not know.
			e.msg = messageOf(orig)
		}
		return "", e
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, LookupAnswerMax+1))
	if err != nil || len(data) > LookupAnswerMax {
		return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_failed", desc: "the token lookup answer could not be read", err: err}
	}
	tok, ok := dig(data, lk.path)
	if !ok || !validHeaderValue(tok) {
		return "", &upstreamError{status: http.StatusBadGateway, code: "lookup_failed",
			desc: fmt.Sprintf("the token lookup answer has no string %s", strings.Join(lk.path, "."))}
	}
	return tok, nil
}

// dig follows path through JSON objects to a string.
func dig(data []byte, path []string) (string, bool) {
	cur := json.RawMessage(data)
	for _, k := range path {
		var m map[string]json.RawMessage
		if json.Unmarshal(cur, &m) != nil {
			return "", false
		}
		v, ok := m[k]
		if !ok {
			return "", false
		}
		cur = v
	}
	var s string
	if json.Unmarshal(cur, &s) != nil {
		return "", false
	}
	return s, true
}

// basicValue is the base64 of user:password for HTTP basic auth.
func basicValue(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
