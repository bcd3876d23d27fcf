package ratelimit

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestFailuresBudgetAndRefill(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := NewFailures(rate.Limit(20.0/60), 20, 0)
	for i := range 20 {
		if _, blocked := l.Blocked(netip.MustParseAddr("198.51.100.7"), now); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail(netip.MustParseAddr("198.51.100.7"), now)
	}
	wait, blocked := l.Blocked(netip.MustParseAddr("198.51.100.7"), now)
	if !blocked || wait != 3 {
		t.Fatalf("after 20 failures: blocked %v wait %d, want true 3", blocked, wait)
	}
	if _, blocked := l.Blocked(netip.MustParseAddr("203.0.113.1"), now); blocked {
		t.Fatal("another address is blocked")
	}
	if _, blocked := l.Blocked(netip.MustParseAddr("198.51.100.7"), now.Add(3*time.Second)); blocked {
		t.Fatal("still blocked after the wait it announced")
	}
}

func TestFailuresMemoryBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := NewFailures(rate.Limit(1), 1, 100)
	for i := range 1000 {
		l.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	if n := len(l.clients); n > 100 {
		t.Fatalf("%d clients tracked, want at most 100", n)
	}
	// The most recent failure is remembered.
	if _, blocked := l.Blocked(netip.AddrFrom4([4]byte{10, 0, 999 >> 8, 999 & 0xff}), now); !blocked {
		t.Fatal("latest client forgotten")
	}
}
