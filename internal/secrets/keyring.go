// Package secrets is backlot's keyring and encrypted secret store.
//
// The Keyring holds the keys configured under `keys`; the first one seals,
// every one of them opens. A ciphertext names the key it was sealed under,
// so opening picks that key directly and never tries keys in turn, and its
// associated data binds it to the row it protects (kind, scope and name),
// so a ciphertext copied into another row does not open.
//
// The Store keeps named secrets per Scope (a principal's tenant and
// subject, or a named system scope) in the store.Store, sealed. Rotate
// re-encrypts every row not under the current key, and CheckKeys refuses
// to start when rows are sealed under a key missing from the keyring.
package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/backlothq/backlot/config"
)

// Ciphertext layout: Version | len(key id) | key id | 24-byte nonce | sealed
// data (XChaCha20-Poly1305 output, the 16-byte tag last).
const (
	// Version is the first byte of every ciphertext this package makes.
	Version byte = 1
	// KeySize is the size of a key: 32 bytes.
	KeySize = chacha20poly1305.KeySize
	// NonceSize is the size of the random nonce in every ciphertext.
	NonceSize = chacha20poly1305.NonceSizeX
	// Overhead is how much longer than the plaintext a ciphertext is, not
	// counting the key id.
	Overhead = 2 + NonceSize + chacha20poly1305.Overhead
	// MaxKeyIDLen is the longest key id: its length is one byte.
	MaxKeyIDLen = 255
)

// ErrNoKeys is returned by Seal when the keyring is empty (no `keys` are
// configured).
var ErrNoKeys = errors.New("no keys configured: add one under keys (`backlot keys new` makes one)")

// ErrDecrypt is returned when a ciphertext is malformed, was tampered
// with, or belongs to another row (its associated data differs).
var ErrDecrypt = errors.New("ciphertext does not open")

// UnknownKeyError is returned when a ciphertext names a key the keyring
// does not hold.
type UnknownKeyError struct {
	KeyID string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("ciphertext is sealed under key %q, which is not in keys", e.KeyID)
}

// Keyring is the set of configured keys. It is immutable and safe for
// concurrent use. The zero of *Keyring (nil) is an empty keyring.
type Keyring struct {
	ids  []string          // in configuration order; ids[0] seals
	keys map[string][]byte // id -> 32-byte key
}

// NewKeyring builds a keyring from the configured keys, in order. Each
// secret is base64 (standard or URL alphabet, padded or not) of exactly 32
// bytes. An empty list gives an empty keyring: it opens nothing and Seal
// fails with ErrNoKeys, which is fine until something must be encrypted.
func NewKeyring(keys []config.Key) (*Keyring, error) {
	k := &Keyring{keys: make(map[string][]byte, len(keys))}
	for i, c := range keys {
		switch {
		case c.ID == "":
			return nil, fmt.Errorf("keys[%d]: empty id", i)
		case len(c.ID) > MaxKeyIDLen:
			return nil, fmt.Errorf("keys[%d]: id is %d bytes, at most %d", i, len(c.ID), MaxKeyIDLen)
		}
		if _, dup := k.keys[c.ID]; dup {
			return nil, fmt.Errorf("keys[%d]: duplicate id %q", i, c.ID)
		}
		b, ok := decodeKey(c.Secret)
		if !ok {
			// Never echo the secret, not even a wrong one.
			return nil, fmt.Errorf("keys[%d] (%s): secret is not base64 of %d bytes", i, c.ID, KeySize)
		}
		k.ids = append(k.ids, c.ID)
		k.keys[c.ID] = b
	}
	return k, nil
}

func decodeKey(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, true
		}
	}
	return nil, false
}

// NewKey returns a fresh key: base64 (standard, padded) of 32 random bytes,
// the form `keys` takes.
func NewKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("read random key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Current is the id of the key that seals: the first configured. Empty
// for an empty keyring.
func (k *Keyring) Current() string {
	if k == nil || len(k.ids) == 0 {
		return ""
	}
	return k.ids[0]
}

// IDs are the key ids in configuration order.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	return append([]string(nil), k.ids...)
}

// Has reports whether the keyring holds the key id.
func (k *Keyring) Has(id string) bool {
	if k == nil {
		return false
	}
	_, ok := k.keys[id]
	return ok
}

// Seal encrypts plaintext under the current key, bound to (kind, scope,
// name): Open succeeds only with the same three.
func (k *Keyring) Seal(kind, scope, name string, plaintext []byte) ([]byte, error) {
	id := k.Current()
	if id == "" {
		return nil, ErrNoKeys
	}
	out := make([]byte, 0, len(id)+Overhead+len(plaintext))
	out = append(out, Version, byte(len(id)))
	out = append(out, id...)
	nonceAt := len(out)
	out = out[:nonceAt+NonceSize]
	if _, err := io.ReadFull(rand.Reader, out[nonceAt:]); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	ad := associatedData(out[:nonceAt], kind, scope, name)
	return sealRaw(out, k.keys[id], out[nonceAt:], plaintext, ad)
}

