// Package netguard is backlot's rule against server-side request forgery:
// which addresses an upstream may be dialled at, checked when the
// connection is made (after DNS resolution, so a name that rebinds between
// a check and the dial cannot bypass it), an HTTP transport and client
// built on that dialer, and a path join that can never move a request to
// another host.
//
// The address rule starts from code.dny.dev/ssrf, whose deny lists are
// generated from the IANA IPv4 and IPv6 special-purpose address
// registries, and adds in one table (ranges below) the forms that library
// judges differently or not at all: IPv4-mapped IPv6 judged as the IPv4
// address it carries, named reasons for every refusal, and the narrower
// set that allow_private opens.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"

	"code.dny.dev/ssrf"
)

// ErrProhibited is matched (errors.Is) by every refusal of an address or a
// host by this package.
var ErrProhibited = errors.New("prohibited destination")

// AddrError is the refusal of one address. errors.Is(err, ErrProhibited)
// holds for it.
type AddrError struct {
	Addr netip.Addr // the address as given (before unmapping)
	// Range names the class the address fell in ("loopback",
	// "link-local", "6to4", ...), or "special-purpose" when only the IANA
	// registries (via code.dny.dev/ssrf) refused it.
	Range string
	// Private is true when allow_private would have let the address
	// through; it lets callers say so in their error message.
	Private bool
}

func (e *AddrError) Error() string {
	s := fmt.Sprintf("%v: %s is a %s address", ErrProhibited, e.Addr, e.Range)
	if e.Private {
		s += " (reachable only with allow_private)"
	}
	return s
}

// Is makes errors.Is(err, ErrProhibited) true.
func (e *AddrError) Is(target error) bool { return target == ErrProhibited }

// class is one named address range of the table below.
type class struct {
	prefix netip.Prefix
	name   string
	// private marks the ranges that allow_private opens: loopback and the
	// networks a self-hosted middleware or sidecar plausibly lives on.
	private bool
}

// ranges is the one place where backlot's rule goes beyond, or names more
// precisely, what code.dny.dev/ssrf refuses. It is searched in order, so
// more specific prefixes come before the ones containing them.
//
// Decisions, each deliberate:
//   - allow_private opens loopback, RFC 1918, CGNAT (100.64.0.0/10, used by
//     Tailscale and carrier NAT), IPv6 unique-local (fc00::/7) and the
//     benchmarking range 198.18.0.0/15 (used by fake-IP DNS in local
//     proxies). Nothing else.
//   - Never dialled, even with allow_private: the unspecified address and
//     0.0.0.0/8 (Linux connects 0.0.0.0 to the local host, a known way
//     around loopback filters; write 127.0.0.1 if you mean it), link-local
//     (169.254.0.0/16, fe80::/10) including the cloud metadata addresses,
//     the known metadata addresses inside otherwise private ranges
//     (AWS fd00:ec2::254, Alibaba 100.100.100.200), multicast, broadcast
//     and the reserved 240.0.0.0/4, documentation ranges, IETF protocol
//     assignments, and every IPv6 transition form that embeds or tunnels
//     to an IPv4 address (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
//     2002::/16, Teredo 2001::/32, IPv4-compatible ::/96): a private
//     upstream is addressed directly, so these only serve to smuggle.
//     This means an IPv6-only host behind DNS64 cannot reach IPv4-only
//     upstreams through NAT64; that is a known limitation.
//   - IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as a.b.c.d: the kernel
//     dials it as that IPv4 address.
var ranges = []class{
	// Metadata services that sit inside ranges allow_private opens.
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata", false},
	{netip.MustParsePrefix("100.100.100.200/32"), "cloud metadata", false},
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata", false},

	// IPv4.
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (unspecified)", false},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", true},
	{netip.MustParsePrefix("10.0.0.0/8"), "private", true},
	{netip.MustParsePrefix("172.16.0.0/12"), "private", true},
	{netip.MustParsePrefix("192.168.0.0/16"), "private", true},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)", true},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking", true},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local", false},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment", false},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation", false},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation", false},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation", false},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast", false},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", false},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast", false},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved", false},

	// IPv6.
	{netip.MustParsePrefix("::/128"), "unspecified", false},
	{netip.MustParsePrefix("::1/128"), "loopback", true},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible", false},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64", false},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 (local use)", false},
	{netip.MustParsePrefix("100::/64"), "discard-only", false},
	{netip.MustParsePrefix("2001::/32"), "Teredo", false},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation", false},
	{netip.MustParsePrefix("3fff::/20"), "documentation", false},
	{netip.MustParsePrefix("2002::/16"), "6to4", false},
	{netip.MustParsePrefix("5f00::/16"), "SRv6 SID", false},
	{netip.MustParsePrefix("fc00::/7"), "unique-local (private)", true},
	{netip.MustParsePrefix("fe80::/10"), "link-local", false},
	{netip.MustParsePrefix("fec0::/10"), "site-local", false},
	{netip.MustParsePrefix("ff00::/8"), "multicast", false},
}

// guardian is code.dny.dev/ssrf's checker with ports and networks left to
// the caller: it is only asked about addresses. It is built once and never
// modified (a Guardian is immutable after ssrf.New).
var guardian = ssrf.New(ssrf.WithAnyPort(), ssrf.WithAnyNetwork())

// Check reports whether addr may be dialled by an upstream that does not
// have allow_private: nil for a public unicast address, an *AddrError
// (errors.Is ErrProhibited) otherwise. It is a pure function.
func Check(addr netip.Addr) error { return check(addr, false) }

// CheckAllowPrivate is Check for an upstream with allow_private: loopback
// and private networks pass, addresses that are never a valid target (see
// the package's range table) are still refused.
func CheckAllowPrivate(addr netip.Addr) error { return check(addr, true) }

func check(addr netip.Addr, allowPrivate bool) error {
	if !addr.IsValid() {
		return &AddrError{Addr: addr, Range: "invalid"}
	}
	// A zone does not change where the address is; the mapped form is
	// dialled as the IPv4 address it carries.
	a := addr.WithZone("").Unmap()
	for _, c := range ranges {
		if c.prefix.Contains(a) {
			if c.private && allowPrivate {
				return nil
			}
			return &AddrError{Addr: addr, Range: c.name, Private: c.private}
		}
	}
	// The registries, as code.dny.dev/ssrf has them (for IPv6: anything
	// outside global unicast 2000::/3 too), catch whatever the table does
	// not name.
	if err := guardian.SafeAddr(a); err != nil {
		return &AddrError{Addr: addr, Range: "special-purpose"}
	}
	return nil
}
