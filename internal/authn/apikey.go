package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/config"
)

// APIKeyPrefix starts every key `backlot apikey new` makes. A bearer
// value with it is backlot's own: refused locally when it does not match,
// never sent to a remote authenticator.
const APIKeyPrefix = "blk_"

// apiKeyRandomBytes is the entropy of a new key.
const apiKeyRandomBytes = 32

// NewAPIKeySecret makes a new API key: the prefix and 32 random bytes in
// unpadded base64url. It returns the key, to be given to the caller once,
// and the hex SHA-256 that goes in the configuration.
func NewAPIKeySecret() (key, sha256Hex string, err error) {
	b := make([]byte, apiKeyRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:]), nil
}

// APIKey accepts `Authorization: Bearer <key>` where the SHA-256 of the key
// is configured. Only hashes are held, so the config leaks no key.
type APIKey struct {
	name string
	keys []apiKeyHash
}

type apiKeyHash struct {
	id  string
	sum [sha256.Size]byte
}

var _ auth.Authenticator = (*APIKey)(nil)

func newAPIKey(name string, cfg config.Authenticator, _ Deps) (*APIKey, error) {
	if len(cfg.APIKeys) == 0 {
		return nil, errors.New("keys: at least one key is required")
	}
	a := &APIKey{name: name}
	seen := map[string]bool{}
	for i, k := range cfg.APIKeys {
		if k.ID == "" {
			return nil, fmt.Errorf("keys[%d]: id is required", i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("keys[%d]: duplicate id %q", i, k.ID)
		}
		seen[k.ID] = true
		b, err := hex.DecodeString(strings.TrimSpace(k.SHA256))
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("keys[%d] (%s): sha256 must be 64 hex characters (the SHA-256 of the key)", i, k.ID)
		}
		h := apiKeyHash{id: k.ID}
		copy(h.sum[:], b)
		a.keys = append(a.keys, h)
	}
	return a, nil
}

// Name implements Authenticator.
func (a *APIKey) Name() string { return a.name }

// Type implements Authenticator.
func (a *APIKey) Type() string { return config.AuthAPIKey }

// Authenticate implements Authenticator. The presented key is hashed and
// compared with every configured hash in constant time; the loop does not
// stop at a match, so timing says nothing about which key (or whether any)
// matched beyond the number of keys configured.
func (a *APIKey) Authenticate(r *http.Request) (*auth.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, auth.ErrNoCredential
	}
	if tok == "" {
		return nil, &auth.Failure{Reason: "empty bearer token"}
	}
	sum := sha256.Sum256([]byte(tok))
	match := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		// A JWT is most likely meant for a token authenticator on the same
		// route; a value with our prefix is surely meant for us.
		foreign := strings.Count(tok, ".") == 2 && !strings.HasPrefix(tok, APIKeyPrefix)
		return nil, &auth.Failure{Reason: "unknown API key", Foreign: foreign}
	}
	return &auth.Principal{Authenticator: a.name, Subject: a.keys[match].id}, nil
}
