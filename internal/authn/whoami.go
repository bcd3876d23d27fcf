package authn

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
)

// GET /auth/whoami: the first call a front-end makes.

// HandleWhoami answers GET /auth/whoami with the caller's Principal,
// trying every configured authenticator: in name order, those that call a
// remote service last.
func (s *Set) HandleWhoami(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	entries := s.whoami
	s.mu.RUnlock()
	p, ok := s.authenticate(w, r, entries, auth.Rule{})
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	b, ok := appendPrincipal(make([]byte, 0, 512), p)
	if !ok {
		// A claim encoding/json refuses (NaN, a channel…): its error answer.
		out := *p
		if out.Scopes == nil {
			out.Scopes = []string{}
		}
		if out.Claims == nil {
			out.Claims = map[string]any{}
		}
		httpapi.WriteJSON(w, http.StatusOK, &out)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// appendPrincipal appends p as encoding/json would marshal it (same keys,
// order and escaping; nil scopes and claims as [] and {}), without its
// reflection: marshalling the Principal was half of whoami's CPU. ok is
// false for a claim encoding/json refuses.
func appendPrincipal(b []byte, p *auth.Principal) (_ []byte, ok bool) {
	b = append(b, `{"authenticator":`...)
	b = appendJSONString(b, p.Authenticator)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, p.Subject)
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, p.Tenant)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, p.Email)
	b = append(b, `,"scopes":[`...)
	for i, sc := range p.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, sc)
	}
	b = append(b, `],"claims":{`...)
	keys := make([]string, 0, 8)
	for k := range p.Claims {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, ok = appendJSONValue(b, p.Claims[k]); !ok {
			return b, false
		}
	}
	return append(b, "}}"...), true
}

// appendJSONValue appends v: the common claim types directly, anything
// else through encoding/json.
func appendJSONValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendJSONString(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return appendJSONFloat(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, false
	}
	return append(b, j...), true
}

// appendJSONFloat formats f as encoding/json does.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with its default
// HTML escaping: <, > and & as \u003c…, U+2028 and U+2029 escaped, invalid
// UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
