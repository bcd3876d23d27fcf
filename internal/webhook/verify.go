package webhook

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/stripesig"
)

// maxMACSize is the largest MAC any scheme produces (SHA-512).
const maxMACSize = 64

// scratch is the per-request working memory, pooled so the hot path does
// not allocate: the body, the signed prefix, MACs and decoded signatures.
type scratch struct {
	body   []byte
	prefix []byte
	mac    [maxMACSize]byte
	sig    [maxMACSize + 3]byte // base64 DecodedLen rounds up by padding
	tmp    []byte
	resp   []byte
}

// bytes copies s into a reused buffer: decoders take []byte, and a plain
// conversion would allocate on every request.
func (sc *scratch) bytes(s string) []byte {
	sc.tmp = append(sc.tmp[:0], s...)
	return sc.tmp
}

// verifier checks a delivery's signature. It returns outOK, or the
// refusal outcome and a static description for the envelope.
type verifier interface {
	verify(h http.Header, body []byte, now time.Time, sc *scratch) (outcome, string)
}

// newVerifier builds the verifier for one endpoint's verify block.
func newVerifier(v config.Verify, allowIPs int) (verifier, error) {
	tol := v.Tolerance.D()
	if tol <= 0 {
		tol = config.ToleranceDefault
	}
	scheme := strings.ToLower(v.Scheme)
	if scheme != config.SchemeNone && len(v.Secrets) == 0 {
		return nil, fmt.Errorf("verify.secrets: scheme %q needs at least one secret", v.Scheme)
	}
	for i, s := range v.Secrets {
		if s == "" {
			return nil, fmt.Errorf("verify.secrets[%d] is empty", i)
		}
	}
	switch scheme {
	case config.SchemeStandard:
		sv := &standardVerifier{tolerance: tol}
		for i, s := range v.Secrets {
			sg, err := NewStandardSigner(s)
			if err != nil {
				return nil, fmt.Errorf("verify.secrets[%d]: %w", i, err)
			}
			sv.signers = append(sv.signers, sg)
		}
		return sv, nil
	case config.SchemeStripe:
		sv := &stripeVerifier{tolerance: tol}
		for _, s := range v.Secrets {
			sv.secrets = append(sv.secrets, []byte(s))
		}
		return sv, nil
	case config.SchemeGitHub:
		return newHMACVerifier("X-Hub-Signature-256", "sha256=", "hex", "sha256", v.Secrets)
	case config.SchemeShopify:
		return newHMACVerifier("X-Shopify-Hmac-Sha256", "", "base64", "sha256", v.Secrets)
	case config.SchemeHMAC:
		if v.Header == "" {
			return nil, fmt.Errorf("verify.header is required by the hmac scheme")
		}
		return newHMACVerifier(v.Header, v.Prefix, v.Encoding, v.Algorithm, v.Secrets)
	case config.SchemeNone:
		if allowIPs == 0 {
			return nil, fmt.Errorf("verify.scheme none needs allow_ips (an unsigned endpoint open to any address accepts anything)")
		}
		return noneVerifier{}, nil
	case "":
		return nil, fmt.Errorf("verify.scheme is required (standard, stripe, github, shopify, hmac or none)")
	default:
		return nil, fmt.Errorf("verify.scheme %q is unknown (want standard, stripe, github, shopify, hmac or none)", v.Scheme)
	}
}

