package backlot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
)

// ErrNotFound is returned (wrapped) when a row a call names does not
// exist: a QueryRow with no row inside WriteTx, a job id that is gone.
var ErrNotFound = store.ErrNotFound

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