// sealRaw appends XChaCha20-Poly1305(key, nonce, plaintext, ad) to dst.
func sealRaw(dst, key, nonce, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead.Seal(dst, nonce, plaintext, ad), nil
}

// openRaw is the inverse of sealRaw; sealed is ciphertext then tag.
func openRaw(key, nonce, sealed, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return aead.Open(nil, nonce, sealed, ad)
}

// Open decrypts a ciphertext from Seal with the key it names, given the
// same (kind, scope, name) it was sealed with. It fails with an
// *UnknownKeyError when that key is not in the keyring, and with an error
// matching ErrDecrypt when the ciphertext is malformed, tampered with or
// bound to another row.
func (k *Keyring) Open(kind, scope, name string, ciphertext []byte) ([]byte, error) {
	id, rest, err := parseHeader(ciphertext)
	if err != nil {
		return nil, err
	}
	if !k.Has(id) {
		return nil, &UnknownKeyError{KeyID: id}
	}
	if len(rest) < NonceSize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: too short", ErrDecrypt)
	}
	header := ciphertext[:len(ciphertext)-len(rest)]
	ad := associatedData(header, kind, scope, name)
	pt, err := openRaw(k.keys[id], rest[:NonceSize], rest[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: under key %q for %s %s %q", ErrDecrypt, id, kind, scope, name)
	}
	return pt, nil
}

// KeyID is the id of the key a ciphertext is sealed under, read from its
// header without decrypting.
func KeyID(ciphertext []byte) (string, error) {
	id, _, err := parseHeader(ciphertext)
	return id, err
}

// parseHeader splits a ciphertext into its key id and what follows the
// header (nonce and sealed data).
func parseHeader(ct []byte) (id string, rest []byte, err error) {
	if len(ct) < 2 {
		return "", nil, fmt.Errorf("%w: too short", ErrDecrypt)
	}
	if ct[0] != Version {
		return "", nil, fmt.Errorf("%w: version %d, want %d", ErrDecrypt, ct[0], Version)
	}
	n := int(ct[1])
	if n == 0 || len(ct) < 2+n {
		return "", nil, fmt.Errorf("%w: bad key id length", ErrDecrypt)
	}
	return string(ct[2 : 2+n]), ct[2+n:], nil
}

// associatedData authenticates the header (version and key id) and binds
// the ciphertext to its row. Each field is length-prefixed (4 bytes, big
// endian), so no two different (kind, scope, name) give the same bytes.
func associatedData(header []byte, kind, scope, name string) []byte {
	var b bytes.Buffer
	b.Grow(len("backlot/secrets") + len(header) + 12 + len(kind) + len(scope) + len(name))
	b.WriteString("backlot/secrets")
	b.Write(header)
	for _, f := range []string{kind, scope, name} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		b.Write(n[:])
		b.WriteString(f)
	}
	return b.Bytes()
}

// Derive returns a 32-byte key for purpose, derived with HKDF-SHA-256 from
// the current key. It changes when the first key changes, so use it only
// for values that may lapse at a rotation (a CSRF secret, say: tokens made
// before the rotation stop verifying). Returns nil for an empty keyring.
//
// A derived key whose outputs outlive a rotation (HMAC checksums stored in
// a marketplace, say) must use DeriveFrom with a named key id, record that
// id beside each output, and verify with the key it names; the key can
// then only be retired after those outputs are rewritten.
func (k *Keyring) Derive(purpose string) []byte {
	b, err := k.DeriveFrom(k.Current(), purpose)
	if err != nil {
		return nil
	}
	return b
}

// DeriveFrom returns a 32-byte key for purpose, derived with HKDF-SHA-256
// from the named key: stable for as long as that key is configured,
// whatever key is first. Distinct purposes give independent keys, none of
// them the encryption key itself.
func (k *Keyring) DeriveFrom(keyID, purpose string) ([]byte, error) {
	if !k.Has(keyID) {
		if keyID == "" {
			return nil, ErrNoKeys
		}
		return nil, &UnknownKeyError{KeyID: keyID}
	}
	if purpose == "" {
		return nil, errors.New("derive: empty purpose")
	}
	r := hkdf.New(sha256.New, k.keys[keyID], []byte("backlot derive v1"), []byte(purpose))
	out := make([]byte, 32)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("derive %q: %w", purpose, err)
	}
	return out, nil
}
