package config

import (
	"fmt"
	"net/textproto"
	"strings"
)

// Dedupe kinds: where a webhook delivery's dedupe value comes from.
const (
	DedupeNone   = "none"   // no deduplication
	DedupeHeader = "header" // a request header (header:<name>)
	DedupeJSON   = "json"   // a JSON path into the body (json:<dot.path>)
	DedupeBody   = "body"   // the SHA-256 of the raw body
)

// Dedupe is a webhook's dedupe rule, parsed from its `dedupe` key. This is
// the one place the grammar lives: validation and the ingest both use it.
type Dedupe struct {
	Kind   string   // one of the Dedupe* kinds
	Header string   // canonical header name, for DedupeHeader
	Path   []string // JSON path segments, for DedupeJSON
}

// ParseDedupe parses none, body, header:<name> or json:<dot.path>; "" is
// none.
func ParseDedupe(spec string) (Dedupe, error) {
	switch spec {
	case "", DedupeNone:
		return Dedupe{Kind: DedupeNone}, nil
	case DedupeBody:
		return Dedupe{Kind: DedupeBody}, nil
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case kind == DedupeHeader && isToken(arg):
		return Dedupe{Kind: DedupeHeader, Header: textproto.CanonicalMIMEHeaderKey(arg)}, nil
	case kind == DedupeJSON && arg != "" && !strings.ContainsAny(arg, " \t"):
		parts := strings.Split(arg, ".")
		for _, s := range parts {
			if s == "" {
				return Dedupe{}, fmt.Errorf("empty segment in JSON path %q", clip(arg))
			}
		}
		return Dedupe{Kind: DedupeJSON, Path: parts}, nil
	}
	return Dedupe{}, fmt.Errorf("want none, header:<name>, json:<path> or body, got %q", clip(spec))
}

// DedupeDefault is the dedupe rule of each signature scheme's senders,
// used when a webhook sets none.
func DedupeDefault(scheme string) string {
	switch strings.ToLower(scheme) {
	case SchemeStandard:
		return "header:webhook-id"
	case SchemeGitHub:
		return "header:X-GitHub-Delivery"
	case SchemeShopify:
		return "header:X-Shopify-Webhook-Id"
	case SchemeStripe:
		return "json:id"
	}
	return DedupeNone
}
