package netguard

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// addrCases are address literals as netip parses them. private says
// whether allow_private lets the address through; public whether it is
// allowed even without. Only Check (a pure function) sees these: no packet
// is sent to any of them.
var addrCases = []struct {
	in      string
	rng     string // expected AddrError.Range when refused
	private bool   // allowed with allow_private
	public  bool   // allowed without
}{
	// Loopback, every spelling that parses as a literal.
	{in: "127.0.0.1", rng: "loopback", private: true},
	{in: "127.255.255.254", rng: "loopback", private: true},
	{in: "::1", rng: "loopback", private: true},
	{in: "::ffff:127.0.0.1", rng: "loopback", private: true},
	{in: "::ffff:7f00:1", rng: "loopback", private: true},
	{in: "0:0:0:0:0:ffff:7f00:0001", rng: "loopback", private: true},
	// Unspecified / this network: never (Linux dials 0.0.0.0 as localhost).
	{in: "0.0.0.0", rng: "this-network (unspecified)"},
	{in: "0.1.2.3", rng: "this-network (unspecified)"},
	{in: "::", rng: "unspecified"},
	{in: "::ffff:0.0.0.0", rng: "this-network (unspecified)"},
	// Private networks.
	{in: "10.0.0.1", rng: "private", private: true},
	{in: "172.16.0.1", rng: "private", private: true},
	{in: "172.31.255.255", rng: "private", private: true},
	{in: "192.168.1.1", rng: "private", private: true},
	{in: "::ffff:10.0.0.1", rng: "private", private: true},
	{in: "::ffff:192.168.1.1", rng: "private", private: true},
	{in: "100.64.0.1", rng: "shared (CGNAT)", private: true},
	{in: "100.127.255.254", rng: "shared (CGNAT)", private: true},
	{in: "198.18.0.1", rng: "benchmarking", private: true},
	{in: "fc00::1", rng: "unique-local (private)", private: true},
	{in: "fd12:3456:789a::1", rng: "unique-local (private)", private: true},
	// Link-local and metadata: never.
	{in: "169.254.169.254", rng: "cloud metadata"},
	{in: "::ffff:169.254.169.254", rng: "cloud metadata"},
	{in: "169.254.0.1", rng: "link-local"},
	{in: "fd00:ec2::254", rng: "cloud metadata"},
	{in: "100.100.100.200", rng: "cloud metadata"},
	{in: "fe80::1", rng: "link-local"},
	{in: "fe80::1%eth0", rng: "link-local"},
	{in: "fec0::1", rng: "site-local"},
	// IPv6 transition forms that carry an IPv4 address: never.
	{in: "2002:7f00:1::", rng: "6to4"},
	{in: "2002:a00:1::1", rng: "6to4"},
	{in: "64:ff9b::7f00:1", rng: "NAT64"},
	{in: "64:ff9b::a9fe:a9fe", rng: "NAT64"},
	{in: "64:ff9b:1::7f00:1", rng: "NAT64 (local use)"},
	{in: "2001:0:4136:e378:8000:63bf:3fff:fdd2", rng: "Teredo"},
	{in: "::7f00:1", rng: "IPv4-compatible"},
	{in: "::127.0.0.1", rng: "IPv4-compatible"},
	// Multicast, broadcast, reserved.
	{in: "224.0.0.1", rng: "multicast"},
	{in: "239.255.255.250", rng: "multicast"},
	{in: "ff02::1", rng: "multicast"},
	{in: "255.255.255.255", rng: "broadcast"},
	{in: "::ffff:255.255.255.255", rng: "broadcast"},
	{in: "240.0.0.1", rng: "reserved"},
	// Documentation and protocol ranges.
	{in: "192.0.2.1", rng: "documentation"},
	{in: "198.51.100.7", rng: "documentation"},
	{in: "203.0.113.9", rng: "documentation"},
	{in: "2001:db8::1", rng: "documentation"},
	{in: "3fff::1", rng: "documentation"},
	{in: "192.0.0.170", rng: "IETF protocol assignment"},
	{in: "100::1", rng: "discard-only"},
	// Only the IANA registries (through code.dny.dev/ssrf) refuse these.
	{in: "192.31.196.1", rng: "special-purpose"},
	{in: "2001:4:112::1", rng: "special-purpose"},
	{in: "2620:4f:8000::1", rng: "special-purpose"},
	{in: "4000::1", rng: "special-purpose"},
	// Public unicast: allowed either way.
	{in: "93.184.216.34", public: true, private: true},
	{in: "8.8.8.8", public: true, private: true},
	{in: "::ffff:8.8.8.8", public: true, private: true},
	{in: "2606:4700::1111", public: true, private: true},
	{in: "172.32.0.1", public: true, private: true},
	{in: "100.128.0.1", public: true, private: true},
}

