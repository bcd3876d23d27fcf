package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/backlothq/backlot/config"
)

// testKey is base64 of 32 bytes all equal to b.
func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize))
}

func mustKeyring(t testing.TB, keys ...config.Key) *Keyring {
	t.Helper()
	k, err := NewKeyring(keys)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXChaCha20Poly1305Vector is draft-irtf-cfrg-xchacha-03 appendix A.3.1
// (the same vector golang.org/x/crypto tests with), through the functions
// Seal and Open use.
func TestXChaCha20Poly1305Vector(t *testing.T) {
	t.Parallel()
	key := unhex(t, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
	nonce := unhex(t, "404142434445464748494a4b4c4d4e4f5051525354555657")
	ad := unhex(t, "50515253c0c1c2c3c4c5c6c7")
	pt := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	want := unhex(t, "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"+
		"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"+
		"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"+
		"21f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780a"+
		"cf49") // ciphertext, then the tag c0875924c1c7987947deafd8780acf49
	got, err := sealRaw(nil, key, nonce, pt, ad)
	if err != nil {
		t.Fatalf("sealRaw: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sealRaw =\n%x\nwant\n%x", got, want)
	}
	back, err := openRaw(key, nonce, want, ad)
	if err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("openRaw = %q, %v", back, err)
	}
	if _, err := openRaw(key, nonce, want, ad[1:]); err == nil {
		t.Fatal("openRaw with other associated data: want an error")
	}
}

// TestSealLayout checks the documented ciphertext layout byte by byte.
func TestSealLayout(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, config.Key{ID: "k-one", Secret: testKey(7)})
	pt := []byte("hello")
	ct, err := k.Seal("secret", "system/stripe", "api_key", pt)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if len(ct) != len("k-one")+Overhead+len(pt) {
		t.Fatalf("len = %d, want %d", len(ct), len("k-one")+Overhead+len(pt))
	}
	if ct[0] != 1 || ct[1] != 5 || string(ct[2:7]) != "k-one" {
		t.Fatalf("header = %x, want 01 05 'k-one'", ct[:7])
	}
	nonce := ct[7 : 7+NonceSize]
	ad := associatedData(ct[:7], "secret", "system/stripe", "api_key")
	want, err := sealRaw(nil, bytes.Repeat([]byte{7}, KeySize), nonce, pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ct[7+NonceSize:], want) {
		t.Fatal("sealed part is not XChaCha20-Poly1305 of the plaintext under the key, nonce and associated data")
	}
	if id, err := KeyID(ct); err != nil || id != "k-one" {
		t.Fatalf("KeyID = %q, %v", id, err)
	}
	// Two seals of one plaintext differ (random nonce).
	ct2, _ := k.Seal("secret", "system/stripe", "api_key", pt)
	if bytes.Equal(ct, ct2) {
		t.Fatal("two seals gave the same ciphertext")
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, config.Key{ID: "k2", Secret: testKey(2)}, config.Key{ID: "k1", Secret: testKey(1)})
	if k.Current() != "k2" {
		t.Fatalf("Current = %q, want the first key", k.Current())
	}
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("secret "), 10000)} {
		ct, err := k.Seal("secret", "principal/acct/usr", "token", pt)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if id, _ := KeyID(ct); id != "k2" {
			t.Fatalf("sealed under %q, want k2", id)
		}
		got, err := k.Open("secret", "principal/acct/usr", "token", ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %d bytes, %v; want the %d bytes sealed", len(got), err, len(pt))
		}
	}

	// A ciphertext under the second key opens too: the id picks it.
	old := mustKeyring(t, config.Key{ID: "k1", Secret: testKey(1)})
	ct, err := old.Seal("secret", "s", "n", []byte("under k1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open("secret", "s", "n", ct); err != nil || string(got) != "under k1" {
		t.Fatalf("Open of a k1 ciphertext with [k2 k1] = %q, %v", got, err)
	}
}

