package auth

import "net/http"

// Failure is the error an authenticator returns for a credential that is
// present but does not verify (forged, expired, wrong audience, …).
type Failure struct {
	// Reason is sent as error_description: why, never the credential itself.
	Reason string
	// Err is the cause, logged but never sent.
	Err error
	// Status overrides the answer's status (403 for a CSRF failure);
	// 0 means the authenticator's invalid_status (default 401).
	Status int
	// Code overrides the machine code; "" means invalid_token.
	Code string
	// Foreign marks a credential that is probably meant for another
	// authenticator (an RS256 token at an hs256 authenticator, a JWT at an
	// api_key one). Such a reason is reported only when no authenticator
	// that recognised the credential had one.
	Foreign bool
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return f.Reason + ": " + f.Err.Error()
	}
	return f.Reason
}

func (f *Failure) Unwrap() error { return f.Err }

// Invalid returns a Failure for an invalid credential.
func Invalid(reason string, err error) *Failure { return &Failure{Reason: reason, Err: err} }

// Forbidden returns a Failure answered with 403 and the given code,
// whatever the authenticator's invalid_status (a missing CSRF token).
func Forbidden(code, reason string) *Failure {
	return &Failure{Reason: reason, Status: http.StatusForbidden, Code: code}
}

// Rule is what a route demands of an authenticated caller.
type Rule struct {
	// Scopes must all be held by the principal.
	Scopes []string
	// Tenant, when set, must equal the principal's tenant; "*" means any
	// non-empty tenant.
	Tenant string
}
