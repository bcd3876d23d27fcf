package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dial and transport defaults.
const (
	// DialTimeoutDefault bounds one connection attempt.
	DialTimeoutDefault = 10 * time.Second
	// KeepAliveDefault is the TCP keep-alive period.
	KeepAliveDefault = 30 * time.Second
)

// Resolver answers host lookups. *net.Resolver satisfies it; tests supply
// their own so that no DNS packet is sent.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Dialer (and the Transport and Client built on it).
type Options struct {
	// AllowPrivate lets the dialer reach loopback and private networks
	// (see CheckAllowPrivate). Default false.
	AllowPrivate bool
	// Resolver resolves host names. Default net.DefaultResolver.
	Resolver Resolver
	// DialTimeout bounds one connection attempt. Default
	// DialTimeoutDefault (10 s).
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive period. Default KeepAliveDefault
	// (30 s).
	KeepAlive time.Duration
}

func (o Options) withDefaults() Options {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DialTimeoutDefault
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = KeepAliveDefault
	}
	return o
}

// HostError is the refusal of a host name before any lookup: a name that
// some resolvers read as a numeric IPv4 address (2130706433, 0x7f.1,
// 0177.0.0.1, 127.1) is ambiguous, so it is refused rather than handed to
// a resolver whose reading we cannot predict. errors.Is(err,
// ErrProhibited) holds for it.
type HostError struct {
	Host   string
	Reason string
}

func (e *HostError) Error() string {
	return fmt.Sprintf("%v: host %q: %s", ErrProhibited, e.Host, e.Reason)
}

// Is makes errors.Is(err, ErrProhibited) true.
func (e *HostError) Is(target error) bool { return target == ErrProhibited }

// CheckHost refuses host names that are not a canonical IP literal but
// that a resolver (glibc's inet_aton, browsers, curl) may read as an IPv4
// address: all-numeric labels in decimal, octal or hex, 1 to 4 of them,
// with or without a trailing dot. Canonical literals and ordinary names
// pass; their addresses are judged when dialling. Config validation may
// call it to fail early; the Dialer calls it on every dial.
func CheckHost(host string) error {
	h := strings.TrimSuffix(host, ".")
	if h == "" {
		return &HostError{Host: host, Reason: "empty host"}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	labels := strings.Split(h, ".")
	if len(labels) > 4 {
		return nil
	}
	for _, l := range labels {
		if !numericLabel(l) {
			return nil
		}
	}
	return &HostError{Host: host, Reason: "numeric host that is not a canonical IP address"}
}

// numericLabel reports whether l is a number as inet_aton reads one:
// decimal, octal (leading 0) or hex (0x prefix, possibly with no digits).
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	ll := strings.ToLower(l)
	if strings.HasPrefix(ll, "0x") {
		for _, c := range ll[2:] {
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
		return true
	}
	for _, c := range ll {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Dialer dials TCP connections under the SSRF rule: the host is resolved
// with the configured Resolver, every answer is checked, and the socket's
// Control hook checks the literal address once more right before connect,
// so what is dialled is what was checked. It is safe for concurrent use.
type Dialer struct {
	opts Options
	net  net.Dialer
}

// NewDialer returns a Dialer for opts.
func NewDialer(opts Options) *Dialer {
	opts = opts.withDefaults()
	d := &Dialer{opts: opts}
	d.net = net.Dialer{
		Timeout:   opts.DialTimeout,
		KeepAlive: opts.KeepAlive,
		Control:   d.control,
	}
	return d
}

// check applies the rule for this dialer's allow_private setting.
func (d *Dialer) check(a netip.Addr) error {
	return check(a, d.opts.AllowPrivate)
}

// control is the net.Dialer Control hook. It receives the numeric address
// the socket is about to connect to, after any resolution.
func (d *Dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial %s %q: not an address and port: %v", ErrProhibited, network, address, err)
	}
	return d.check(ap.Addr())
}

// DialContext dials address ("host:port") on network ("tcp", "tcp4" or
// "tcp6"). The host is resolved first; if any of its addresses is
// prohibited the dial is refused (a name whose answers mix public and
// private addresses is refused rather than half-trusted). Otherwise the
// addresses are tried in order until one connects.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: network %q is not tcp", ErrProhibited, network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial %s: port %q: %w", address, portStr, err)
	}
	addrs, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := d.check(a); err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
	}
	var errs []error
	for _, a := range addrs {
		conn, err := d.net.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s: %w", address, errors.Join(errs...))
}

// resolve turns host into addresses: an IP literal as is, anything else
// through the Resolver, after refusing ambiguous numeric names.
func (d *Dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if err := CheckHost(host); err != nil {
		return nil, err
	}
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	addrs, err := d.opts.Resolver.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// Transport returns an *http.Transport that dials through a Dialer for
// opts and ignores proxy environment variables (Proxy is nil: a proxy
// would dial the upstream itself, outside the rule). TLS verifies the
// certificate against the URL's host name, not the resolved address.
func Transport(opts Options) *http.Transport {
	d := NewDialer(opts)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// Client returns an *http.Client on Transport(opts) that never follows a
// redirect: the 3xx answer itself is returned, because following it would
// let an upstream send backlot (and the credential it added) anywhere.
// Set Timeout on the result, or use request contexts, to bound requests.
func Client(opts Options) *http.Client {
	return &http.Client{
		Transport: Transport(opts),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