// TestBoundToRow: a ciphertext copied to another kind, scope or name does
// not open, including splits that would collide without length prefixes.
func TestBoundToRow(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, config.Key{ID: "k1", Secret: testKey(1)})
	ct, err := k.Seal("secret", "principal/a/b", "name", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ kind, scope, name string }{
		{"connection", "principal/a/b", "name"},
		{"secret", "principal/a/c", "name"},
		{"secret", "principal/a/b", "name2"},
		{"secret", "principal/a/bn", "ame"},
		{"secretp", "rincipal/a/b", "name"},
		{"secret", "principal/a/b" + "name", ""},
		{"", "", ""},
	} {
		_, err := k.Open(c.kind, c.scope, c.name, ct)
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("Open as (%q, %q, %q) = %v, want ErrDecrypt", c.kind, c.scope, c.name, err)
		}
	}
}

// TestEveryByteFlipped: changing any single byte of a ciphertext makes it
// fail to open (as tampered, unknown key or malformed), never succeed.
func TestEveryByteFlipped(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, config.Key{ID: "k1", Secret: testKey(1)})
	ct, err := k.Seal("secret", "system/x", "n", []byte("the value"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(ct)
			bad[i] ^= mask
			got, err := k.Open("secret", "system/x", "n", bad)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: opened to %q", i, mask, got)
			}
			var uk *UnknownKeyError
			if !errors.Is(err, ErrDecrypt) && !errors.As(err, &uk) {
				t.Fatalf("byte %d ^ %#x: error %v is neither ErrDecrypt nor UnknownKeyError", i, mask, err)
			}
		}
	}
	// Truncations and extensions fail too.
	for n := range len(ct) {
		if _, err := k.Open("secret", "system/x", "n", ct[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
	}
	if _, err := k.Open("secret", "system/x", "n", append(bytes.Clone(ct), 0)); err == nil {
		t.Fatal("extended by a byte: opened")
	}
}

func TestUnknownKey(t *testing.T) {
	t.Parallel()
	old := mustKeyring(t, config.Key{ID: "retired-2025", Secret: testKey(9)})
	ct, err := old.Seal("secret", "s", "n", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	k := mustKeyring(t, config.Key{ID: "k1", Secret: testKey(1)})
	_, err = k.Open("secret", "s", "n", ct)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.KeyID != "retired-2025" {
		t.Fatalf("Open = %v, want *UnknownKeyError for retired-2025", err)
	}
	if !strings.Contains(err.Error(), `"retired-2025"`) {
		t.Fatalf("error %q does not name the key", err)
	}
	// A key with the same id but other bytes is not tried as the right one.
	imposter := mustKeyring(t, config.Key{ID: "retired-2025", Secret: testKey(8)})
	if _, err := imposter.Open("secret", "s", "n", ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with a different key of the same id = %v, want ErrDecrypt", err)
	}
}

func TestEmptyKeyring(t *testing.T) {
	t.Parallel()
	for _, k := range []*Keyring{nil, mustKeyring(t)} {
		if _, err := k.Seal("secret", "s", "n", []byte("v")); !errors.Is(err, ErrNoKeys) {
			t.Fatalf("Seal = %v, want ErrNoKeys", err)
		}
		if k.Current() != "" || k.Has("") || len(k.IDs()) != 0 || k.Derive("x") != nil {
			t.Fatal("an empty keyring claims keys")
		}
	}
}

func TestNewKeyringRejects(t *testing.T) {
	t.Parallel()
	good := testKey(1)
	for _, c := range []struct {
		name string
		keys []config.Key
		want string
	}{
		{"empty id", []config.Key{{ID: "", Secret: good}}, "empty id"},
		{"long id", []config.Key{{ID: strings.Repeat("k", 256), Secret: good}}, "at most 255"},
		{"duplicate", []config.Key{{ID: "a", Secret: good}, {ID: "a", Secret: testKey(2)}}, "duplicate"},
		{"short", []config.Key{{ID: "a", Secret: base64.StdEncoding.EncodeToString(make([]byte, 31))}}, "32 bytes"},
		{"long", []config.Key{{ID: "a", Secret: base64.StdEncoding.EncodeToString(make([]byte, 33))}}, "32 bytes"},
		{"not base64", []config.Key{{ID: "a", Secret: "this is not base64 at all!!!!!!!!!!!!!!!!!!!"}}, "32 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKeyring(c.keys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewKeyring = %v, want an error containing %q", err, c.want)
			}
			for _, k := range c.keys {
				if k.Secret != "" && strings.Contains(err.Error(), k.Secret) {
					t.Fatalf("error %q echoes the secret", err)
				}
			}
		})
	}
	// Every base64 flavour of 32 bytes is accepted.
	raw := bytes.Repeat([]byte{0xfb}, 32) // encodes with + and / (or - and _)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if _, err := NewKeyring([]config.Key{{ID: "a", Secret: enc.EncodeToString(raw)}}); err != nil {
			t.Fatalf("NewKeyring(%s): %v", enc.EncodeToString(raw), err)
		}
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKey()
	if a == b {
		t.Fatal("two keys are equal")
	}
	if _, err := NewKeyring([]config.Key{{ID: "new", Secret: a}}); err != nil {
		t.Fatalf("a new key is refused: %v", err)
	}
}

