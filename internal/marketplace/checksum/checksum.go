// Package checksum seals values written into a marketplace user's
// privateData so that a later read can tell whether the user changed them.
//
// Users can write their own privateData through the Marketplace API, so a
// value such as an ID-verification result is only trustworthy when it
// carries a checksum made with a key the user never sees. The checksum is
// an HMAC-SHA256 over the user id and the RFC 8785 canonical JSON of the
// value: canonical so that re-serialising the same value (another key
// order, 4.50 written as 4.5, "\u00e9" written as "é") does not change it,
// and bound to the user id so that one user's sealed value copied into
// another user's profile does not verify.
package checksum

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gowebpki/jcs"
)

// Suffix is appended to a value's name to name its checksum field:
// "idVerification" is sealed by "idVerificationChecksum".
const Suffix = "Checksum"

// Status is the outcome of Verify.
type Status int

const (
	// Valid means the value is present and its checksum matches.
	Valid Status = iota
	// Missing means there is no value under the name (whether or not a
	// stray checksum is there): nothing was sealed, or the user removed it.
	Missing
	// Tampered means a value is present but its checksum is absent,
	// malformed, or does not match the value and user id: someone other
	// than the key holder wrote it.
	Tampered
)

// String returns "valid", "missing" or "tampered".
func (s Status) String() string {
	switch s {
	case Valid:
		return "valid"
	case Missing:
		return "missing"
	case Tampered:
		return "tampered"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Canonical returns the RFC 8785 canonical JSON of value. A
// json.RawMessage or []byte is taken as JSON text; anything else is first
// encoded with encoding/json. Duplicate object keys are refused, as RFC
// 8785 (which builds on I-JSON) requires.
func Canonical(value any) ([]byte, error) {
	var raw []byte
	switch v := value.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(value)
		if err != nil {
			return nil, fmt.Errorf("encode value as JSON: %w", err)
		}
		raw = b
	}
	if raw == nil {
		return nil, errors.New("canonicalise JSON: no value")
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalise JSON: %w", err)
	}
	return out, nil
}

// Sum returns the checksum of value for userID under key: the lower-case
// hex HMAC-SHA256 of the user id, a zero byte, and the canonical JSON of
// value. The zero byte keeps the boundary unambiguous (without it, user
// "u1" with value 2 and user "u" with value 12 would collide); user ids
// therefore may not contain one.
func Sum(key []byte, userID string, value any) (string, error) {
	if len(key) == 0 {
		return "", errors.New("checksum: empty key")
	}
	if userID == "" || strings.IndexByte(userID, 0) >= 0 {
		return "", errors.New("checksum: user id is empty or contains a zero byte")
	}
	canon, err := Canonical(value)
	if err != nil {
		return "", fmt.Errorf("checksum for user %s: %w", userID, err)
	}
	return hex.EncodeToString(mac(key, userID, canon)), nil
}

func mac(key []byte, userID string, canon []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write(canon)
	return m.Sum(nil)
}

// Seal returns the two privateData fields that store value under name:
// {name: value, name+"Checksum": sum}. The value is stored as its
// canonical JSON, so what is written is exactly what was summed. Merge the
// result into a privateData update.
func Seal(key []byte, userID, name string, value any) (map[string]any, error) {
	if name == "" {
		return nil, errors.New("checksum: empty field name")
	}
	canon, err := Canonical(value)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	sum, err := Sum(key, userID, json.RawMessage(canon))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return map[string]any{name: json.RawMessage(canon), name + Suffix: sum}, nil
}

// Verify reads the value sealed under name from a user's privateData and
// checks its checksum. It returns the value (as stored) only when the
// status is Valid, so an unverified value cannot be used by mistake.
func Verify(key []byte, userID, name string, privateData map[string]json.RawMessage) (json.RawMessage, Status) {
	value, ok := privateData[name]
	if !ok {
		return nil, Missing
	}
	rawSum, ok := privateData[name+Suffix]
	if !ok {
		return nil, Tampered
	}
	var sum string
	if err := json.Unmarshal(rawSum, &sum); err != nil {
		return nil, Tampered
	}
	got, err := hex.DecodeString(sum)
	if err != nil || len(got) != sha256.Size {
		return nil, Tampered
	}
	if len(key) == 0 || userID == "" || strings.IndexByte(userID, 0) >= 0 {
		return nil, Tampered
	}
	canon, err := Canonical(value)
	if err != nil {
		return nil, Tampered
	}
	if !hmac.Equal(got, mac(key, userID, canon)) {
		return nil, Tampered
	}
	return value, Valid
}
