package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestSDKInterop drives the real Sharetribe JavaScript SDK (pinned in
// testdata/sdk) against the simulator: anonymous auth info, a refused and
// an accepted login, current_user/show, the SDK's refresh-and-retry on a
// 401, and logout's revoke. It needs Node; the SDK is installed with
// `npm ci` on first use. Without Node it is skipped, except under CI=true.
func TestSDKInterop(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	node := testutil.Node(t, dir)

	// A real clock: the SDK reads nothing of ours but HTTP.
	m := New(Options{ClientID: testClientID})
	id := m.AddUser(testEmail, testPassword, Profile{FirstName: "Joe", LastName: "Dunphy"})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "interop.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+srv.URL, "CLIENT_ID="+testClientID,
		"EMAIL="+testEmail, "PASSWORD="+testPassword)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node interop.js: %v\n%s", err, stderr.String())
	}
	var got struct {
		AnonShow struct {
			Status int
			Code   string
		} `json:"anonShow"`
		AnonInfo      map[string]any `json:"anonInfo"`
		WrongPassword any            `json:"wrongPassword"`
		UserInfo      map[string]any `json:"userInfo"`
		User          struct {
			ID, Type, Email, DisplayName string
		} `json:"user"`
		LoginToken   TokenResponse `json:"loginToken"`
		AfterRefresh struct {
			Email string        `json:"email"`
			Token TokenResponse `json:"token"`
		} `json:"afterRefresh"`
		AfterLogout any `json:"afterLogout"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	if got.AnonShow.Status != 403 || got.AnonShow.Code != "forbidden" {
		t.Errorf("anonymous current_user/show: %+v, want 403 forbidden (read from Transit)", got.AnonShow)
	}
	if got.AnonInfo["isAnonymous"] != true {
		t.Errorf("anonymous authInfo %v", got.AnonInfo)
	}
	if got.WrongPassword != float64(401) {
		t.Errorf("wrong password: %v, want status 401", got.WrongPassword)
	}
	if got.UserInfo["isAnonymous"] != false || got.UserInfo["grantType"] != "refresh_token" {
		t.Errorf("user authInfo %v", got.UserInfo)
	}
	if got.User.ID != id || got.User.Type != "currentUser" || got.User.Email != testEmail || got.User.DisplayName != "Joe D" {
		t.Errorf("current user %+v, want id %s", got.User, id)
	}
	if got.LoginToken.Scope != "user" || got.LoginToken.RefreshToken == "" || got.LoginToken.TokenType != "bearer" {
		t.Errorf("login token %+v", got.LoginToken)
	}
	rt := got.AfterRefresh.Token
	if got.AfterRefresh.Email != testEmail || rt.AccessToken == "" || rt.AccessToken == "stale-access-token" ||
		rt.RefreshToken == got.LoginToken.RefreshToken {
		t.Errorf("after refresh-and-retry: %+v", got.AfterRefresh)
	}
	if got.AfterLogout != nil {
		t.Errorf("token store after logout: %v", got.AfterLogout)
	}
	// Logout revoked the session: its refresh token no longer works.
	f := &fixture{m: m, srv: srv}
	status, body := f.post(t, "/v1/auth/token", url.Values{"client_id": {testClientID},
		"grant_type": {"refresh_token"}, "refresh_token": {rt.RefreshToken}}, nil)
	if status != 401 || body["error"] != "invalid_grant" {
		t.Errorf("refresh token after logout: %d %v", status, body)
	}
}
