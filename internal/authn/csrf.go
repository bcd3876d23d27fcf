package authn

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/internal/cors"
)

// CSRFHeader carries the CSRF token of a cookie session on unsafe requests;
// CSRFField is the alternative JSON body field.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
)

// maxCSRFScan bounds how much of a JSON body is read to find csrf_token
// when the header is absent (the server's body limit applies first).
const maxCSRFScan = 1 << 20

// csrfLabel separates the CSRF derivation from any other use of the id.
const csrfLabel = "backlot csrf token v1"

// csrfToken derives a session's CSRF token from its id: HMAC-SHA256 over
// the 32 secret bytes of the cookie, keyed with key (derived from the
// keyring, Deps.CSRFKey) when there is one. Only someone who holds the
// cookie value (the server, never page scripts: the cookie is HttpOnly)
// and, with a keyring, the server's secret can compute it; it needs no
// storage, and every instance sharing the store and the keys derives the
// same one, behind any proxy.
func csrfToken(key, id []byte) string {
	var m hash.Hash
	if len(key) > 0 {
		m = hmac.New(sha256.New, key)
		m.Write([]byte(csrfLabel))
		m.Write([]byte{0})
		m.Write(id)
	} else {
		m = hmac.New(sha256.New, id)
		m.Write([]byte(csrfLabel))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// safeMethod reports whether m cannot change state, so needs no CSRF check.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// checkOrigin applies Go's cross-origin protection (Sec-Fetch-Site, then
// Origin against Host) to an unsafe request. A request the CORS middleware
// found to come from an allowed, credentialed origin is let through: the
// operator trusts that page with the session already, and it still has to
// present the CSRF token.
func checkOrigin(cop *http.CrossOriginProtection, r *http.Request) *auth.Failure {
	if cors.CredentialedOrigin(r) {
		return nil
	}
	if err := cop.Check(r); err != nil {
		return &auth.Failure{Reason: "cross-origin request refused", Err: err,
			Status: http.StatusForbidden, Code: "csrf_failed"}
	}
	return nil
}

// checkCSRF demands the session's CSRF token in the X-CSRF-Token header
// or, failing that, in the csrf_token field of a JSON object body. A body
// token is removed from the body the handler then reads, so strict
// decoders downstream do not see (or forward upstream) a field that is
// not theirs. It returns a *Failure (403 csrf_failed) when the token is
// missing or wrong, and a plain error when the body cannot be read.
func checkCSRF(r *http.Request, key, id []byte) error {
	want := csrfToken(key, id)
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		var err error
		got, err = csrfFromBody(r)
		if err != nil {
			return err
		}
	}
	if got == "" {
		return auth.Forbidden("csrf_failed", "missing CSRF token: send the "+CSRFHeader+" header (from GET /auth/csrf)")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return auth.Forbidden("csrf_failed", "CSRF token does not match the session")
	}
	return nil
}

// csrfFromBody reads csrf_token from a JSON object body and puts the body
// back (without that field). A body that is not a JSON object yields "".
func csrfFromBody(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return "", nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxCSRFScan+1))
	if err != nil {
		// A *http.MaxBytesError is answered 413 by the caller.
		r.Body = io.NopCloser(bytes.NewReader(buf))
		return "", err
	}
	rest := r.Body
	restore := func(b []byte) {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), rest), rest}
	}
	if len(buf) > maxCSRFScan {
		restore(buf)
		return "", nil
	}
	token, stripped, ok := stripField(buf, CSRFField)
	if !ok {
		restore(buf)
		return "", nil
	}
	restore(stripped)
	r.ContentLength = int64(len(stripped))
	r.Header.Del("Content-Length")
	r.GetBody = nil
	return token, nil
}

// stripField parses b as one JSON object and, if it has a string member
// named field, returns its value and the object without it (other members
// kept in order, byte for byte). ok is false when b is not such an object.
func stripField(b []byte, field string) (value string, out []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil, false
	}
	var (
		found   bool
		members [][]byte
	)
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return "", nil, false
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, false
		}
		if key == field {
			if err := json.Unmarshal(raw, &value); err != nil {
				return "", nil, false
			}
			found = true
			continue
		}
		k, _ := json.Marshal(key)
		members = append(members, append(append(k, ':'), raw...))
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "", nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", nil, false // trailing data: leave the body for the handler to refuse
	}
	if !found {
		return "", nil, false
	}
	out = append([]byte{'{'}, bytes.Join(members, []byte{','})...)
	return value, append(out, '}'), true
}
