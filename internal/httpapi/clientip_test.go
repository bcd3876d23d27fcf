package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: whatever the peer, the trusted proxies and the
// X-Forwarded-For lines, the client address is the peer or an address from
// the header; a header is read only behind a trusted peer; an address left
// of a malformed entry is never reached; the result is a trusted proxy only
// when every address it could have chosen is trusted; and otherwise it is
// the rightmost untrusted address.
func FuzzClientIP(f *testing.F) {
	seeds := []struct{ peer, trusted, xff string }{
		{"203.0.113.9:1234", "10.0.0.0/8", "1.2.3.4"},
		{"10.1.2.3:1234", "10.0.0.0/8;192.168.1.1", "6.6.6.6, 198.51.100.7, 10.9.9.9"},
		{"192.168.1.1:80", "10.0.0.0/8;192.168.1.1", "6.6.6.6\n198.51.100.7"},
		{"10.1.2.3:1234", "10.0.0.0/8", "10.2.2.2"},
		{"10.1.2.3:1234", "10.0.0.0/8", "6.6.6.6, garbage, 10.4.4.4"},
		{"[::ffff:10.0.0.1]:80", "10.0.0.0/8", "::ffff:10.0.0.2, 2001:db8::1"},
		{"[2001:db8::1]:443", "2001:db8::/32", "fe80::1%eth0, 2001:db8::5"},
		{"garbage", "0.0.0.0/0", "1.1.1.1"},
		{"10.0.0.1:1", "0.0.0.0/0;::/0", ",, ,"},
	}
	for _, s := range seeds {
		f.Add(s.peer, s.trusted, s.xff)
	}
	f.Fuzz(func(t *testing.T, peer, trustedList, xff string) {
		var prefixes []netip.Prefix
		var cidrs []string
		for _, c := range strings.Split(trustedList, ";") {
			if p, err := ParsePrefix(c); err == nil {
				prefixes = append(prefixes, p)
				cidrs = append(cidrs, c)
			}
		}
		proxies, err := ParseProxies(cidrs)
		if err != nil {
			t.Fatalf("ParseProxies refused entries ParsePrefix accepted: %v", err)
		}
		trusted := func(a netip.Addr) bool {
			for _, p := range prefixes {
				if p.Contains(a.Unmap()) {
					return true
				}
			}
			return false
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		var hops []string
		for _, line := range strings.Split(xff, "\n") {
			r.Header.Add("X-Forwarded-For", line)
			hops = append(hops, strings.Split(line, ",")...)
		}
		got := proxies.ClientIP(r)
		p := PeerAddr(r)
		if !p.IsValid() || !trusted(p) {
			if got != p {
				t.Fatalf("untrusted or invalid peer %q: got %v, want the peer %v", peer, got, p)
			}
			return
		}
		// The well-formed suffix: addresses right of the last malformed entry.
		var suffix []netip.Addr // right to left
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			suffix = append(suffix, a.Unmap())
		}
		inSuffix := false
		for _, a := range suffix {
			if a == got {
				inSuffix = true
			}
		}
		if got != p && !inSuffix {
			t.Fatalf("peer %v, XFF %q: got %v, neither the peer nor an address right of every malformed entry", p, xff, got)
		}
		for _, a := range suffix {
			if !trusted(a) {
				if got != a {
					t.Fatalf("peer %v, XFF %q: got %v, want the rightmost untrusted %v", p, xff, got, a)
				}
				return
			}
		}
		// Every candidate is trusted: the result is one of them (the
		// leftmost we could read), and being trusted is then unavoidable.
		if !trusted(got) {
			t.Fatalf("peer %v, XFF %q: got untrusted %v where all candidates are trusted", p, xff, got)
		}
	})
}
