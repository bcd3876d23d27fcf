// Package stripesig verifies Stripe-Signature headers, the scheme shared by
// Stripe webhooks and Stripe App requests: `t=<unix>,v1=<hex>[,v1=<hex>…]`,
// each v1 a hex HMAC-SHA256 over "<t>.<payload>". Any v1 may match any of
// several secrets (rotation); other schemes (v0) are ignored; the
// timestamp must lie within a tolerance both ways (stripe-node checks only
// when asked; backlot always does).
package stripesig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors, matched with errors.Is. Malformed headers wrap ErrMalformed.
var (
	ErrMalformed   = errors.New("malformed Stripe-Signature header")
	ErrNoSignature = errors.New("Stripe-Signature has no v1 signature")
	ErrTooOld      = errors.New("signature timestamp too old")
	ErrInFuture    = errors.New("signature timestamp in the future")
	ErrMismatch    = errors.New("no v1 signature matches")
)

// Header is a parsed Stripe-Signature header.
type Header struct {
	// T is the timestamp exactly as sent: it is what was signed.
	T         string
	Timestamp int64
	V1        [][sha256.Size]byte
}

// Parse parses a header value. An item without "=", a missing, repeated or
// non-numeric t, or a v1 that is not 64 hex digits (an empty one included)
// makes the header malformed.
func Parse(h string) (Header, error) {
	var out Header
	for rest := h; rest != ""; {
		item := rest
		if i := strings.IndexByte(rest, ','); i >= 0 {
			item, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return Header{}, ErrMalformed
		}
		switch k {
		case "t":
			if out.T != "" {
				return Header{}, fmt.Errorf("%w: repeated t", ErrMalformed)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return Header{}, fmt.Errorf("%w: bad timestamp", ErrMalformed)
			}
			out.T, out.Timestamp = v, n
		case "v1":
			var sig [sha256.Size]byte
			if len(v) != hex.EncodedLen(sha256.Size) {
				return Header{}, fmt.Errorf("%w: bad v1 signature", ErrMalformed)
			}
			if _, err := hex.Decode(sig[:], []byte(v)); err != nil {
				return Header{}, fmt.Errorf("%w: bad v1 signature", ErrMalformed)
			}
			out.V1 = append(out.V1, sig)
		}
	}
	if out.T == "" {
		return Header{}, fmt.Errorf("%w: no timestamp", ErrMalformed)
	}
	if len(out.V1) == 0 {
		return Header{}, ErrNoSignature
	}
	return out, nil
}

// Verify checks header h over payload against secrets at time now.
func Verify(h string, payload []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	hd, err := Parse(h)
	if err != nil {
		return err
	}
	// Compare whole seconds without subtracting the untrusted timestamp:
	// time.Unix overflows for timestamps near the int64 limits, and a
	// difference could wrap around. Parse keeps Timestamp positive.
	n, tol := now.Unix(), int64(tolerance/time.Second)
	if n-tol > hd.Timestamp {
		return ErrTooOld
	}
	if n <= math.MaxInt64-tol && hd.Timestamp > n+tol {
		return ErrInFuture
	}
	var mac [sha256.Size]byte
	for _, secret := range secrets {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(hd.T))
		m.Write([]byte{'.'})
		m.Write(payload)
		m.Sum(mac[:0])
		for i := range hd.V1 {
			if hmac.Equal(mac[:], hd.V1[i][:]) {
				return nil
			}
		}
	}
	return ErrMismatch
}

// Sign returns the header value a sender would send: t=<unix>,v1=<hex>.
func Sign(secret, payload []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(payload)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}
