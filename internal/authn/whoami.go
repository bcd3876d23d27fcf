package authn

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/jsonstr"
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
		// A claim encoding/json refuses (NaN, a channel…): WriteJSON fails
		// on it too and gives its error answer.
		httpapi.WriteJSON(w, http.StatusOK, p)
		return
	}
	httpapi.WriteRawJSON(w, http.StatusOK, b)
}

// appendPrincipal appends p as encoding/json would marshal it (same keys,
// order and escaping; nil scopes and claims as [] and {}), without its
// reflection: marshalling the Principal was half of whoami's CPU. ok is
// false for a claim encoding/json refuses.
func appendPrincipal(b []byte, p *auth.Principal) (_ []byte, ok bool) {
	b = append(b, `{"authenticator":`...)
	b = jsonstr.Append(b, p.Authenticator, jsonstr.EncodingJSON)
	b = append(b, `,"subject":`...)
	b = jsonstr.Append(b, p.Subject, jsonstr.EncodingJSON)
	b = append(b, `,"tenant":`...)
	b = jsonstr.Append(b, p.Tenant, jsonstr.EncodingJSON)
	b = append(b, `,"email":`...)
	b = jsonstr.Append(b, p.Email, jsonstr.EncodingJSON)
	b = append(b, `,"scopes":[`...)
	for i, sc := range p.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, sc, jsonstr.EncodingJSON)
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
		b = jsonstr.Append(b, k, jsonstr.EncodingJSON)
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
		return jsonstr.Append(b, x, jsonstr.EncodingJSON), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return jsonstr.AppendFloat(b, x)
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
