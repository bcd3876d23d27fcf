package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies decides a request's client address: the peer address, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right, skipping trusted hops, and the first untrusted address is the
// client. A spoofed header from an untrusted peer is therefore ignored.
type Proxies struct {
	trusted []netip.Prefix
}

// ParseProxies parses CIDRs (a bare address is a /32 or /128).
func ParseProxies(cidrs []string) (*Proxies, error) {
	p := &Proxies{}
	for _, c := range cidrs {
		pfx, err := ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		p.trusted = append(p.trusted, pfx)
	}
	return p, nil
}

// ParsePrefix parses a CIDR or a bare address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Trusted reports whether a is a trusted proxy.
func (p *Proxies) Trusted(a netip.Addr) bool {
	if p == nil {
		return false
	}
	a = a.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address of r.
func (p *Proxies) ClientIP(r *http.Request) netip.Addr {
	peer := PeerAddr(r)
	if !peer.IsValid() || p == nil || len(p.trusted) == 0 || !p.Trusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client // malformed hop: stop at the last address we could trust
			}
			a = a.Unmap()
			client = a
			if !p.Trusted(a) {
				return a
			}
		}
	}
	return client
}

// PeerAddr is the address of the TCP peer.
func PeerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// ClientIP is the client address of r: the one the server middleware
// resolved (Proxies.ClientIP, honouring trusted_proxies) when r went
// through it, else the TCP peer. This is the one rule every part of
// backlot uses (logs, failure limits, allow_ips). Invalid when unknown.
func ClientIP(r *http.Request) netip.Addr {
	if st := StateFrom(r.Context()); st != nil && st.ClientIP.IsValid() {
		return st.ClientIP
	}
	return PeerAddr(r)
}
