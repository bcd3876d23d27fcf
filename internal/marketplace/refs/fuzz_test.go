package refs_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/marketplace/refs"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/testutil"
)

// FuzzOpen feeds Open arbitrary strings and purposes. Property: nothing
// opens except a reference Issue returned, for the purpose it was issued
// for, and then with the payload it was issued with. The clock advances
// with the input, so expiry is exercised at varied times.
func FuzzOpen(f *testing.F) {
	db := testutil.SQLite(f)
	clk := newClock()
	// A fresh key per process: the fuzzing engine runs this setup in
	// every worker, and a reference issued in one process must not be
	// mistaken for a forgery that opened in another.
	secret, err := secrets.NewKey()
	if err != nil {
		f.Fatal(err)
	}
	r, err := refs.New(refs.Config{Keyring: keyring(f, config.Key{ID: "k1", Secret: secret}), Store: db, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	issued := map[string][]byte{}
	for i, opts := range []*refs.IssueOpts{nil, {Stored: true}, {SingleUse: true}} {
		p := []byte{byte(i), 'p'}
		ref, err := r.Issue(ctx, p, "idv", 24*time.Hour, 100, opts)
		if err != nil {
			f.Fatal(err)
		}
		issued[ref] = p
		f.Add(ref, "idv", uint16(0))
		f.Add(ref[:len(ref)-2], "idv", uint16(1))
		f.Add(ref+"A", "idv", uint16(3))
		f.Add(ref, "login", uint16(60))
	}
	f.Add("", "", uint16(0))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", "idv", uint16(0))
	f.Fuzz(func(t *testing.T, ref, purpose string, advance uint16) {
		clk.Advance(time.Duration(advance) * time.Second)
		got, err := r.Open(ctx, ref, purpose, nil)
		if err != nil {
			return
		}
		want, ok := issued[ref]
		if !ok || purpose != "idv" {
			t.Fatalf("Open(%q, %q) = %q: a reference nobody issued (or for another purpose) opened", ref, purpose, got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Open(%q) = %q, issued with %q", ref, got, want)
		}
	})
}
