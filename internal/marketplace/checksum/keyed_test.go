package checksum

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/secrets"
)

func testKeyring(t *testing.T, ids ...string) *secrets.Keyring {
	t.Helper()
	var ks []config.Key
	for _, id := range ids {
		ks = append(ks, config.Key{ID: id, Secret: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id[1:]), 32)[:32])})
	}
	k, err := secrets.NewKeyring(ks)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// asStored turns SealKeyed's fields into privateData as read back.
func asStored(t *testing.T, fields map[string]any) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

func TestKeyed(t *testing.T) {
	t.Parallel()
	k1 := testKeyring(t, "k1")
	value := map[string]any{"status": "verified", "at": "2026-05-01"}
	fields, err := SealKeyed(k1, "usr_1", "idVerification", value)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := fields["idVerificationChecksum"].(string); !strings.HasPrefix(s, "k1:") {
		t.Fatalf("checksum %q does not name its key", s)
	}
	pd := asStored(t, fields)
	if _, st := VerifyKeyed(k1, "usr_1", "idVerification", pd); st != Valid {
		t.Fatalf("fresh = %v", st)
	}
	// Still valid after k2 becomes current (k1 kept); tampered once k1 is gone.
	if _, st := VerifyKeyed(testKeyring(t, "k2", "k1"), "usr_1", "idVerification", pd); st != Valid {
		t.Fatalf("after rotation = %v", st)
	}
	tests := []struct {
		name string
		keys *secrets.Keyring
		user string
		edit func(map[string]json.RawMessage)
		want Status
	}{
		{"key retired", testKeyring(t, "k2"), "usr_1", nil, Tampered},
		{"other user", k1, "usr_2", nil, Tampered},
		{"value edited", k1, "usr_1", func(m map[string]json.RawMessage) {
			m["idVerification"] = json.RawMessage(`{"at":"2026-05-01","status":"verified","extra":1}`)
		}, Tampered},
		{"key id removed", k1, "usr_1", func(m map[string]json.RawMessage) {
			var s string
			_ = json.Unmarshal(m["idVerificationChecksum"], &s)
			m["idVerificationChecksum"], _ = json.Marshal(strings.TrimPrefix(s, "k1:"))
		}, Tampered},
		{"key id swapped", testKeyring(t, "k1", "k3"), "usr_1", func(m map[string]json.RawMessage) {
			var s string
			_ = json.Unmarshal(m["idVerificationChecksum"], &s)
			m["idVerificationChecksum"], _ = json.Marshal("k3" + strings.TrimPrefix(s, "k1"))
		}, Tampered},
		{"checksum not a string", k1, "usr_1", func(m map[string]json.RawMessage) { m["idVerificationChecksum"] = json.RawMessage(`1`) }, Tampered},
		{"value removed", k1, "usr_1", func(m map[string]json.RawMessage) { delete(m, "idVerification") }, Missing},
		{"key order changed", k1, "usr_1", func(m map[string]json.RawMessage) {
			m["idVerification"] = json.RawMessage(`{ "status" : "verified", "at" : "2026-05-01" }`)
		}, Valid},
	}
	for _, tc := range tests {
		m := asStored(t, fields)
		if tc.edit != nil {
			tc.edit(m)
		}
		if _, st := VerifyKeyed(tc.keys, tc.user, "idVerification", m); st != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, st, tc.want)
		}
	}
	if _, err := SealKeyed(nil, "usr_1", "idVerification", value); err == nil {
		t.Fatal("SealKeyed with no keys succeeded")
	}
}
