package checksum

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/backlothq/backlot/internal/secrets"
)

// KeyPurpose is the HKDF purpose the checksum key is derived under from a
// keyring key (secrets.Keyring.DeriveFrom).
const KeyPurpose = "backlot/marketplace/checksum/v1"

// A keyed checksum field reads "<key id>:<hex sum>": the checksum key is
// derived from the named keyring key, not from whichever key is first, so
// a checksum written before a key rotation still verifies after it while
// the key it names is configured. Retiring that key makes the values it
// sealed read as Tampered until they are written again: the marketplace's
// extended data is not among the tables `backlot keys rotate` rewrites.

// SealKeyed is Seal with the checksum key derived from the keyring's
// current key, whose id prefixes the sum.
func SealKeyed(keys *secrets.Keyring, userID, name string, value any) (map[string]any, error) {
	id := keys.Current()
	key, err := keys.DeriveFrom(id, KeyPurpose)
	if err != nil {
		return nil, fmt.Errorf("seal %s: checksum key: %w", name, err)
	}
	fields, err := Seal(key, userID, name, value)
	if err != nil {
		return nil, err
	}
	fields[name+Suffix] = id + ":" + fields[name+Suffix].(string)
	return fields, nil
}

// VerifyKeyed is Verify for a field sealed by SealKeyed: the checksum's
// key id picks the key. A checksum without a key id, or naming a key the
// keyring does not hold, is Tampered.
func VerifyKeyed(keys *secrets.Keyring, userID, name string, privateData map[string]json.RawMessage) (json.RawMessage, Status) {
	if _, ok := privateData[name]; !ok {
		return nil, Missing
	}
	var field string
	if err := json.Unmarshal(privateData[name+Suffix], &field); err != nil {
		return nil, Tampered
	}
	id, sum, ok := strings.Cut(field, ":")
	if !ok || !keys.Has(id) {
		return nil, Tampered
	}
	key, err := keys.DeriveFrom(id, KeyPurpose)
	if err != nil {
		return nil, Tampered
	}
	rawSum, err := json.Marshal(sum)
	if err != nil {
		return nil, Tampered
	}
	return Verify(key, userID, name, map[string]json.RawMessage{name: privateData[name], name + Suffix: rawSum})
}
