package netguard

import (
	"fmt"
	"net/url"
	"strings"
)

// PathError is the refusal of a caller's path by JoinPath. errors.Is(err,
// ErrProhibited) holds for it.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%v: path %q: %s", ErrProhibited, e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrProhibited) true.
func (e *PathError) Is(target error) bool { return target == ErrProhibited }

// JoinPath joins callerPath under base's path and returns a new URL with
// base's scheme, user info, host and query; base is not modified.
// callerPath is the escaped (wire) form of the path, as
// (*url.URL).EscapedPath gives it, without query or fragment; a leading
// slash is optional.
//
// It refuses, rather than cleans, anything that could climb out of the base
// path or be read by some server as another host or another path: a
// scheme or "//" authority, "@", backslashes (raw or %5C), an encoded
// slash (%2F), "." and ".." segments in any encoding (including "..;" as
// servlet containers read it, and look-alike full-width dots), empty
// segments, "?" and "#", control characters (raw or encoded), non-ASCII
// bytes, invalid or double percent-encoding (%252e). Refusing is
// deliberate: a caller who sends these is probing, and a cleaned path
// would hide it.
func JoinPath(base *url.URL, callerPath string) (*url.URL, error) {
	if base == nil || base.Host == "" || base.Opaque != "" {
		return nil, fmt.Errorf("join path: base URL must be absolute with a host")
	}
	if err := checkCallerPath(callerPath); err != nil {
		return nil, err
	}
	rel := strings.TrimPrefix(callerPath, "/")
	u := *base
	u.Fragment, u.RawFragment = "", ""
	if u.User != nil {
		user := *u.User
		u.User = &user
	}
	if rel == "" {
		return &u, nil
	}
	escaped := strings.TrimSuffix(base.EscapedPath(), "/") + "/" + rel
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, &PathError{Path: callerPath, Reason: "invalid percent-encoding"}
	}
	u.Path, u.RawPath = p, escaped
	// Belt and braces: whatever the path, the serialised URL must parse
	// back to the same origin.
	back, err := url.Parse(u.String())
	if err != nil || back.Scheme != base.Scheme || back.Host != base.Host || back.User.String() != base.User.String() {
		return nil, &PathError{Path: callerPath, Reason: "would change the URL's origin"}
	}
	return &u, nil
}

// checkCallerPath applies JoinPath's refusals.
func checkCallerPath(p string) error {
	refuse := func(reason string) error { return &PathError{Path: p, Reason: reason} }
	if strings.HasPrefix(p, "//") {
		return refuse("network-path reference")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return refuse("control character")
		case c >= 0x80:
			return refuse("non-ASCII byte (percent-encode it)")
		case c == '\\':
			return refuse("backslash")
		case c == '@':
			return refuse("@ in path")
		case c == '?' || c == '#':
			return refuse("query or fragment in path")
		case c == ':' && !strings.Contains(p[:i], "/"):
			// "http:..." or "javascript:..." read as a scheme.
			return refuse("colon before the first slash (looks like a scheme)")
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return refuse("invalid percent-encoding")
			}
		}
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				continue // a trailing slash is meaningful and harmless
			}
			if len(segs) == 1 {
				continue // the empty path
			}
			return refuse("empty segment")
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return refuse("invalid percent-encoding")
		}
		if strings.ContainsRune(dec, '/') {
			return refuse("encoded slash")
		}
		if strings.ContainsRune(dec, '\\') {
			return refuse("encoded backslash")
		}
		for _, r := range dec {
			if r < 0x20 || r == 0x7f {
				return refuse("encoded control character")
			}
		}
		if hasPercentHex(dec) {
			return refuse("double percent-encoding")
		}
		name, _, _ := strings.Cut(dec, ";")
		if isDots(name) {
			return refuse("dot segment")
		}
	}
	return nil
}

// isDots reports whether s is made only of dots or characters some
// servers normalise to a dot (full-width full stop, one-dot leader,
// small full stop), and is not empty: ".", "..", "．．" and the like.
func isDots(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch r {
		case '.', '\uff0e', '\u2024', '\ufe52':
		default:
			return false
		}
	}
	return true
}

func hasPercentHex(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
