package httpapi

import (
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"3600", time.Hour, true},
		{"-1", 0, false},
		{"-99999999999999999999999", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"2147483648", RetryAfterCeiling, true},
		{"99999999999", RetryAfterCeiling, true}, // would overflow time.Duration(n)*time.Second
		{"9223372036854775807", RetryAfterCeiling, true},
		{"99999999999999999999999", RetryAfterCeiling, true},
		{"Mon, 30 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Mon, 30 Nov 2026 11:00:00 GMT", 0, true}, // in the past: retry now
		{"Fri, 31 Dec 9999 23:59:59 GMT", RetryAfterCeiling, true},
	}
	for _, c := range cases {
		got, ok := RetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