func TestCheck(t *testing.T) {
	t.Parallel()
	if len(addrCases) < 30 {
		t.Fatalf("only %d address forms", len(addrCases))
	}
	for _, tc := range addrCases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			a := netip.MustParseAddr(tc.in)
			err := Check(a)
			if tc.public {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tc.in, err)
				}
			} else {
				var ae *AddrError
				if !errors.As(err, &ae) || !errors.Is(err, ErrProhibited) {
					t.Fatalf("Check(%s) = %v, want *AddrError", tc.in, err)
				}
				if ae.Range != tc.rng {
					t.Errorf("Check(%s) range %q, want %q", tc.in, ae.Range, tc.rng)
				}
				if ae.Private != tc.private {
					t.Errorf("Check(%s) Private = %v, want %v", tc.in, ae.Private, tc.private)
				}
				if tc.private != strings.Contains(err.Error(), "allow_private") {
					t.Errorf("Check(%s) message %q should mention allow_private iff private", tc.in, err)
				}
			}
			err = CheckAllowPrivate(a)
			if tc.private && err != nil {
				t.Fatalf("CheckAllowPrivate(%s) = %v, want allowed", tc.in, err)
			}
			if !tc.private && !errors.Is(err, ErrProhibited) {
				t.Fatalf("CheckAllowPrivate(%s) = %v, want refused", tc.in, err)
			}
		})
	}
}

// TestLibraryCoverage records what code.dny.dev/ssrf refuses on its own,
// so an upgrade that changes its tables shows up here: every address
// backlot refuses without allow_private is refused by the library too,
// except where backlot judges an IPv4-mapped address as its IPv4 (the
// library refuses all of ::ffff:0:0/96, even mapped public addresses).
func TestLibraryCoverage(t *testing.T) {
	t.Parallel()
	for _, tc := range addrCases {
		a := netip.MustParseAddr(tc.in)
		libErr := guardian.SafeAddr(a)
		switch {
		case !tc.public && libErr == nil:
			t.Errorf("%s: library allows it; backlot refuses (%s): a gap the range table must keep covering", tc.in, tc.rng)
		case tc.public && libErr != nil && !a.Is4In6():
			t.Errorf("%s: library refuses a public address: %v", tc.in, libErr)
		case tc.public && a.Is4In6() && libErr == nil:
			t.Errorf("%s: library now allows IPv4-mapped addresses; revisit the unmapping note", tc.in)
		}
	}
}

func TestCheckInvalid(t *testing.T) {
	t.Parallel()
	if err := Check(netip.Addr{}); !errors.Is(err, ErrProhibited) {
		t.Fatalf("Check(zero Addr) = %v", err)
	}
	if err := CheckAllowPrivate(netip.Addr{}); !errors.Is(err, ErrProhibited) {
		t.Fatalf("CheckAllowPrivate(zero Addr) = %v", err)
	}
}

// Numeric host names that are not canonical literals: netip refuses to
// parse them, but a resolver (glibc inet_aton) may read them as IPv4.
var numericHosts = []string{
	"2130706433",   // 127.0.0.1 as one decimal number
	"0177.0.0.1",   // octal
	"0x7f.0.0.1",   // hex
	"0x7f000001",   // one hex number
	"017700000001", // one octal number
	"127.1",        // short form
	"127.0.1",      // short form
	"0",            // 0.0.0.0
	"0x0",
	"127.0.0.1.", // trailing dot
	"3232235777", // 192.168.1.1
	"2852039166", // 169.254.169.254
	"0xA9.0xFE.0xA9.0xFE",
	"0251.0376.0251.0376",
	"127.000.000.001",
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	for _, h := range numericHosts {
		if _, err := netip.ParseAddr(h); err == nil {
			t.Errorf("%s: netip parses it; the case does not test what it claims", h)
		}
		var he *HostError
		if err := CheckHost(h); !errors.As(err, &he) || !errors.Is(err, ErrProhibited) {
			t.Errorf("CheckHost(%q) = %v, want *HostError", h, err)
		}
	}
	for _, h := range []string{"api.example.com", "127.0.0.1", "::1", "localhost", "0x7f.example", "1.2.3.4.5", "wepay-stage", "a1"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", h, err)
		}
	}
	if err := CheckHost(""); err == nil {
		t.Error("CheckHost(\"\") = nil")
	}
}
