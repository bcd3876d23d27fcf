package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/netguard"
)

// outgoing is what one request upstream is built from, attempt after
// attempt.
type outgoing struct {
	method string
	url    *url.URL
	header http.Header
	// body is the rewritten JSON body (replayable); nil with stream.
	body []byte
	// stream is the caller's body passed through as is; it can be sent
	// once, or again only while nothing of it has been read.
	stream *onceBody
	length int64
	bearer string // Authorization: Bearer, from a lookup or connection
}

// onceBody passes the caller's body to the transport without letting the
// transport close it, and counts what was read, so a request whose
// connection failed before anything was written can be sent again.
type onceBody struct {
	r io.Reader
	n atomic.Int64
}

func (b *onceBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *onceBody) Close() error { return nil }

func (o *outgoing) replayable() bool { return o.stream == nil }

func (o *outgoing) request(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	switch {
	case o.stream != nil:
		body = o.stream
	case o.body != nil:
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequestWithContext(ctx, o.method, o.url.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = o.header.Clone()
	if o.stream != nil {
		req.ContentLength = o.length
		if o.length == 0 {
			req.Body = http.NoBody
		}
	}
	if o.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	return req, nil
}

// handler serves one route. The caller is already authenticated.
func (s *Set) handler(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, _ := auth.FromContext(ctx)
		target, err := rt.target(r)
		if err != nil {
			httpapi.WriteError(w, r, &httpapi.Error{Status: http.StatusBadRequest, Code: "invalid_path",
				Description: "the request path or query cannot be forwarded: " + publicReason(err), Err: err})
			return
		}
		out := &outgoing{method: r.Method, url: target, header: outHeader(r.Header)}
		out.header.Set("X-Request-Id", httpapi.RequestIDFrom(ctx))

		var fields map[string]json.RawMessage
		if rt.parse {
			if fields, err = readJSONBody(r, s.deps.MaxBodyBytes); err != nil {
				httpapi.WriteError(w, r, err)
				return
			}
			for k := range fields {
				if key, ok := rt.bodyKeys[strings.ToLower(k)]; ok {
					httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid_request",
						"the body field %q is set by the server (as %q) and cannot be sent", k, key))
					return
				}
			}
		} else if r.ContentLength != 0 {
			out.stream = &onceBody{r: r.Body}
			out.length = r.ContentLength
		} else {
			out.stream = &onceBody{r: http.NoBody}
		}
		if out.stream != nil && out.length == 0 {
			out.stream = nil // nothing to send: an empty body replays
		}

		switch {
		case rt.header != nil:
			for k, vs := range rt.header {
				out.header[k] = vs
			}
		case rt.basic != nil:
			out.header.Set("Authorization", "Basic "+basicValue(rt.basic.User, rt.basic.Password))
		case rt.lookup != nil:
			tok, herr := s.lookupToken(ctx, rt.lookup, p, fields)
			if herr != nil {
				s.writeError(w, r, herr)
				return
			}
			out.bearer = tok
		case rt.conn != nil:
			tok, err := rt.conn.Token(ctx, p)
			if err != nil || !validHeaderValue(tok) {
				httpapi.WriteError(w, r, &httpapi.Error{Status: http.StatusUnauthorized, Code: "connection_required",
					Description: fmt.Sprintf("no usable %s connection for this caller", rt.connName),
					Message:     "Please connect your account to continue.", Err: err})
				return
			}
			out.bearer = tok
		}

		if rt.parse {
			for _, f := range rt.strip {
				delete(fields, f)
			}
			for k, v := range rt.body {
				fields[k] = v
			}
			b, err := json.Marshal(fields)
			if err != nil {
				httpapi.WriteError(w, r, fmt.Errorf("proxy: encode body: %w", err))
				return
			}
			out.body = b
			out.header.Set("Content-Type", "application/json")
		}

		resp, cancel, herr := s.do(ctx, rt, out, p)
		if herr != nil {
			s.writeError(w, r, herr)
			return
		}
		defer cancel()
		defer resp.Body.Close()
		s.writeResponse(w, r, rt, resp)
	})
}

// publicReason is a refusal's reason without the echoed input.
func publicReason(err error) string {
	var pe *netguard.PathError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return err.Error()
}

