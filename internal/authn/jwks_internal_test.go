package authn

import (
	"strings"
	"testing"
	"time"
)

func TestCacheMaxAge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		h    string
		want time.Duration
	}{
		{"", JWKSMaxAgeDefault},
		{"public", JWKSMaxAgeDefault},
		{"max-age=60", time.Minute},
		{"public, max-age=60", time.Minute},
		{"MAX-AGE=60", time.Minute},
		{`max-age="60"`, time.Minute},
		{"max-age=0", 0},
		{"no-store", 0},
		{"max-age=60, no-cache", 0},
		{"max-age=-5", JWKSMaxAgeDefault},
		{"max-age=abc", JWKSMaxAgeDefault},
		{"max-age=", JWKSMaxAgeDefault},
		{"max-age=172800", jwksMaxAgeCap},
		{"max-age=9223372037", jwksMaxAgeCap},              // overflows a Duration in nanoseconds
		{"max-age=9223372036854775807", jwksMaxAgeCap},     // the largest int64
		{"max-age=99999999999999999999999", jwksMaxAgeCap}, // beyond int64
		{"s-maxage=60", JWKSMaxAgeDefault},
	}
	for _, tc := range cases {
		if got := cacheMaxAge(tc.h); got != tc.want {
			t.Errorf("cacheMaxAge(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// FuzzCacheMaxAge: whatever an issuer sends, the key lifetime is never
// negative and never above the cap, and without a freshness directive it
// is the default.
func FuzzCacheMaxAge(f *testing.F) {
	for _, s := range []string{"", "max-age=60", "public, max-age=300", "no-store", "no-cache, max-age=5",
		"max-age=9223372037", "max-age=-1", `max-age="30"`, "max-age=1e9", "Max-Age=86401", ",,,=", "private, must-revalidate"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		d := cacheMaxAge(h)
		if d < 0 || d > jwksMaxAgeCap {
			t.Fatalf("cacheMaxAge(%q) = %v, outside [0, %v]", h, d, jwksMaxAgeCap)
		}
		if d%time.Second != 0 {
			t.Fatalf("cacheMaxAge(%q) = %v, not whole seconds", h, d)
		}
		low := strings.ToLower(h)
		if !strings.Contains(low, "max-age") && !strings.Contains(low, "no-store") && !strings.Contains(low, "no-cache") && d != JWKSMaxAgeDefault {
			t.Fatalf("cacheMaxAge(%q) = %v without a freshness directive, want the default", h, d)
		}
	})
}
