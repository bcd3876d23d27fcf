package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/backlothq/backlot/config"
)

// MaxDedupeValue is the longest dedupe value accepted, in bytes. A longer
// one (or one that is not UTF-8) is a defect of the delivery, refused with
// 400, rather than a key the store would fail to index.
const MaxDedupeValue = 1000

// deduper extracts a delivery's dedupe value: a header, a JSON path into
// the stored payload, the SHA-256 of the raw body, or nothing.
type deduper struct {
	header string   // canonical header name, or ""
	path   []string // JSON path, or nil
	body   bool     // hex SHA-256 of the raw body
}

// newDeduper builds the extractor of a parsed rule.
func newDeduper(d config.Dedupe) deduper {
	switch d.Kind {
	case config.DedupeHeader:
		return deduper{header: d.Header}
	case config.DedupeJSON:
		return deduper{path: d.Path}
	case config.DedupeBody:
		return deduper{body: true}
	}
	return deduper{}
}

// value returns the dedupe value of a delivery, or "" when the rule is
// none or the delivery does not carry one (then it is not deduplicated).
// raw is the body as received, payload what will be stored.
func (d deduper) value(h http.Header, raw, payload []byte) string {
	switch {
	case d.header != "":
		return strings.TrimSpace(header(h, d.header))
	case d.path != nil:
		return jsonLookup(payload, d.path)
	case d.body:
		sum := sha256.Sum256(raw)
		return hex.EncodeToString(sum[:])
	}
	return ""
}

// validDedupeValue reports whether v can be a dedupe key: at most
// MaxDedupeValue bytes of UTF-8.
func validDedupeValue(v string) bool {
	return len(v) <= MaxDedupeValue && utf8.ValidString(v)
}

// jsonLookup follows path through nested objects of a valid JSON document
// and returns the string (unquoted) or number (as written) found there, or
// "" for anything else. It scans instead of unmarshalling so a large body
// costs no allocations beyond the result.
func jsonLookup(doc []byte, path []string) string {
	i := skipWS(doc, 0)
	for _, want := range path {
		if i >= len(doc) || doc[i] != '{' {
			return ""
		}
		i++
		found := false
		for {
			i = skipWS(doc, i)
			if i >= len(doc) || doc[i] == '}' {
				return ""
			}
			if doc[i] == ',' {
				i = skipWS(doc, i+1)
			}
			ks := i
			ke := skipValue(doc, i)
			if ke < 0 {
				return ""
			}
			i = skipWS(doc, ke)
			if i >= len(doc) || doc[i] != ':' {
				return ""
			}
			i = skipWS(doc, i+1)
			if keyEquals(doc[ks:ke], want) {
				found = true
				break
			}
			if i = skipValue(doc, i); i < 0 {
				return ""
			}
		}
		if !found {
			return ""
		}
	}
	if i >= len(doc) {
		return ""
	}
	end := skipValue(doc, i)
	if end < 0 {
		return ""
	}
	v := doc[i:end]
	switch c := v[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		return string(v)
	}
	return ""
}

// keyEquals compares a quoted JSON key with want, unescaping only when the
// key has escapes.
func keyEquals(quoted []byte, want string) bool {
	if len(quoted) < 2 {
		return false
	}
	raw := quoted[1 : len(quoted)-1]
	for _, c := range raw {
		if c == '\\' {
			var s string
			return json.Unmarshal(quoted, &s) == nil && s == want
		}
	}
	return string(raw) == want
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i, or
// -1. The document is already known to be valid JSON.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			case '"':
				j := skipValue(b, i)
				if j < 0 {
					return -1
				}
				i = j - 1
			}
		}
		return -1
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}
