package authn

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestStripField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, value, out string
		ok             bool
	}{
		{in: `{"csrf_token":"abc"}`, value: "abc", out: `{}`, ok: true},
		{in: `{"a":1,"csrf_token":"abc","b":[1,{"c":null}]}`, value: "abc", out: `{"a":1,"b":[1,{"c":null}]}`, ok: true},
		{in: ` { "a" : 1.50 , "csrf_token" : "x\u0041" } `, value: "xA", out: `{"a":1.50}`, ok: true},
		{in: `{"a\"b":"c","csrf_token":"t"}`, value: "t", out: `{"a\"b":"c"}`, ok: true},
		{in: `{"a":1}`},                       // no token
		{in: `{"csrf_token":1}`},              // not a string
		{in: `{"csrf_token":"t"} {}`},         // trailing data
		{in: `{"csrf_token":"t"`},             // truncated
		{in: `["csrf_token","t"]`},            // not an object
		{in: `"csrf_token"`},                  // not an object
		{in: ``},                              // empty
		{in: `{"csrf_token":"t",}`},           // trailing comma
		{in: `{"nested":{"csrf_token":"t"}}`}, // only the top level counts
	}
	for _, tc := range cases {
		v, out, ok := stripField([]byte(tc.in), CSRFField)
		if ok != tc.ok || v != tc.value || string(out) != tc.out {
			t.Errorf("stripField(%s) = %q, %s, %v; want %q, %s, %v", tc.in, v, out, ok, tc.value, tc.out, tc.ok)
		}
	}
}

// FuzzStripField checks that a stripped body is the same JSON object less
// the one field, and that stripping never panics.
func FuzzStripField(f *testing.F) {
	for _, s := range []string{`{"csrf_token":"abc"}`, `{"a":1,"csrf_token":"x","b":{"c":[1,2]}}`, `{"a":1}`, `[]`, `{"csrf_token":"a","csrf_token":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, out, ok := stripField(b, CSRFField)
		if !ok {
			return
		}
		var in map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", b, err)
		}
		if got, _ := in[CSRFField].(string); got != v {
			t.Fatalf("value %q, encoding/json sees %q", v, got)
		}
		delete(in, CSRFField)
		var rest map[string]any
		dec = json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&rest); err != nil {
			t.Fatalf("stripped body %q is not JSON: %v", out, err)
		}
		if !reflect.DeepEqual(in, rest) {
			t.Fatalf("stripped %q to %q: %v != %v", b, out, rest, in)
		}
	})
}

func TestCSRFTokenBoundToSession(t *testing.T) {
	t.Parallel()
	a := bytes.Repeat([]byte{1}, sessionIDBytes)
	b := bytes.Repeat([]byte{2}, sessionIDBytes)
	k1 := bytes.Repeat([]byte{7}, 32)
	k2 := bytes.Repeat([]byte{8}, 32)
	for _, key := range [][]byte{nil, k1} {
		if csrfToken(key, a) != csrfToken(key, a) {
			t.Fatal("token is not deterministic")
		}
		if csrfToken(key, a) == csrfToken(key, b) {
			t.Fatal("two sessions share a token")
		}
		if len(csrfToken(key, a)) != 43 {
			t.Fatalf("token length %d, want 43 (32 bytes base64url)", len(csrfToken(key, a)))
		}
	}
	// With a server key, the session id alone (a leaked log line, a copy
	// of the database holds only its hash anyway) does not give the token,
	// and another deployment's key gives another one.
	if csrfToken(k1, a) == csrfToken(nil, a) || csrfToken(k1, a) == csrfToken(k2, a) {
		t.Fatal("the server key does not change the token")
	}
}
