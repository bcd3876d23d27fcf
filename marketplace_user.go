package backlot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/backlothq/backlot/internal/marketplace/checksum"
	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
)

// UserToken is a marketplace user's Marketplace API token pair.
type UserToken struct {
	AccessToken string
	// RefreshToken replaces the one that was spent: Sharetribe rotates
	// them, so the old one no longer works.
	RefreshToken string
	Expiry       time.Time
}

// RefreshUserToken spends a user's refresh token (grant refresh_token)
// for a fresh access token, so a worker can act as the user later, after
// the request that carried the user's session is gone.
func (m *Marketplace) RefreshUserToken(ctx context.Context, refreshToken string) (*UserToken, error) {
	t, err := m.c.RefreshToken(ctx, refreshToken)
	if err != nil {
		return nil, marketplaceError(http.MethodPost, "/v1/auth/token", err)
	}
	return &UserToken{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expiry: t.Expiry}, nil
}

// CheckStatus is what ReadChecked found.
type CheckStatus string

// Check statuses.
const (
	// CheckValid: the value is there and its checksum matches.
	CheckValid CheckStatus = "valid"
	// CheckMissing: no value under the key.
	CheckMissing CheckStatus = "missing"
	// CheckTampered: a value whose checksum is absent or wrong: written by
	// someone without backlot's keys (the user, through the Marketplace
	// API), or sealed under a key since retired.
	CheckTampered CheckStatus = "tampered"
)

// WriteChecked stores value under key in the privateData of the user
// userToken belongs to, with key+"Checksum" beside it
// (current_user/update_profile, acting as the user). The checksum is an
// HMAC over the user id and the canonical JSON of value, with a key
// derived from the current keyring key, whose id it carries. Other
// privateData keys are untouched: Sharetribe merges at the top level.
func (m *Marketplace) WriteChecked(ctx context.Context, userToken, key string, value any) error {
	u, err := m.c.CurrentUser(ctx, userToken)
	if err != nil {
		return marketplaceError(http.MethodGet, "/v1/api/current_user/show", err)
	}
	fields, err := checksum.SealKeyed(m.keys, u.ID, key, value)
	if err != nil {
		return fmt.Errorf("marketplace %s: %w", m.name, err)
	}
	if _, err := m.c.UpdateCurrentUserProfile(ctx, userToken, sharetribe.ProfileUpdate{PrivateData: fields}); err != nil {
		return marketplaceError(http.MethodPost, "/v1/api/current_user/update_profile", err)
	}
	return nil
}

// WriteCheckedFor is WriteChecked for the user userID through the
// Integration API (users/update_profile), for callers without a user token.
func (m *Marketplace) WriteCheckedFor(ctx context.Context, userID, key string, value any) error {
	fields, err := checksum.SealKeyed(m.keys, userID, key, value)
	if err != nil {
		return fmt.Errorf("marketplace %s: %w", m.name, err)
	}
	if _, err := m.c.UpdateUserProfile(ctx, userID, sharetribe.ProfileUpdate{PrivateData: fields}); err != nil {
		return marketplaceError(http.MethodPost, "/v1/integration_api/users/update_profile", err)
	}
	return nil
}

// ReadChecked reads key from the privateData of the user userToken
// belongs to and verifies its checksum. The value is returned only when
// the status is CheckValid.
func (m *Marketplace) ReadChecked(ctx context.Context, userToken, key string) (json.RawMessage, CheckStatus, error) {
	u, err := m.c.CurrentUser(ctx, userToken)
	if err != nil {
		return nil, "", marketplaceError(http.MethodGet, "/v1/api/current_user/show", err)
	}
	return m.verify(u, key)
}

// ReadCheckedFor is ReadChecked for the user userID through the
// Integration API (users/show).
func (m *Marketplace) ReadCheckedFor(ctx context.Context, userID, key string) (json.RawMessage, CheckStatus, error) {
	u, err := m.c.ShowUser(ctx, userID)
	if err != nil {
		return nil, "", marketplaceError(http.MethodGet, "/v1/integration_api/users/show", err)
	}
	return m.verify(u, key)
}

func (m *Marketplace) verify(u *sharetribe.User, key string) (json.RawMessage, CheckStatus, error) {
	pd := make(map[string]json.RawMessage, 2)
	for _, k := range []string{key, key + checksum.Suffix} {
		v, ok := u.Attributes.Profile.PrivateData[k]
		if !ok {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("marketplace %s: read privateData.%s: %w", m.name, k, err)
		}
		pd[k] = b
	}
	value, st := checksum.VerifyKeyed(m.keys, u.ID, key, pd)
	switch st {
	case checksum.Valid:
		return value, CheckValid, nil
	case checksum.Missing:
		return nil, CheckMissing, nil
	}
	return nil, CheckTampered, nil
}
