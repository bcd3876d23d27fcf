package devenv

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// SecretsFile is the name of the secrets file inside the dev directory.
const SecretsFile = "secrets.json"

// Secrets are every secret the development environment uses, generated on
// the first start and read back on every later one, so tokens, sessions,
// sealed data and webhook signatures made in one run stay good in the
// next (as `stripe listen` keeps its whsec_).
//
// Each field is generated on its own when missing, so a file written by
// an older version gains the new secrets without losing the old ones.
type Secrets struct {
	// KeyringKey seals stored secrets and connection tokens: 32 bytes, base64.
	KeyringKey string `json:"keyring_key"`
	// HS256Secret signs the staff tokens of the payments dashboard.
	HS256Secret string `json:"hs256_secret"`
	// StripeAppSecret is the Stripe App's signing secret (absec_…).
	StripeAppSecret string `json:"stripe_app_secret"`
	// WebhookSecret verifies deliveries to /webhooks/queue (whsec_…).
	WebhookSecret string `json:"webhook_secret"`
	// ForwardSecret signs the queue's forwarded jobs (whsec_…).
	ForwardSecret string `json:"forward_secret"`
	// OAuthClientSecret is backlot's client secret at the OAuth simulator.
	OAuthClientSecret string `json:"oauth_client_secret"`
	// PartnerSecret is the partner middleware's shared secret.
	PartnerSecret string `json:"partner_secret"`
	// PaymentsClientSecret is the payments application's client_secret.
	PaymentsClientSecret string `json:"payments_client_secret"`
	// PaymentsTokenKey derives the demo merchants' access tokens, so they
	// too survive a restart.
	PaymentsTokenKey string `json:"payments_token_key"`
	// IDVAPIToken and IDVAPISecret are the Basic credentials of the
	// ID-verification vendor's API.
	IDVAPIToken  string `json:"idv_api_token"`
	IDVAPISecret string `json:"idv_api_secret"`
	// MarketplaceClientSecret and IntegrationClientSecret are the
	// marketplace applications' secrets.
	MarketplaceClientSecret string `json:"marketplace_client_secret"`
	IntegrationClientSecret string `json:"integration_client_secret"`
}

// generators make each secret in the shape its consumer expects, by JSON
// field name.
func generators() map[string]func() string {
	return map[string]func() string{
		"keyring_key":               func() string { return base64.StdEncoding.EncodeToString(randomBytes(32)) },
		"hs256_secret":              func() string { return hex.EncodeToString(randomBytes(32)) },
		"stripe_app_secret":         func() string { return "absec_" + hex.EncodeToString(randomBytes(24)) },
		"webhook_secret":            whsec,
		"forward_secret":            whsec,
		"oauth_client_secret":       token,
		"partner_secret":            token,
		"payments_client_secret":    token,
		"payments_token_key":        token,
		"idv_api_token":             func() string { return "idv_" + hex.EncodeToString(randomBytes(12)) },
		"idv_api_secret":            token,
		"marketplace_client_secret": token,
		"integration_client_secret": token,
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func token() string { return base64.RawURLEncoding.EncodeToString(randomBytes(24)) }

func whsec() string { return "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(24)) }

// fill generates every empty field and reports whether it changed any.
func (s *Secrets) fill() bool {
	changed := false
	gens := generators()
	v := reflect.ValueOf(s).Elem()
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if v.Field(i).String() != "" {
			continue
		}
		gen, ok := gens[name]
		if !ok {
			panic("devenv: no generator for secret " + name) // a field added without one
		}
		v.Field(i).SetString(gen())
		changed = true
	}
	return changed
}

// loadSecrets reads dir/secrets.json, creating it (mode 0600) on the first
// start or when fresh is true, and adding any secret it lacks. A file that
// others may read is refused rather than silently used: it holds the keys
// to everything the environment stored.
func loadSecrets(dir string, fresh bool) (*Secrets, bool, error) {
	path := filepath.Join(dir, SecretsFile)
	s := &Secrets{}
	created := false
	if fresh {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("remove %s: %w", path, err)
		}
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		created = true
	case err != nil:
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	default:
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, false, fmt.Errorf("stat %s: %w", path, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("%s is readable by others (mode %04o): run chmod 600 %s, or start with --reset-secrets for new ones", path, st.Mode().Perm(), path)
		}
		dec := json.NewDecoder(f)
		dec.DisallowUnknownFields()
		if err := dec.Decode(s); err != nil {
			return nil, false, fmt.Errorf("read %s: %w (delete it, or start with --reset-secrets, for new secrets)", path, err)
		}
	}
	if s.fill() || created {
		if err := writeSecrets(path, s); err != nil {
			return nil, false, err
		}
	}
	return s, created, nil
}

// writeSecrets replaces path atomically with s, owner-only.
func writeSecrets(path string, s *Secrets) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode secrets: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	return nil
}