// do sends out, retrying where that is safe. On success the caller must
// call cancel after reading resp.Body.
func (s *Set) do(ctx context.Context, rt *route, out *outgoing, p *auth.Principal) (*http.Response, context.CancelFunc, *upstreamError) {
	up := rt.up
	refreshed := false
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, up.timeout)
		req, err := out.request(actx)
		if err != nil {
			cancel()
			return nil, nil, &upstreamError{status: http.StatusBadGateway, code: "upstream_error",
				desc: "could not build the upstream request", err: err}
		}
		start := time.Now()
		resp, err := up.client.Do(req)
		if err != nil {
			timedOut := actx.Err() != nil && ctx.Err() == nil
			cancel()
			class := "error"
			if timedOut {
				class = "timeout"
			}
			s.latency.WithLabelValues(up.name, class).Observe(time.Since(start).Seconds())
			switch {
			case ctx.Err() != nil:
				return nil, nil, &upstreamError{status: 499, code: "client_closed", desc: "the caller went away", err: ctx.Err()}
			case errors.Is(err, netguard.ErrProhibited):
				return nil, nil, &upstreamError{status: http.StatusBadGateway, code: "upstream_prohibited",
					desc: fmt.Sprintf("upstream %s resolves to an address backlot may not call (loopback and private networks need allow_private)", up.name), err: err}
			case timedOut:
				return nil, nil, &upstreamError{status: http.StatusGatewayTimeout, code: "upstream_timeout",
					desc: fmt.Sprintf("upstream %s did not answer within %s", up.name, up.timeout), err: err}
			}
			// A connection that failed before anything was written can be
			// tried again whatever the method.
			if attempt < up.retries && dialFailed(err) && (out.stream == nil || out.stream.n.Load() == 0) {
				if s.wait(ctx, up, attempt, 0, "dial failed", err) {
					continue
				}
			}
			return nil, nil, &upstreamError{status: http.StatusBadGateway, code: "upstream_unreachable",
				desc: fmt.Sprintf("upstream %s could not be reached", up.name), err: err}
		}
		s.latency.WithLabelValues(up.name, statusClass(resp.StatusCode)).Observe(time.Since(start).Seconds())

		if rt.conn != nil && resp.StatusCode == http.StatusUnauthorized && !refreshed && out.replayable() {
			// The token may have expired since it was read: one refresh,
			// one more try. The refresh must not die with this request.
			refreshed = true
			discard(resp)
			cancel()
			tok, err := rt.conn.Refresh(context.WithoutCancel(ctx), p, out.bearer)
			if err == nil && validHeaderValue(tok) {
				out.bearer = tok
				attempt--
				continue
			}
			return nil, nil, &upstreamError{status: http.StatusUnauthorized, code: "connection_expired",
				desc: fmt.Sprintf("the %s connection could not be refreshed", rt.connName),
				msg:  "Please reconnect your account to continue.", err: err}
		}

		ra, hasRA := httpapi.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && hasRA && ra > RetryAfterMax {
			orig := readErrorBody(resp)
			cancel()
			secs := int64((ra + time.Second - 1) / time.Second)
			return nil, nil, &upstreamError{status: http.StatusServiceUnavailable, code: "upstream_unavailable",
				desc:       fmt.Sprintf("upstream %s asks to retry after %d s", up.name, secs),
				original:   orig,
				retryAfter: strconv.FormatInt(secs, 10)}
		}
		if retryableStatus(resp.StatusCode) && idempotent(out.method) && out.replayable() && attempt < up.retries {
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > ra {
				discard(resp)
				cancel()
				if s.wait(ctx, up, attempt, ra, "status "+strconv.Itoa(resp.StatusCode), nil) {
					continue
				}
				return nil, nil, &upstreamError{status: 499, code: "client_closed", desc: "the caller went away", err: ctx.Err()}
			}
		}
		if resp.StatusCode >= 400 || (resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified) {
			defer cancel()
			return nil, nil, upstreamStatusError(up.name, resp, ra, hasRA)
		}
		return resp, cancel, nil
	}
}

// wait sleeps before the next attempt: the backoff for attempt, or the
// upstream's Retry-After when longer. It reports false when the request's
// context ends first (or would end before the wait does).
func (s *Set) wait(ctx context.Context, up *upstream, attempt int, retryAfter time.Duration, why string, err error) bool {
	d := BackoffBase << attempt
	if d > BackoffMax || d <= 0 {
		d = BackoffMax
	}
	d = s.deps.JitterFunc(d)
	if retryAfter > d {
		d = retryAfter
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	attrs := []any{"upstream", up.name, "attempt", attempt + 1, "reason", why, "wait", d.String(),
		"request_id", httpapi.RequestIDFrom(ctx)}
	if err != nil {
		attrs = append(attrs, "error", safeErr(err))
	}
	s.deps.Logger.DebugContext(ctx, "upstream retry", attrs...)
	return s.deps.SleepFunc(ctx, d) == nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// dialFailed reports whether err is a failure to connect (refused,
// unreachable, DNS): nothing of the request can have been written.
func dialFailed(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// discard drains a little of a body (so the connection can be reused)
// and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// writeResponse streams a successful upstream answer through unchanged,
// with one pooled buffer.
func (s *Set) writeResponse(w http.ResponseWriter, r *http.Request, rt *route, resp *http.Response) {
	copyResponseHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if _, err := io.CopyBuffer(writerOnly{w}, resp.Body, *bp); err != nil && r.Context().Err() == nil {
		s.deps.Logger.WarnContext(r.Context(), "upstream body cut short", "upstream", rt.up.name,
			"error", safeErr(err), "request_id", httpapi.RequestIDFrom(r.Context()))
	}
}

// writerOnly hides ReadFrom so CopyBuffer uses the pooled buffer rather
// than a ResponseWriter's own copy path (which allocates per call).
type writerOnly struct{ io.Writer }
