package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: the configuration is
// untrusted input (SPEC 8). It must never panic, and every failure must be
// a *Error whose issues say something.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{
		filepath.Join("testdata", "full.yaml"),
		filepath.Join("..", "examples", "quickstart", "backlot.yaml"),
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		local,
		"server:\n  lisen: x\n  max_body_bytes: abc\n",
		"a: &a [*a]\n",
		"server: &s {<<: *s}\n",
		"upstreams:\n  a: &x {base_url: \"https://a\"}\n  b: {<<: [*x, *x]}\n",
		"store: {url: \"${X:-sqlite://a}$$\"}\nkeys: [{id: a, secret: \"${BACKLOT_KEY_K1}\"}]\n",
		"webhooks:\n  - {path: /a, verify: {scheme: none}, forward: {url: x}}\n",
		"authenticators: {a: {type: session, login: a}, b: {type: jwks, algorithms: [none]}}\n",
		"schedules: [{name: a, cron: \"@every\", job: j}]\n",
		"? [a]\n: b\n",
		"--- 5\n--- 6\n",
	} {
		f.Add([]byte(s))
	}
	env := map[string]string{
		"X":                             "v",
		"BACKLOT_KEY_K1":                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"BACKLOT_SERVER_MAX_BODY_BYTES": "12",
		"BACKLOT_AUTHENTICATORS_A_TYPE": "hs256",
		"BACKLOT_WEBHOOKS_0_PATH":       "/w",
		"BACKLOT_CORS_ALLOWED_ORIGINS":  "https://a.example.com,*",
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("backlot.yaml", data, envMap(env))
		if err == nil {
			if c == nil {
				t.Fatal("nil config without an error")
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Issues) == 0 {
			t.Fatalf("got %T %v, want a non-empty *Error", err, err)
		}
		for _, is := range ce.Issues {
			if is.Msg == "" {
				t.Fatalf("issue without a message: %+v", is)
			}
		}
	})
}
