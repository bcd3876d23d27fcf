package sharetribe

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinels an *APIError matches with errors.Is, by HTTP status.
var (
	ErrValidation   = errors.New("sharetribe: invalid request") // 400
	ErrUnauthorized = errors.New("sharetribe: unauthorized")    // 401
	ErrForbidden    = errors.New("sharetribe: forbidden")       // 403
	ErrNotFound     = errors.New("sharetribe: not found")       // 404
	ErrConflict     = errors.New("sharetribe: conflict")        // 409
	ErrRateLimited  = errors.New("sharetribe: rate limited")    // 429
	ErrServer       = errors.New("sharetribe: server error")    // 5xx
)

// ErrorDetail is one entry of Sharetribe's error body
// {"errors": [{"id", "status", "code", "title", "details"}]}.
type ErrorDetail struct {
	ID      string `json:"id"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Title   string `json:"title"`
	Details string `json:"details,omitempty"`
}

// APIError is a refusal from Sharetribe: the Marketplace or Integration
// API's error body, or the Authentication API's OAuth error.
type APIError struct {
	// Method and Path say which call failed (no query, no body).
	Method string
	Path   string
	// Status is the HTTP status.
	Status int
	// Errors is the API's error list (empty for Authentication API
	// errors, which set OAuthError instead).
	Errors []ErrorDetail
	// OAuthError and OAuthDescription are the Authentication API's
	// "error" and "error_description" (e.g. "invalid_grant").
	OAuthError       string
	OAuthDescription string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Body is the response body as received.
	Body []byte
}

// Code returns the first error's code ("not-found",
// "validation-invalid-params", …) or the OAuth error.
func (e *APIError) Code() string {
	if len(e.Errors) > 0 {
		return e.Errors[0].Code
	}
	return e.OAuthError
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("sharetribe: %s %s: %d", e.Method, e.Path, e.Status)
	switch {
	case len(e.Errors) > 0:
		s += " " + e.Errors[0].Code
		if e.Errors[0].Title != "" {
			s += ": " + e.Errors[0].Title
		}
		if e.Errors[0].Details != "" {
			s += " (" + e.Errors[0].Details + ")"
		}
	case e.OAuthError != "":
		s += " " + e.OAuthError
		if e.OAuthDescription != "" {
			s += ": " + e.OAuthDescription
		}
	default:
		s += " " + http.StatusText(e.Status)
	}
	return s
}

// Is matches the sentinel for e's status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrValidation:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500
	}
	return false
}
