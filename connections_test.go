package backlot_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/stripesig"
)

// TestSecretsAndConnectionAPI uses App.Secrets and App.Connection as a Go
// user would: secrets per principal scope, and a connected user's token
// and HTTP client (which refreshes once on a 401 from the third party).
func TestSecretsAndConnectionAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const appSecret = "absec_go_api_test"
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	sim := oauth.New(oauth.Options{Clients: []oauth.Client{{ID: "c", Secret: "s", RedirectURIs: []string{base + "/connect/acme/callback"}, RequirePKCE: true}}})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0", PublicURL: base},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
		Keys:   []config.Key{{ID: "k1", Secret: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}},
		Authenticators: map[string]config.Authenticator{
			"stripe": {Type: config.AuthStripeApp, Secrets: []string{appSecret}},
		},
		Connections: map[string]config.Connection{"acme": {
			AuthorizeURL: simSrv.URL + "/authorize", TokenURL: simSrv.URL + "/token", RevokeURL: simSrv.URL + "/revoke",
			UserinfoURL: simSrv.URL + "/userinfo", ClientID: "c", ClientSecret: "s", Auth: []string{"stripe"},
		}},
	}
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ts.Config.Handler = app.Handler()
	ts.Start()
	defer ts.Close()

	p := &auth.Principal{Authenticator: "stripe", Subject: "usr_1", Tenant: "acct_1"}

	// Secrets.
	sec := app.Secrets()
	scope := backlot.PrincipalScope(p)
	if err := sec.Put(ctx, scope, "api_key", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if v, err := sec.Get(ctx, scope, "api_key"); err != nil || string(v) != "v1" {
		t.Fatalf("get: %q %v", v, err)
	}
	if _, err := sec.Get(ctx, backlot.SecretScope{Tenant: "acct_1", Subject: "usr_2"}, "api_key"); !errors.Is(err, backlot.ErrSecretNotFound) {
		t.Fatalf("other scope: %v", err)
	}
	if err := sec.Put(ctx, backlot.SecretScope{System: "stripe"}, "api_key", []byte("sys")); err != nil {
		t.Fatal(err)
	}
	if err := sec.Delete(ctx, scope, "api_key"); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Get(ctx, scope, "api_key"); !errors.Is(err, backlot.ErrSecretNotFound) || !errors.Is(err, backlot.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}

	// Connection: not connected, then connected through the endpoints.
	if app.Connection("nope") != nil {
		t.Fatal("unknown connection is not nil")
	}
	conn := app.Connection("acme")
	if _, err := conn.Token(ctx, p); !errors.Is(err, backlot.ErrNotConnected) {
		t.Fatalf("before connecting: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sig := stripesig.Sign([]byte(appSecret), []byte(authn.StripeAppPayload(p.Subject, p.Tenant)), time.Now())
	q := url.Values{"user_id": {p.Subject}, "account_id": {p.Tenant}, "signature": {sig}}
	resp, err := browser.Get(base + "/connect/acme/login?" + q.Encode())
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %v %v", resp, err)
	}
	authz, _ := url.Parse(resp.Header.Get("Location"))
	form := authz.Query()
	form.Set("user", "user-alice")
	form.Set("decision", "approve")
	if resp, err = browser.PostForm(simSrv.URL+"/authorize", form); err != nil {
		t.Fatal(err)
	}
	if resp, err = browser.Get(resp.Header.Get("Location")); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("callback: %v %v", resp, err)
	}

	tok, err := conn.Token(ctx, p)
	if err != nil || tok == "" {
		t.Fatalf("token: %v", err)
	}
	sim.ExpireAccessTokens()
	res, err := conn.Client(ctx, p).Get(simSrv.URL + "/userinfo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "user-alice") {
		t.Fatalf("client after expiry: %d %s", res.StatusCode, body)
	}
	if s := sim.Stats(); s.TokenCallsByGrant["refresh_token"] != 1 || s.InvalidGrant != 0 {
		t.Fatalf("stats %+v", s)
	}
	if tok2, _ := conn.Token(ctx, p); tok2 == tok {
		t.Fatal("the refreshed token was not kept")
	}
}
