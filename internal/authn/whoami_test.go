package authn

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/backlothq/backlot/auth"
)

// TestAppendPrincipal: the hand-written encoding of whoami's answer is
// byte for byte what encoding/json writes, or declines where it fails.
func TestAppendPrincipal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    auth.Principal
		ok   bool
	}{
		{"empty", auth.Principal{}, true},
		{"plain", auth.Principal{Authenticator: "ext", Subject: "abf32c52-801c-4a40-8da0-82096fe455dd", Tenant: "PARTNER_ID",
			Email: "a@example.com", Scopes: []string{"read", "write"},
			Claims: map[string]any{"exp": 1.764e9, "iat": float64(1764000000), "name": "Ada", "admin": true, "nil": nil}}, true},
		{"escapes", auth.Principal{Subject: "a\"b\\c\n\r\t\x00\x1f<script>&amp;\u2028\u2029é😀",
			Email: "bad \xff\xfe utf8", Claims: map[string]any{"k\"<": "v\x7f"}}, true},
		{"floats", auth.Principal{Claims: map[string]any{"a": 1e21, "b": 1e-7, "c": 123456789.125, "d": -0.0, "e": 1e20,
			"f": 0.000001, "g": 5e-324, "h": math.MaxFloat64, "i": 3, "j": int64(-7)}}, true},
		{"nested", auth.Principal{Claims: map[string]any{"roles": []any{"a", 1.5, map[string]any{"z": 1.0, "a": "<"}},
			"num": json.Number("12.50"), "obj": map[string]any{"x": []string{"y"}}}}, true},
		{"nil scopes and claims", auth.Principal{Subject: "s"}, true},
		{"nan", auth.Principal{Claims: map[string]any{"x": math.NaN()}}, false},
		{"inf", auth.Principal{Claims: map[string]any{"x": math.Inf(-1)}}, false},
		{"unmarshalable", auth.Principal{Claims: map[string]any{"x": make(chan int)}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, ok := appendPrincipal(nil, &c.p)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			want := c.p
			if want.Scopes == nil {
				want.Scopes = []string{}
			}
			if want.Claims == nil {
				want.Claims = map[string]any{}
			}
			exp, err := json.Marshal(&want)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(exp) {
				t.Fatalf("got  %s\nwant %s", got, exp)
			}
		})
	}
}

type nanAuth struct{}

func (nanAuth) Name() string { return "nan" }
func (nanAuth) Type() string { return "custom" }
func (nanAuth) Authenticate(*http.Request) (*auth.Principal, error) {
	return &auth.Principal{Subject: "s", Claims: map[string]any{"x": math.NaN()}}, nil
}

// TestWhoamiUnencodableClaim: a Principal encoding/json cannot write is
// answered as WriteJSON answers it, 500 internal_error.
func TestWhoamiUnencodableClaim(t *testing.T) {
	t.Parallel()
	s, err := NewSet(nil, nil, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(nanAuth{})
	w := httptest.NewRecorder()
	s.HandleWhoami(w, httptest.NewRequest("GET", "/auth/whoami", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"error":"internal_error"`) {
		t.Fatalf("got %d %s, want 500 internal_error", w.Code, w.Body.String())
	}
}
