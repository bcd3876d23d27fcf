package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// keyedMAC hands out HMAC states for one key. hmac.New costs several
// allocations; a pooled state only needs Reset, which returns it to the
// keyed initial state, so the hot path allocates nothing for the MAC.
type keyedMAC struct {
	pool sync.Pool
	size int
}

func newKeyedMAC(newHash func() hash.Hash, key []byte) *keyedMAC {
	k := append([]byte(nil), key...)
	m := &keyedMAC{size: newHash().Size()}
	m.pool.New = func() any { return hmac.New(newHash, k) }
	return m
}

func (m *keyedMAC) get() hash.Hash {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	return h
}

func (m *keyedMAC) put(h hash.Hash) { m.pool.Put(h) }

// sum appends HMAC(key, parts...) to dst.
func (m *keyedMAC) sum(dst []byte, parts ...[]byte) []byte {
	h := m.get()
	for _, p := range parts {
		h.Write(p)
	}
	dst = h.Sum(dst)
	m.put(h)
	return dst
}

// StandardSecretPrefix starts a Standard Webhooks secret; the rest is the
// base64 of the key.
const StandardSecretPrefix = "whsec_"

// ParseStandardSecret decodes a Standard Webhooks secret ("whsec_<base64>";
// the prefix is optional, as in the reference libraries) into the HMAC key.
func ParseStandardSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), StandardSecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("standard webhooks secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Some senders publish unpadded secrets.
		if k2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return k2, nil
		}
		// Never echo the secret itself.
		return nil, fmt.Errorf("standard webhooks secret: the part after %q is not base64", StandardSecretPrefix)
	}
	return key, nil
}

// StandardSigner computes Standard Webhooks signatures: base64 of
// HMAC-SHA256(key, id + "." + timestamp + "." + body). The same code signs
// forwarded jobs and verifies the standard scheme, so the two cannot drift.
type StandardSigner struct {
	mac *keyedMAC
}

// NewStandardSigner builds a signer from a "whsec_<base64>" secret.
func NewStandardSigner(secret string) (*StandardSigner, error) {
	key, err := ParseStandardSecret(secret)
	if err != nil {
		return nil, err
	}
	return &StandardSigner{mac: newKeyedMAC(sha256.New, key)}, nil
}

// standardPrefix appends "id.timestamp." to dst: the signed content
// before the body.
func standardPrefix(dst []byte, id string, timestamp int64) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, timestamp, 10)
	return append(dst, '.')
}

// appendMAC appends the raw 32-byte MAC of prefix+body to dst, where
// prefix is "id.timestamp." (built by the caller in a reused buffer).
func (s *StandardSigner) appendMAC(dst, prefix, body []byte) []byte {
	return s.mac.sum(dst, prefix, body)
}

// Sign returns the webhook-signature header value "v1,<base64>" for a
// message id, a Unix timestamp and a body.
func (s *StandardSigner) Sign(id string, timestamp int64, body []byte) string {
	prefix := standardPrefix(nil, id, timestamp)
	var mac [sha256.Size]byte
	m := s.appendMAC(mac[:0], prefix, body)
	return "v1," + base64.StdEncoding.EncodeToString(m)
}

// hashFor names a hash for the hmac scheme.
func hashFor(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "", "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	default:
		return nil, fmt.Errorf("unknown algorithm %q (want sha256 or sha512)", name)
	}
}
