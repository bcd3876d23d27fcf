package backlot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/backlothq/backlot/internal/connect"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/marketplace/refs"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
)

// ErrNotFound is returned (wrapped) when a row a call names does not
// exist: a QueryRow with no row inside WriteTx, a secret that was never
// put.
var ErrNotFound = errors.New("not found")

// public makes the errors of backlot's internal packages match the public
// sentinels a Go user knows (errors.Is), keeping the cause's text and
// chain. It is applied where an exported method returns.
func public(err error) error {
	if err == nil {
		return nil
	}
	var pub []error
	for _, m := range publicErrors {
		if errors.Is(err, m.internal) && !errors.Is(err, m.public) {
			pub = append(pub, m.public)
		}
	}
	if len(pub) == 0 {
		return err
	}
	return &publicError{cause: err, public: pub}
}

// publicErrors pairs internal sentinels with their public twins.
var publicErrors = []struct{ internal, public error }{
	{store.ErrNotFound, ErrNotFound},
	{secrets.ErrNotFound, ErrSecretNotFound},
	{connect.ErrNotConnected, ErrNotConnected},
	{connect.ErrExpired, ErrConnectionExpired},
	{connect.ErrUnavailable, ErrConnectionUnavailable},
	{refs.ErrMalformed, ErrRefMalformed},
	{refs.ErrInvalid, ErrRefInvalid},
	{refs.ErrWrongPurpose, ErrRefWrongPurpose},
	{refs.ErrUnknown, ErrRefUnknown},
	{refs.ErrExpired, ErrRefExpired},
	{refs.ErrUsed, ErrRefUsed},
	{refs.ErrRetiredKey, ErrRefRetiredKey},
	{refs.ErrTooLong, ErrRefTooLong},
}

// publicError is an internal error that also matches public sentinels.
type publicError struct {
	cause  error
	public []error
}

func (e *publicError) Error() string   { return e.cause.Error() }
func (e *publicError) Unwrap() []error { return append([]error{e.cause}, e.public...) }

// Error is an error a handler answers with: an HTTP status, a stable
// machine code and the messages of backlot's JSON error envelope
//
//	{"error_code": 404, "error": "order_not_found", "error_description": "…",
//	 "error_message": "…", "request_id": "…", "original_error": {…}}
//
// Write it with WriteError. Any other error is answered as 500
// internal_error: its text is logged, never sent.
type Error struct {
	// Status is the HTTP status, sent as error_code.
	Status int
	// Code is a stable machine code, sent as error ("order_not_found").
	Code string
	// Description is for developers (error_description).
	Description string
	// Message is safe to show to end users (error_message). Defaults to
	// a message for the status ("Not found.").
	Message string
	// Original is an upstream's error body, passed through verbatim as
	// original_error. It must be JSON.
	Original json.RawMessage
	// Header is added to the response (Retry-After, WWW-Authenticate).
	Header http.Header
	// Err is the cause: logged for 5xx answers, never sent.
	Err error
}

// NewError returns an *Error with a formatted description.
func NewError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return e.internal().Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error by status and code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Code == e.Code
}

func (e *Error) internal() *httpapi.Error {
	return &httpapi.Error{Status: e.Status, Code: e.Code, Description: e.Description, Message: e.Message,
		Original: e.Original, Header: e.Header, Err: e.Err}
}

// WriteError answers err with the JSON error envelope: an *Error (also
// wrapped) with its status and fields, a body over the size limit as 413,
// anything else as 500 internal_error with its text logged on the
// request's log line and not sent. The envelope carries the request id.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var me *MarketplaceError
	if !errors.As(err, &e) && errors.As(err, &me) {
		e = me.envelope()
	}
	if e != nil {
		httpapi.WriteError(w, r, e.internal())
		return
	}
	httpapi.WriteError(w, r, err)
}
