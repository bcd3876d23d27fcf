package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strings"
)

// State is what the middleware chain learns about a request as it goes:
// created once by the outermost middleware and filled in by later layers,
// so the request log line and metrics can read it after the handler ran.
type State struct {
	ID      string // request id
	Route   string // matched mux pattern, "" when none matched
	Subject string // authenticated principal's subject, if any
	Auth    string // authenticator that accepted the caller, if any
	ErrCode string // machine code of the error answered, if any
	// ErrDetail is the cause of a server error, for the log line only.
	ErrDetail string
	// ClientIP is the client address after trusted-proxy resolution, set
	// once by the server middleware; read it with ClientIP(r).
	ClientIP netip.Addr
}

// RequestID is nil-safe.
func (s *State) RequestID() string {
	if s == nil {
		return ""
	}
	return s.ID
}

type stateKey struct{}

// WithState returns ctx carrying s.
func WithState(ctx context.Context, s *State) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// StateFrom returns the request state, or nil outside the middleware chain.
func StateFrom(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}

// RequestIDFrom returns the request id in ctx, or "".
func RequestIDFrom(ctx context.Context) string { return StateFrom(ctx).RequestID() }

// ValidRequestID reports whether an incoming X-Request-Id is sane enough to
// honour: 1 to 128 characters of [A-Za-z0-9._:-].
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// NewRequestID returns 16 random bytes as 32 hex characters.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	const hex = "0123456789abcdef"
	var out [32]byte
	for i, v := range b {
		out[i*2] = hex[v>>4]
		out[i*2+1] = hex[v&0x0f]
	}
	return string(out[:])
}

// DecodeJSON reads a JSON object body into v strictly: Content-Type must be
// JSON, unknown fields and trailing data are rejected with 400, an
// oversized body with 413.
func DecodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return ErrUnsupportedMedia
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		var he *Error
		if errors.As(err, &mb) || errors.As(err, &he) {
			// The body reader refused (size limit, in-flight budget):
			// its answer, not a JSON defect.
			return AsError(err)
		}
		if errors.Is(err, io.EOF) {
			return E(http.StatusBadRequest, "invalid_json", "request body is empty")
		}
		return Errorf(http.StatusBadRequest, "invalid_json", "invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return E(http.StatusBadRequest, "invalid_json", "unexpected data after the JSON value")
	}
	return nil
}

// MethodNotAllowed and NotFound are handlers answering with the envelope.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, Errorf(http.StatusNotFound, "not_found", "no endpoint %s %s", r.Method, r.URL.Path))
}

// BadRequest is a shorthand for a 400 with a code.
func BadRequest(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Description: fmt.Sprintf(format, args...)}
}
