package stripesig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
)

// The published Stripe App vector (secret absec_test_secret, t=1700000000).
const (
	vecSecret  = "absec_test_secret"
	vecPayload = `{"user_id":"usr_K6yd2CbXLO9A5G","account_id":"acct_1JSkf6FRwUQjTSJE"}`
	vecV1      = "95d377f7216b002bc8462ad7ad1c21ae33f54bfd7f12f1fe86f43cfd56123df3"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	good := "t=1700000000,v1=" + vecV1
	other := "0000000000000000000000000000000000000000000000000000000000000000"
	tests := []struct {
		name, header, payload string
		secrets               []string
		now                   time.Time
		want                  error
	}{
		{"published vector", good, vecPayload, []string{vecSecret}, at, nil},
		{"rotated secret, second matches", good, vecPayload, []string{"old", vecSecret}, at, nil},
		{"any v1 may match", "t=1700000000,v1=" + other + ",v1=" + vecV1, vecPayload, []string{vecSecret}, at, nil},
		{"v0 ignored", "t=1700000000,v0=abc,v1=" + vecV1, vecPayload, []string{vecSecret}, at, nil},
		{"spaces tolerated", "t=1700000000, v1=" + vecV1, vecPayload, []string{vecSecret}, at, nil},
		{"within tolerance", good, vecPayload, []string{vecSecret}, at.Add(5 * time.Minute), nil},
		{"too old", good, vecPayload, []string{vecSecret}, at.Add(5*time.Minute + time.Second), ErrTooOld},
		{"in the future", good, vecPayload, []string{vecSecret}, at.Add(-5*time.Minute - time.Second), ErrInFuture},
		{"tampered payload", good, `{"user_id":"usr_K6yd2CbXLO9A5G","account_id":"acct_other"}`, []string{vecSecret}, at, ErrMismatch},
		{"wrong key order", good, `{"account_id":"acct_1JSkf6FRwUQjTSJE","user_id":"usr_K6yd2CbXLO9A5G"}`, []string{vecSecret}, at, ErrMismatch},
		{"wrong secret", good, vecPayload, []string{"nope"}, at, ErrMismatch},
		{"other schemes only", "t=1700000000,v0=" + vecV1, vecPayload, []string{vecSecret}, at, ErrNoSignature},
		{"empty v1", "t=1700000000,v1=", vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"non-hex v1", "t=1700000000,v1=" + vecV1[:62] + "zz", vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"no timestamp", "v1=" + vecV1, vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"repeated t", "t=1700000000,t=1700000001,v1=" + vecV1, vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"bad timestamp", "t=soon,v1=" + vecV1, vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"garbage", "garbage", vecPayload, []string{vecSecret}, at, ErrMalformed},
		{"empty", "", vecPayload, []string{vecSecret}, at, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var secrets [][]byte
			for _, s := range tc.secrets {
				secrets = append(secrets, []byte(s))
			}
			err := Verify(tc.header, []byte(tc.payload), secrets, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	h := Sign([]byte(vecSecret), []byte(vecPayload), at)
	if h != "t=1700000000,v1="+vecV1 {
		t.Fatalf("Sign = %s", h)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("t=1700000000,v1=" + vecV1)
	f.Add("t=1,v0=x,v1=")
	f.Fuzz(func(t *testing.T, h string) {
		hd, err := Parse(h)
		if err == nil && (hd.T == "" || len(hd.V1) == 0) {
			t.Fatalf("accepted %q without t or v1", h)
		}
	})
}

// Timestamps far from now are refused whatever their size: the window is
// compared without any difference that could wrap around (the standard
// scheme once accepted now-9223372037, whose distance in nanoseconds
// wrapped to almost zero).
func TestVerifyExtremeTimestamps(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	secret := []byte(vecSecret)
	cases := []struct {
		ts   int64
		want error
	}{
		{1700000000 - 9223372037, ErrMalformed}, // not positive
		{9223372036, ErrInFuture},
		{1700000000 + 9223372037, ErrInFuture},
		{math.MaxInt64, ErrInFuture},
		{1, ErrTooOld},
	}
	for _, c := range cases {
		ts := strconv.FormatInt(c.ts, 10)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(ts + "." + vecPayload))
		h := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
		if err := Verify(h, []byte(vecPayload), [][]byte{secret}, now, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("t=%d: err %v, want %v", c.ts, err, c.want)
		}
	}
}
