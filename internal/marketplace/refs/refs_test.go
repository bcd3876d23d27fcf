package refs_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/marketplace/refs"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
}
func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
func keyring(t testing.TB, ks ...config.Key) *secrets.Keyring {
	t.Helper()
	k, err := secrets.NewKeyring(ks)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type fixture struct {
	r   *refs.Refs
	db  store.Store
	clk *testutil.Clock
}

func setup(t *testing.T) fixture {
	t.Helper()
	db := testutil.SQLite(t)
	clk := newClock()
	r, err := refs.New(refs.Config{Keyring: keyring(t, config.Key{ID: "k1", Secret: key(1)}), Store: db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{r: r, db: db, clk: clk}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		payload    []byte
		maxLen     int
		opts       *refs.IssueOpts
		wantHandle bool
	}{
		{"inline small", []byte("usr_123"), 100, nil, false},
		{"inline at the limit", bytes.Repeat([]byte{0xab}, 27), 100, nil, false},
		{"one byte over goes to a row", bytes.Repeat([]byte{0xab}, 28), 100, nil, true},
		{"big payload", bytes.Repeat([]byte("refresh-token-"), 50), 100, nil, true},
		{"stored on request", []byte("rt"), 100, &refs.IssueOpts{Stored: true}, true},
		{"single use is stored", []byte("rt"), 100, &refs.IssueOpts{SingleUse: true}, true},
		{"empty payload", nil, 100, nil, false},
		{"tight limit", []byte("x"), refs.HandleLen, nil, true},
	}
	for _, tc := range tests {
		ref, err := f.r.Issue(ctx, tc.payload, "idv", time.Hour, tc.maxLen, tc.opts)
		if err != nil {
			t.Fatalf("%s: Issue: %v", tc.name, err)
		}
		if len(ref) > tc.maxLen || strings.ContainsAny(ref, "+/=") {
			t.Fatalf("%s: reference %q is %d characters or not URL-safe", tc.name, ref, len(ref))
		}
		if isHandle := len(ref) == refs.HandleLen; isHandle != tc.wantHandle {
			t.Fatalf("%s: handle = %v (len %d), want %v", tc.name, isHandle, len(ref), tc.wantHandle)
		}
		got, err := f.r.Open(ctx, ref, "idv", nil)
		if err != nil || !bytes.Equal(got, tc.payload) {
			t.Fatalf("%s: Open = %q, %v; want %q", tc.name, got, err, tc.payload)
		}
	}
}

func TestIssueNeverOverMaxLen(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	for maxLen := 0; maxLen <= 120; maxLen++ {
		for _, n := range []int{0, 10, 27, 28, 60, 500} {
			ref, err := f.r.Issue(ctx, make([]byte, n), "p", time.Minute, maxLen, nil)
			if maxLen < refs.HandleLen {
				if !errors.Is(err, refs.ErrTooLong) || ref != "" {
					t.Fatalf("maxLen %d: Issue = %q, %v; want ErrTooLong", maxLen, ref, err)
				}
				continue
			}
			if err != nil || len(ref) > maxLen {
				t.Fatalf("maxLen %d payload %d: Issue = %q (%d), %v", maxLen, n, ref, len(ref), err)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	inline, err := f.r.Issue(ctx, []byte("u1"), "idv", time.Hour, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	handle, err := f.r.Issue(ctx, []byte("u1"), "idv", time.Hour, 100, &refs.IssueOpts{Stored: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ref, purpose string
		want               error
	}{
		{"inline, other purpose", inline, "login", refs.ErrInvalid},
		{"handle, other purpose", handle, "login", refs.ErrWrongPurpose},
		// One character off the end: depending on the length and the last
		// character's unused bits, base64 decoding fails (malformed) or
		// yields one byte fewer, which then does not open (invalid).
		{"inline truncated", inline[:len(inline)-1], "idv", errMalformedOrInvalid},
		{"inline truncated to 15 bytes", inline[:20], "idv", refs.ErrMalformed},
		{"handle truncated", handle[:len(handle)-1], "idv", refs.ErrMalformed},
		{"empty", "", "idv", refs.ErrMalformed},
		{"not base64url", "abc+/def", "idv", refs.ErrMalformed},
		{"padded", inline + "=", "idv", refs.ErrMalformed},
		{"too long", strings.Repeat("A", refs.MaxRefLen+4), "idv", refs.ErrMalformed},
		{"unknown handle", base64.RawURLEncoding.EncodeToString(make([]byte, 16)), "idv", refs.ErrUnknown},
	}
	for _, tc := range tests {
		_, err := f.r.Open(ctx, tc.ref, tc.purpose, nil)
		if tc.want == errMalformedOrInvalid {
			if !errors.Is(err, refs.ErrMalformed) && !errors.Is(err, refs.ErrInvalid) {
				t.Errorf("%s: Open = %v, want malformed or invalid", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// errMalformedOrInvalid marks a case refused as either.
var errMalformedOrInvalid = errors.New("malformed or invalid")

// TestTampered changes every character of each form of reference in turn
// (to every other base64url character for the inline one) and every bit of
// its bytes: none of them opens.
func TestTampered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, opts := range []*refs.IssueOpts{nil, {Stored: true}} {
		ref, err := f.r.Issue(ctx, []byte("usr_42"), "idv", time.Hour, 100, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(ref) {
			for _, c := range alphabet {
				if byte(c) == ref[i] {
					continue
				}
				bad := ref[:i] + string(c) + ref[i+1:]
				if got, err := f.r.Open(ctx, bad, "idv", nil); err == nil {
					t.Fatalf("reference with character %d changed to %q opened: %q", i, c, got)
				}
			}
		}
		raw, _ := base64.RawURLEncoding.DecodeString(ref)
		for i := range len(raw) * 8 {
			b := bytes.Clone(raw)
			b[i/8] ^= 1 << (i % 8)
			if _, err := f.r.Open(ctx, base64.RawURLEncoding.EncodeToString(b), "idv", nil); err == nil {
				t.Fatalf("reference with bit %d flipped opened", i)
			}
		}
		if _, err := f.r.Open(ctx, ref, "idv", nil); err != nil {
			t.Fatalf("the untouched reference no longer opens: %v", err)
		}
	}
}

func TestExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	for _, opts := range []*refs.IssueOpts{nil, {Stored: true}} {
		ref, err := f.r.Issue(ctx, []byte("x"), "idv", time.Minute, 100, opts)
		if err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(59 * time.Second)
		if _, err := f.r.Open(ctx, ref, "idv", nil); err != nil {
			t.Fatalf("open before expiry: %v", err)
		}
		f.clk.Advance(time.Second)
		if _, err := f.r.Open(ctx, ref, "idv", nil); !errors.Is(err, refs.ErrExpired) {
			t.Fatalf("open at expiry = %v, want ErrExpired", err)
		}
	}
	// An expired row is pruned by a later Issue; its handle is then unknown.
	ref, _ := f.r.Issue(ctx, []byte("x"), "idv", time.Minute, 100, &refs.IssueOpts{Stored: true})
	f.clk.Advance(2 * time.Minute)
	if _, err := f.r.Issue(ctx, []byte("y"), "idv", time.Minute, 100, &refs.IssueOpts{Stored: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Open(ctx, ref, "idv", nil); !errors.Is(err, refs.ErrUnknown) {
		t.Fatalf("open after pruning = %v, want ErrUnknown", err)
	}
}

func TestSingleUse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	ref, err := f.r.Issue(ctx, []byte("rt"), "idv", time.Hour, 100, &refs.IssueOpts{SingleUse: true})
	if err != nil {
		t.Fatal(err)
	}
	// A wrong purpose does not use it up.
	if _, err := f.r.Open(ctx, ref, "other", nil); !errors.Is(err, refs.ErrWrongPurpose) {
		t.Fatalf("wrong purpose = %v", err)
	}
	job := &refs.OpenOpts{Consumer: "job-7"}
	for range 2 { // the same consumer (a retrying job) may open it again
		if got, err := f.r.Open(ctx, ref, "idv", job); err != nil || string(got) != "rt" {
			t.Fatalf("Open by job-7 = %q, %v", got, err)
		}
	}
	for _, o := range []*refs.OpenOpts{nil, {Consumer: "job-8"}} {
		if _, err := f.r.Open(ctx, ref, "idv", o); !errors.Is(err, refs.ErrUsed) {
			t.Fatalf("reuse by %+v = %v, want ErrUsed", o, err)
		}
	}
	// Without a consumer it opens exactly once.
	once, _ := f.r.Issue(ctx, []byte("rt"), "idv", time.Hour, 100, &refs.IssueOpts{SingleUse: true})
	if _, err := f.r.Open(ctx, once, "idv", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Open(ctx, once, "idv", nil); !errors.Is(err, refs.ErrUsed) {
		t.Fatalf("second anonymous open = %v, want ErrUsed", err)
	}
	// Delete kills a handle; an inline reference has nothing to delete.
	if err := f.r.Delete(ctx, once); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Open(ctx, once, "idv", nil); !errors.Is(err, refs.ErrUnknown) {
		t.Fatalf("open after Delete = %v, want ErrUnknown", err)
	}
	inline, _ := f.r.Issue(ctx, []byte("u"), "idv", time.Hour, 100, nil)
	if err := f.r.Delete(ctx, inline); !errors.Is(err, refs.ErrMalformed) {
		t.Fatalf("Delete(inline) = %v", err)
	}
}

func TestRetiredKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	inline, _ := f.r.Issue(ctx, []byte("u"), "idv", time.Hour, 100, nil)
	handle, _ := f.r.Issue(ctx, []byte("u"), "idv", time.Hour, 100, &refs.IssueOpts{Stored: true})

	// k2 added in front: old references still open (k1 is still there).
	both, _ := refs.New(refs.Config{Keyring: keyring(t, config.Key{ID: "k2", Secret: key(2)}, config.Key{ID: "k1", Secret: key(1)}), Store: f.db, Now: f.clk.Now})
	for _, ref := range []string{inline, handle} {
		if _, err := both.Open(ctx, ref, "idv", nil); err != nil {
			t.Fatalf("open with k1 still configured: %v", err)
		}
	}
	// k1 retired: refused as such.
	only2, _ := refs.New(refs.Config{Keyring: keyring(t, config.Key{ID: "k2", Secret: key(2)}), Store: f.db, Now: f.clk.Now})
	for _, ref := range []string{inline, handle} {
		if _, err := only2.Open(ctx, ref, "idv", nil); !errors.Is(err, refs.ErrRetiredKey) {
			t.Fatalf("open after retiring k1 = %v, want ErrRetiredKey", err)
		}
	}
	// A key with the same id but other bytes: does not open, not a panic.
	other, _ := refs.New(refs.Config{Keyring: keyring(t, config.Key{ID: "k1", Secret: key(9)}), Store: f.db, Now: f.clk.Now})
	if _, err := other.Open(ctx, inline, "idv", nil); !errors.Is(err, refs.ErrInvalid) {
		t.Fatalf("open under a replaced k1 = %v, want ErrInvalid", err)
	}
}

func TestStoredRowsJoinRotation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	handle, _ := f.r.Issue(ctx, []byte("rt"), "idv", time.Hour, 100, &refs.IssueOpts{SingleUse: true})
	k21 := keyring(t, config.Key{ID: "k2", Secret: key(2)}, config.Key{ID: "k1", Secret: key(1)})
	if _, err := secrets.Rotate(ctx, f.db, k21, secrets.RotateOptions{}); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	only2, _ := refs.New(refs.Config{Keyring: keyring(t, config.Key{ID: "k2", Secret: key(2)}), Store: f.db, Now: f.clk.Now})
	if got, err := only2.Open(ctx, handle, "idv", nil); err != nil || string(got) != "rt" {
		t.Fatalf("open after rotation with k1 retired = %q, %v", got, err)
	}
}