// header returns the first value of an already canonical header name
// without the allocation http.Header.Get spends canonicalising.
func header(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// within reports whether the Unix timestamp ts is within tol of now, in
// whole seconds. ts is untrusted and may be any int64, so it is only ever
// compared, never subtracted: a difference could wrap around (a timestamp
// 2^63 ns away once passed as fresh).
func within(ts int64, now time.Time, tol time.Duration) bool {
	n, t := now.Unix(), int64(tol/time.Second)
	lo, hi := n-t, n+t
	if t > 0 && n < math.MinInt64+t {
		lo = math.MinInt64
	}
	if t > 0 && n > math.MaxInt64-t {
		hi = math.MaxInt64
	}
	return ts >= lo && ts <= hi
}

type noneVerifier struct{}

func (noneVerifier) verify(http.Header, []byte, time.Time, *scratch) (outcome, string) {
	return outOK, ""
}

// standardVerifier implements Standard Webhooks (standardwebhooks.com).
type standardVerifier struct {
	signers   []*StandardSigner
	tolerance time.Duration
}

var (
	hdrWebhookID        = textproto.CanonicalMIMEHeaderKey("webhook-id")
	hdrWebhookTimestamp = textproto.CanonicalMIMEHeaderKey("webhook-timestamp")
	hdrWebhookSignature = textproto.CanonicalMIMEHeaderKey("webhook-signature")
	hdrStripeSignature  = textproto.CanonicalMIMEHeaderKey("Stripe-Signature")
)

func (v *standardVerifier) verify(h http.Header, body []byte, now time.Time, sc *scratch) (outcome, string) {
	id, tsRaw, sigs := header(h, hdrWebhookID), header(h, hdrWebhookTimestamp), header(h, hdrWebhookSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return outMissing, "webhook-id, webhook-timestamp and webhook-signature headers are required"
	}
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		// A number beyond int64 is beyond any tolerance.
		return outStale, "webhook-timestamp is outside the tolerance"
	}
	if err != nil {
		return outInvalid, "webhook-timestamp is not a Unix timestamp"
	}
	if !within(ts, now, v.tolerance) {
		return outStale, "webhook-timestamp is outside the tolerance"
	}
	// Signed content is id.timestamp.body with the timestamp as sent.
	p := append(sc.prefix[:0], id...)
	p = append(p, '.')
	p = append(p, tsRaw...)
	p = append(p, '.')
	sc.prefix = p
	for _, s := range v.signers {
		mac := s.appendMAC(sc.mac[:0], p, body)
		for rest := sigs; rest != ""; {
			var tok string
			if i := strings.IndexByte(rest, ' '); i >= 0 {
				tok, rest = rest[:i], rest[i+1:]
			} else {
				tok, rest = rest, ""
			}
			sig, ok := strings.CutPrefix(tok, "v1,")
			if !ok { // other versions (v1a, …) are ignored
				continue
			}
			if base64.StdEncoding.DecodedLen(len(sig)) > len(sc.sig) {
				continue
			}
			n, err := base64.StdEncoding.Decode(sc.sig[:], sc.bytes(sig))
			if err != nil {
				continue
			}
			if hmac.Equal(sc.sig[:n], mac) {
				return outOK, ""
			}
		}
	}
	return outInvalid, "no webhook-signature matches"
}

// stripeVerifier implements Stripe's webhook signatures (package
// stripesig, shared with the stripe_app authenticator) over the raw body.
// Stripe uses the whole secret string ("whsec_…") as the key.
type stripeVerifier struct {
	secrets   [][]byte
	tolerance time.Duration
}

func (v *stripeVerifier) verify(h http.Header, body []byte, now time.Time, _ *scratch) (outcome, string) {
	hv := header(h, hdrStripeSignature)
	if hv == "" {
		return outMissing, "Stripe-Signature header is required"
	}
	switch err := stripesig.Verify(hv, body, v.secrets, now, v.tolerance); {
	case err == nil:
		return outOK, ""
	case errors.Is(err, stripesig.ErrTooOld), errors.Is(err, stripesig.ErrInFuture):
		return outStale, "Stripe-Signature timestamp is outside the tolerance"
	case errors.Is(err, stripesig.ErrMismatch):
		return outInvalid, "no Stripe-Signature v1 matches"
	default:
		return outInvalid, err.Error()
	}
}

// hmacVerifier checks one header carrying an encoded HMAC of the raw body;
// github and shopify are fixed instances of it.
type hmacVerifier struct {
	header   string // canonical
	prefix   string
	base64   bool
	macs     []*keyedMAC
	size     int
	missing  string
	mismatch string
}

func newHMACVerifier(hdr, prefix, encoding, algorithm string, secrets []string) (*hmacVerifier, error) {
	newHash, err := hashFor(algorithm)
	if err != nil {
		return nil, fmt.Errorf("verify.algorithm: %w", err)
	}
	v := &hmacVerifier{header: textproto.CanonicalMIMEHeaderKey(hdr), prefix: prefix}
	switch strings.ToLower(encoding) {
	case "", "hex":
	case "base64":
		v.base64 = true
	default:
		return nil, fmt.Errorf("verify.encoding %q is unknown (want hex or base64)", encoding)
	}
	for _, s := range secrets {
		m := newKeyedMAC(newHash, []byte(s))
		v.macs = append(v.macs, m)
		v.size = m.size
	}
	v.missing = hdr + " header is required"
	v.mismatch = hdr + " does not match the body"
	return v, nil
}

func (v *hmacVerifier) verify(h http.Header, body []byte, _ time.Time, sc *scratch) (outcome, string) {
	hv := header(h, v.header)
	if hv == "" {
		return outMissing, v.missing
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(hv), v.prefix)
	if !ok {
		return outInvalid, v.mismatch
	}
	var n int
	var err error
	if v.base64 {
		if base64.StdEncoding.DecodedLen(len(sig)) > len(sc.sig) {
			return outInvalid, v.mismatch
		}
		n, err = base64.StdEncoding.Decode(sc.sig[:], sc.bytes(sig))
	} else {
		if hex.DecodedLen(len(sig)) != v.size {
			return outInvalid, v.mismatch
		}
		n, err = hex.Decode(sc.sig[:], sc.bytes(sig))
	}
	if err != nil || n != v.size {
		return outInvalid, v.mismatch
	}
	for _, m := range v.macs {
		if hmac.Equal(sc.sig[:n], m.sum(sc.mac[:0], body)) {
			return outOK, ""
		}
	}
	return outInvalid, v.mismatch
}
