package config

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// RouteMatch is a parsed routes[].match: a net/http pattern that names a
// method.
type RouteMatch struct {
	Method string
	Path   string
	// Wildcards are the names of the {name} and {name...} segments, in
	// order ({$} is not a wildcard).
	Wildcards []string
	// Rest is the name of a final {name...} wildcard, whose value may span
	// several segments; "" when there is none.
	Rest string
}

// ParseRouteMatch checks that m is a net/http pattern ("POST /api/x",
// "GET /api/checkout/{id}") with an upper-case method and no host, and
// returns its parts. It asks net/http itself (which panics on a pattern it
// cannot read), so what passes here registers at start-up.
func ParseRouteMatch(m string) (rm RouteMatch, err error) {
	method, path, ok := strings.Cut(m, " ")
	path = strings.TrimLeft(path, " \t")
	if !ok || !isToken(method) || strings.ToUpper(method) != method || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t") {
		return rm, fmt.Errorf(`want "METHOD /path", e.g. "POST /api/account", got %q`, clip(m))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a valid net/http pattern: %v", p)
		}
	}()
	http.NewServeMux().Handle(method+" "+path, http.NotFoundHandler())
	rm = RouteMatch{Method: method, Path: path}
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			inner := strings.Trim(seg, "{}")
			name := strings.TrimSuffix(inner, "...")
			if name != "$" {
				rm.Wildcards = append(rm.Wildcards, name)
			}
			if name != inner {
				rm.Rest = name
			}
		}
	}
	return rm, nil
}

// PathPart is one piece of a parsed routes[].path template: literal text
// (already in escaped, wire form) or a wildcard to substitute.
type PathPart struct {
	Literal  string
	Wildcard string // the match wildcard's name when not a literal
}

// ParsePathTemplate splits a routes[].path template ("/checkout/{id}")
// into parts and checks each {name} is a whole segment naming one of
// wildcards. A literal must be a valid escaped path.
func ParsePathTemplate(tmpl string, wildcards []string) ([]PathPart, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, fmt.Errorf("must start with /")
	}
	if strings.ContainsAny(tmpl, "?# \t") {
		return nil, fmt.Errorf("want a path without query, fragment or spaces, got %q", clip(tmpl))
	}
	var parts []PathPart
	segs := strings.Split(tmpl, "/")
	for i, seg := range segs {
		if i > 0 {
			parts = append(parts, PathPart{Literal: "/"})
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			name := strings.TrimSuffix(strings.Trim(seg, "{}"), "...")
			found := false
			for _, w := range wildcards {
				found = found || w == name
			}
			if !found {
				have := "match has none"
				if len(wildcards) > 0 {
					have = "match has " + strings.Join(wildcards, ", ")
				}
				return nil, fmt.Errorf("{%s} is not a wildcard of match (%s)", name, have)
			}
			parts = append(parts, PathPart{Wildcard: name})
			continue
		}
		if strings.ContainsAny(seg, "{}") {
			return nil, fmt.Errorf("a wildcard must be a whole segment, got %q", clip(seg))
		}
		if _, err := url.PathUnescape(seg); err != nil {
			return nil, fmt.Errorf("invalid percent-encoding in %q", clip(seg))
		}
		if seg != "" {
			parts = append(parts, PathPart{Literal: seg})
		}
	}
	return parts, nil
}
