// Package httpapi holds the conventions every backlot endpoint shares: the
// error type and its JSON envelope (SPEC section 6), the per-request state
// (request id, route, principal subject) carried in the context, strict
// JSON decoding and JSON responses.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an error with an HTTP status and a stable machine code. Anything
// that is not an *Error is answered as 500 internal_error, with its detail
// logged and not sent.
type Error struct {
	Status int    // HTTP status, sent as error_code
	Code   string // stable machine code, sent as error
	// Description is for developers (error_description).
	Description string
	// Message is safe to show to end users (error_message). Defaults by status.
	Message string
	// Original is an upstream's error body, passed through verbatim.
	Original json.RawMessage
	// Header is added to the response (e.g. WWW-Authenticate, Retry-After).
	Header http.Header
	// Err is the cause, logged but never sent.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error by status and code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Code == e.Code
}

// E builds an *Error.
func E(status int, code, description string) *Error {
	return &Error{Status: status, Code: code, Description: description}
}

// Errorf builds an *Error with a formatted description.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// Common errors.
var (
	ErrNotFound         = E(http.StatusNotFound, "not_found", "no such endpoint")
	ErrMethodNotAllowed = E(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	ErrTooLarge         = E(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the size limit")
	ErrUnsupportedMedia = E(http.StatusUnsupportedMediaType, "unsupported_media_type", "unsupported Content-Type")
	ErrInternal         = E(http.StatusInternalServerError, "internal_error", "internal error")
)

// Envelope is the JSON body of every error response.
type Envelope struct {
	ErrorCode        int    `json:"error_code"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	ErrorMessage     string `json:"error_message"`
	RequestID        string `json:"request_id"`
	// OriginalError is filled by clients that decode an envelope;
	// WriteError writes it verbatim after the other fields.
	OriginalError json.RawMessage `json:"original_error,omitempty"`
}

// defaultMessages are safe end-user messages by status.
var defaultMessages = map[int]string{
	http.StatusBadRequest:            "The request was not valid.",
	http.StatusUnauthorized:          "Please sign in to continue.",
	http.StatusForbidden:             "You do not have access to this.",
	http.StatusNotFound:              "Not found.",
	http.StatusMethodNotAllowed:      "This action is not allowed here.",
	http.StatusConflict:              "This conflicts with the current state.",
	http.StatusRequestEntityTooLarge: "The request is too large.",
	http.StatusUnsupportedMediaType:  "The request format is not supported.",
	http.StatusTooManyRequests:       "Too many requests. Please try again shortly.",
	http.StatusBadGateway:            "A service we depend on failed. Please try again.",
	http.StatusServiceUnavailable:    "The service is unavailable. Please try again shortly.",
	http.StatusGatewayTimeout:        "A service we depend on timed out. Please try again.",
}

// AsError turns any error into an *Error: *Error as is (also when
// wrapped), *http.MaxBytesError as 413, anything else as 500.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &Error{Status: ErrTooLarge.Status, Code: ErrTooLarge.Code,
			Description: fmt.Sprintf("request body exceeds %d bytes", mb.Limit), Err: err}
	}
	return &Error{Status: ErrInternal.Status, Code: ErrInternal.Code, Description: ErrInternal.Description, Err: err}
}

// WriteError answers err as the error envelope. The machine code, and for
// server errors the cause, go into the request state so the request's log
// line carries them; the client sees only the safe fields.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := AsError(err)
	st := StateFrom(r.Context())
	if st != nil {
		st.ErrCode = e.Code
		if e.Status >= 500 {
			st.ErrDetail = err.Error()
		}
	}
	msg := e.Message
	if msg == "" {
		msg = defaultMessages[e.Status]
		if msg == "" {
			msg = http.StatusText(e.Status)
		}
	}
	h := w.Header()
	for k, vs := range e.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	env := Envelope{
		ErrorCode:        e.Status,
		Error:            e.Code,
		ErrorDescription: e.Description,
		ErrorMessage:     msg,
		RequestID:        st.RequestID(),
	}
	if len(e.Original) == 0 || !json.Valid(e.Original) {
		WriteJSON(w, e.Status, env)
		return
	}
	// The upstream's error body goes out byte for byte: encoding/json
	// would compact a RawMessage and escape <, > and &.
	head, err := json.Marshal(env)
	if err != nil {
		WriteJSON(w, e.Status, env) // cannot happen: strings and an int
		return
	}
	body := make([]byte, 0, len(head)+len(e.Original)+21)
	body = append(body, head[:len(head)-1]...)
	body = append(body, `,"original_error":`...)
	body = append(body, bytes.TrimSpace(e.Original)...)
	WriteRawJSON(w, e.Status, append(body, '}'))
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error_code":500,"error":"internal_error","error_message":"Internal Server Error"}`)
	}
	WriteRawJSON(w, status, b)
}

// WriteRawJSON writes b, one JSON value already encoded, with the given
// status, as WriteJSON writes its value (a newline is added).
func WriteRawJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
