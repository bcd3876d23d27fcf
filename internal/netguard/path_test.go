package netguard

import (
	"errors"
	"net/url"
	"testing"
)

func TestJoinPathHostile(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://api.example.com/v2")
	hostile := []string{
		"//evil.example",
		"//evil.example/v2/user",
		"///evil.example",
		"@evil.example",
		"/user@evil.example",
		"http://evil.example/",
		"https:evil.example",
		"javascript:alert(1)",
		"/..",
		"/../admin",
		"/user/../../admin",
		"..",
		"./user",
		"/%2e%2e/admin",
		"/%2E%2E/admin",
		"/.%2e/admin",
		"/%2e./admin",
		"/%2e/admin",
		"/..;/admin",
		"/%2e%2e;x/admin",
		"/%EF%BC%8E%EF%BC%8E/admin", // full-width dots
		"/a%2Fb",
		"/a%2fb",
		"/%2F%2Fevil.example",
		"/a\\b",
		"\\\\evil.example",
		"/a%5Cb",
		"/a%5c..%5cb",
		"/a\x00b",
		"/a%00b",
		"/a\r\nHost: evil",
		"/a%0d%0aHost:%20evil",
		"/a%7Fb",
		"/a\tb",
		"/user?x=1",
		"/user#frag",
		"/a//b",
		"/%252e%252e/admin",
		"/%25%32%65",
		"/a%zz",
		"/a%2",
		"/caf\xc3\xa9",
	}
	if len(hostile) < 15 {
		t.Fatalf("only %d hostile forms", len(hostile))
	}
	for _, p := range hostile {
		u, err := JoinPath(base, p)
		var pe *PathError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProhibited) {
			t.Errorf("JoinPath(%q) = %v, %v; want *PathError", p, u, err)
		}
	}
	if base.String() != "https://api.example.com/v2" {
		t.Fatalf("base modified: %s", base)
	}
}

func TestJoinPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		base, path, want string
	}{
		{"https://api.example.com/v2", "/user", "https://api.example.com/v2/user"},
		{"https://api.example.com/v2/", "/user", "https://api.example.com/v2/user"},
		{"https://api.example.com/v2", "user", "https://api.example.com/v2/user"},
		{"https://api.example.com/v2", "/checkout/refund", "https://api.example.com/v2/checkout/refund"},
		{"https://api.example.com/v2", "/account/", "https://api.example.com/v2/account/"},
		{"https://api.example.com/v2", "", "https://api.example.com/v2"},
		{"https://api.example.com/v2", "/", "https://api.example.com/v2"},
		{"https://api.example.com", "/user", "https://api.example.com/user"},
		{"https://api.example.com/", "/user", "https://api.example.com/user"},
		{"https://api.example.com/v2?api-version=1", "/user", "https://api.example.com/v2/user?api-version=1"},
		{"https://u:p@api.example.com:8443/v2", "/user", "https://u:p@api.example.com:8443/v2/user"},
		{"https://api.example.com/v2", "/files/a%20b", "https://api.example.com/v2/files/a%20b"},
		{"https://api.example.com/v2", "/files/a.b..c", "https://api.example.com/v2/files/a.b..c"},
		{"https://api.example.com/v2", "/files/...x", "https://api.example.com/v2/files/...x"},
		{"https://api.example.com/v2", "/user/x:y", "https://api.example.com/v2/user/x:y"},
		{"http://[::1]:8080/api", "/user", "http://[::1]:8080/api/user"},
	}
	for _, tc := range cases {
		base, err := url.Parse(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		u, err := JoinPath(base, tc.path)
		if err != nil {
			t.Errorf("JoinPath(%s, %q): %v", tc.base, tc.path, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("JoinPath(%s, %q) = %s, want %s", tc.base, tc.path, u, tc.want)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.User.String() != base.User.String() {
			t.Errorf("JoinPath(%s, %q) changed the origin: %s", tc.base, tc.path, u)
		}
		if u == base {
			t.Errorf("JoinPath returned base itself")
		}
	}
}

func TestJoinPathBadBase(t *testing.T) {
	t.Parallel()
	for _, b := range []string{"/relative", "mailto:x@example.com", ""} {
		base, _ := url.Parse(b)
		if _, err := JoinPath(base, "/user"); err == nil {
			t.Errorf("JoinPath(base %q) succeeded", b)
		}
	}
	if _, err := JoinPath(nil, "/user"); err == nil {
		t.Error("JoinPath(nil) succeeded")
	}
}
