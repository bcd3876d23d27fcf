package authn_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
)

func TestAPIKey(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, map[string]config.Authenticator{"ops": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{
		{ID: "ops", SHA256: sha256Hex(testAPIKey)},
		{ID: "batch", SHA256: strings.ToUpper(sha256Hex("batch-key-123"))},
	}}}, nil)
	srv := f.serve(t, []string{"ops"}, auth.Rule{})
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
		code   string
		subj   string
		desc   string
	}{
		{name: "first key", hdr: bearerHdr(testAPIKey), status: 200, subj: "ops"},
		{name: "second key", hdr: bearerHdr("batch-key-123"), status: 200, subj: "batch"},
		{name: "lowercase scheme", hdr: map[string]string{"Authorization": "bearer " + testAPIKey}, status: 200, subj: "ops"},
		{name: "missing", status: 401, code: "missing_credentials"},
		{name: "wrong key", hdr: bearerHdr(testAPIKey + "x"), status: 401, code: "invalid_token", desc: "unknown API key"},
		{name: "hash as key", hdr: bearerHdr(sha256Hex(testAPIKey)), status: 401, code: "invalid_token", desc: "unknown API key"},
		{name: "empty", hdr: map[string]string{"Authorization": "Bearer "}, status: 401, code: "invalid_token", desc: "empty"},
		{name: "basic", hdr: map[string]string{"Authorization": "Basic b3BzOng="}, status: 401, code: "missing_credentials"},
	}
	for i, c := range cases {
		hdr := map[string]string{"X-Test-IP": fmt.Sprintf("10.4.0.%d", i)}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		res := doReq(t, "GET", srv.URL+"/api/x", hdr, "")
		if res.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, res.status, c.status, res.body)
			continue
		}
		if c.status == 200 {
			var got struct{ Principal auth.Principal }
			json.Unmarshal(res.body, &got)
			if got.Principal.Subject != c.subj || got.Principal.Authenticator != "ops" {
				t.Errorf("%s: %+v", c.name, got.Principal)
			}
			continue
		}
		if res.env.Error != c.code || !strings.Contains(res.env.ErrorDescription, c.desc) {
			t.Errorf("%s: %+v", c.name, res.env)
		}
	}
	if strings.Contains(f.logs.String(), testAPIKey) {
		t.Error("an API key was logged")
	}
}
