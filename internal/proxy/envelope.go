package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/backlothq/backlot/internal/httpapi"
)

// upstreamError is a failure of the proxied call, answered in the error
// envelope. original is the upstream's error body as it will appear in
// original_error: its own bytes when they are JSON, else a JSON string.
type upstreamError struct {
	status     int
	code       string
	desc       string
	msg        string
	original   []byte
	retryAfter string
	err        error // logged for server errors, never sent
}

// upstreamStatusError turns an upstream answer of status >= 300 into the
// envelope: a 4xx keeps its status (the caller's request was refused:
// not found, invalid parameter, token revoked); a 5xx, and a redirect
// (never followed: it could send the credential elsewhere), become 502,
// since backlot is the gateway that failed.
func upstreamStatusError(name string, resp *http.Response, ra time.Duration, hasRA bool) *upstreamError {
	orig := readErrorBody(resp)
	e := &upstreamError{status: resp.StatusCode, code: "upstream_error", original: orig,
		desc: fmt.Sprintf("upstream %s answered %d", name, resp.StatusCode)}
	switch {
	case resp.StatusCode < 400:
		e.status, e.code = http.StatusBadGateway, "upstream_redirect"
		e.desc = fmt.Sprintf("upstream %s answered %d (a redirect, which backlot does not follow)", name, resp.StatusCode)
	case resp.StatusCode >= 500:
		e.status = http.StatusBadGateway
	default:
		// The upstream's own explanation of a refusal is what the seed
		// systems show their users ("Cannot refund checkout after 60 days").
		e.msg = messageOf(orig)
		if e.msg == "" {
			e.msg = "A service we depend on refused the request."
		}
	}
	if hasRA && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		e.retryAfter = strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10)
	}
	return e
}

// readErrorBody reads up to ErrorBodyMax of an error body and closes it.
// A complete JSON body is kept byte for byte (surrounding whitespace
// aside); anything else (HTML, text,
// a body cut at the limit) becomes a JSON string.
func readErrorBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, ErrorBodyMax+1))
	cut := len(data) > ErrorBodyMax
	if cut {
		data = data[:ErrorBodyMax]
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil
	}
	if !cut && json.Valid(trimmed) {
		// The JSON value byte for byte; whitespace around it is not part
		// of the value.
		return trimmed
	}
	s := string(data)
	if !utf8.ValidString(s) {
		s = "base64:" + base64.StdEncoding.EncodeToString(data)
	}
	b, _ := json.Marshal(s)
	return b
}

// messageOf picks a message from an upstream JSON error body:
// error_message, error_description or message, when a short string.
func messageOf(orig []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(orig, &m) != nil {
		return ""
	}
	for _, k := range []string{"error_message", "error_description", "message"} {
		var s string
		if json.Unmarshal(m[k], &s) == nil && s != "" && len(s) <= 300 {
			return s
		}
	}
	return ""
}

// writeError answers e as the envelope (httpapi.WriteError, which carries
// the upstream's body verbatim as original_error), logging 5xx answers
// with a cause from which credentials are removed.
func (s *Set) writeError(w http.ResponseWriter, r *http.Request, e *upstreamError) {
	ctx := r.Context()
	if e.status >= 500 {
		attrs := []any{"error", e.code, "description", e.desc, "request_id", httpapi.RequestIDFrom(ctx)}
		if e.err != nil {
			attrs = append(attrs, "cause", safeErr(e.err))
		}
		s.deps.Logger.WarnContext(ctx, "proxy failure", attrs...)
	}
	he := &httpapi.Error{Status: e.status, Code: e.code, Description: e.desc, Message: e.msg, Original: e.original}
	if e.retryAfter != "" {
		he.Header = http.Header{"Retry-After": {e.retryAfter}}
	}
	httpapi.WriteError(w, r, he)
}