func TestDerive(t *testing.T) {
	t.Parallel()
	k1 := config.Key{ID: "k1", Secret: testKey(1)}
	k2 := config.Key{ID: "k2", Secret: testKey(2)}
	before := mustKeyring(t, k1)
	after := mustKeyring(t, k2, k1) // k2 added first: a rotation

	csrf := before.Derive("csrf")
	if len(csrf) != 32 {
		t.Fatalf("Derive = %d bytes, want 32", len(csrf))
	}
	if bytes.Equal(csrf, before.Derive("checksum")) {
		t.Fatal("two purposes derive the same key")
	}
	if bytes.Equal(csrf, bytes.Repeat([]byte{1}, 32)) {
		t.Fatal("Derive returned the key itself")
	}
	if bytes.Equal(csrf, after.Derive("csrf")) {
		t.Fatal("Derive did not follow the first key")
	}
	// DeriveFrom a named key is stable across the rotation.
	x, err := before.DeriveFrom("k1", "checksum")
	if err != nil {
		t.Fatal(err)
	}
	y, err := after.DeriveFrom("k1", "checksum")
	if err != nil || !bytes.Equal(x, y) {
		t.Fatalf("DeriveFrom(k1) changed with the first key: %v", err)
	}
	var uk *UnknownKeyError
	if _, err := after.DeriveFrom("k0", "checksum"); !errors.As(err, &uk) || uk.KeyID != "k0" {
		t.Fatalf("DeriveFrom(unknown) = %v, want *UnknownKeyError", err)
	}
	if _, err := after.DeriveFrom("k1", ""); err == nil {
		t.Fatal("DeriveFrom with an empty purpose: want an error")
	}
}

func TestKeyIDMalformed(t *testing.T) {
	t.Parallel()
	for _, ct := range [][]byte{nil, {1}, {2, 1, 'k'}, {1, 0}, {1, 5, 'k'}} {
		if id, err := KeyID(ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("KeyID(%x) = %q, %v; want ErrDecrypt", ct, id, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	k := mustKeyring(f, config.Key{ID: "k1", Secret: testKey(1)})
	// A fixed nonce, so every fuzz worker process builds the same ct.
	header := []byte{Version, 2, 'k', '1'}
	nonce := bytes.Repeat([]byte{0x42}, NonceSize)
	sealed, err := sealRaw(nil, bytes.Repeat([]byte{1}, KeySize), nonce, []byte("v"), associatedData(header, "secret", "s", "n"))
	if err != nil {
		f.Fatal(err)
	}
	ct := append(append(header, nonce...), sealed...)
	if got, err := k.Open("secret", "s", "n", ct); err != nil || string(got) != "v" {
		f.Fatalf("the seed does not open: %q, %v", got, err)
	}
	f.Add(ct)
	f.Add([]byte{1, 2, 'k', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := k.Open("secret", "s", "n", b)
		if err == nil && (!bytes.Equal(b, ct) || string(got) != "v") {
			t.Fatalf("Open accepted a ciphertext it did not make: %x -> %q", b, got)
		}
	})
}
