package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	p, err := ParseProxies([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy header", "203.0.113.9:1234", nil, "203.0.113.9"},
		{"spoofed header from untrusted peer ignored", "203.0.113.9:1234", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted proxy: client from header", "10.1.2.3:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"chain: rightmost untrusted wins", "10.1.2.3:1234", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several header lines", "192.168.1.1:80", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},
		{"all trusted: leftmost", "10.1.2.3:1234", []string{"10.2.2.2"}, "10.2.2.2"},
		{"malformed hop stops", "10.1.2.3:1234", []string{"6.6.6.6, garbage"}, "10.1.2.3"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := p.ClientIP(r).String(); got != tc.want {
				t.Fatalf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestAsError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"typed", E(409, "conflict", "x"), 409, "conflict"},
		{"wrapped typed", fmt.Errorf("doing x: %w", E(400, "bad", "y")), 400, "bad"},
		{"max bytes", &http.MaxBytesError{Limit: 10}, 413, "body_too_large"},
		{"plain error is internal", errors.New("db exploded: password=hunter2"), 500, "internal_error"},
	}
	for _, tc := range tests {
		e := AsError(tc.err)
		if e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%s: got %d %s", tc.name, e.Status, e.Code)
		}
	}
	// The cause of an internal error never reaches the client.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	st := &State{ID: "rid"}
	r = r.WithContext(WithState(r.Context(), st))
	WriteError(w, r, errors.New("db exploded: password=hunter2"))
	if strings.Contains(w.Body.String(), "hunter2") {
		t.Fatalf("internal detail leaked: %s", w.Body.String())
	}
	if !strings.Contains(st.ErrDetail, "hunter2") {
		t.Fatal("cause not kept for the log line")
	}
	var env Envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.RequestID != "rid" || env.ErrorCode != 500 {
		t.Fatalf("envelope %s (%v)", w.Body.String(), err)
	}
}

func TestDecodeJSONStrict(t *testing.T) {
	t.Parallel()
	type body struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name, ctype, body string
		wantStatus        int
	}{
		{"ok", "application/json", `{"name":"a"}`, 0},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, 0},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, 400},
		{"empty", "application/json", ``, 400},
		{"trailing", "application/json", `{"name":"a"}x`, 400},
		{"wrong type", "application/json", `{"name":1}`, 400},
		{"form content type", "application/x-www-form-urlencoded", `name=a`, 415},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ctype)
		var b body
		err := DecodeJSON(r, &b)
		if tc.wantStatus == 0 {
			if err != nil || b.Name != "a" {
				t.Errorf("%s: %v %+v", tc.name, err, b)
			}
			continue
		}
		if got := AsError(err).Status; got != tc.wantStatus {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, got, tc.wantStatus, err)
		}
	}
}

// TestWriteErrorOriginalVerbatim: an upstream's error body reaches the
// caller byte for byte (spacing, key order, <, > and &), and a body that is
// not JSON is left out rather than breaking the envelope.
func TestWriteErrorOriginalVerbatim(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ original, want string }{
		{`{"error": "invalid_request",  "b":1, "a":"<x&y>"}`, `,"original_error":{"error": "invalid_request",  "b":1, "a":"<x&y>"}}`},
		{"  [1, 2]\n", `,"original_error":[1, 2]}`},
		{`{"broken":`, `"request_id":""}`},
	} {
		w := httptest.NewRecorder()
		WriteError(w, httptest.NewRequest("GET", "/", nil), &Error{Status: 422, Code: "upstream_refused", Original: json.RawMessage(c.original)})
		body := strings.TrimSuffix(w.Body.String(), "\n")
		if w.Code != 422 || !strings.HasSuffix(body, c.want) || !json.Valid([]byte(body)) {
			t.Errorf("original %q: %d %s, want it to end with %s", c.original, w.Code, body, c.want)
		}
	}
}
