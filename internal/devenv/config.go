package devenv

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/sandbox/idv"
)

// consolePath is where the admin console is mounted. The dashboard's
// staff session (staffSession) signs in to it, as viewer and admin.
const consolePath = "/_/"

// eventPoll is how often the marketplace's events are polled: often
// enough that the demo's writes show up as jobs within seconds, and half
// the dev environment's query rate at most.
const eventPoll = 2 * time.Second

// Names the generated configuration uses, shared with the demo page.
const (
	connectionName = "acme"         // the stripe-app recipe's OAuth connection
	stripeAuth     = "stripe"       // stripe_app authenticator
	staffTokens    = "staff_tokens" // hs256 login of the dashboard
	staffSession   = "staff"        // its cookie session
	extensionAuth  = "extension"    // jwks authenticator on the issuer
	shopperAuth    = "shoppers"     // sharetribe authenticator
	marketName     = "main"         // the marketplace

	idvWebhookPath   = "/webhooks/idv"
	queueWebhookPath = "/webhooks/queue"
	idvJob           = "idv.callback"
	queueJob         = "queue.event"
	eventJob         = "marketplace.event"
	expiredJob       = "connection.expired"
	recoveredJob     = "connection.recovered"

	oauthClientID         = "backlot-dev"
	marketplaceClientID   = "backlot-dev-marketplace"
	integrationClientID   = "backlot-dev-integration"
	paymentsClientID      = 118000
	dbFile                = "backlot.db"
	stripeDemoUser        = "usr_demo"
	stripeDemoAccount     = "acct_demo"
	staffDemoSubject      = "support@backlot.dev"
	idvSourceCIDR         = idv.CallbackSourceDefault + "/32"
	receiverPath          = "/_dev/receiver"
	demoPath              = "/_dev/"
	frontEndOriginVite    = "http://localhost:5173"
	frontEndOriginDefault = "http://localhost:3000"
)

// buildConfig is the whole backlot configuration of the development
// environment: every recipe wired to its simulator, with the stable
// secrets. It is validated by config.Config.Prepare like any file.
func buildConfig(dir string, u URLs, s *Secrets) (*config.Config, error) {
	no := false
	allow := true
	lookup := func(path string, fields ...string) *config.LookupCredential {
		return &config.LookupCredential{URL: u.Partner + path, Secret: s.PartnerSecret, AllowPrivate: allow, BodyFields: fields}
	}
	route := func(match, path string, strip []string, cred config.Credential) config.Route {
		return config.Route{Match: match, Auth: []string{staffSession}, Upstream: "payments", Path: path, StripFields: strip, Credential: cred}
	}
	cfg := &config.Config{
		Server: config.Server{
			Listen:    u.listen,
			PublicURL: u.Backlot,
		},
		Store: config.Store{URL: "sqlite://" + filepath.Join(dir, dbFile)},
		Keys:  []config.Key{{ID: "dev1", Secret: s.KeyringKey}},
		CORS: config.CORS{
			// The demo page is served by backlot itself (same origin); the
			// usual front-end dev servers may call it with credentials.
			AllowedOrigins:   []string{u.Backlot, frontEndOriginDefault, frontEndOriginVite},
			AllowedMethods:   []string{"GET", "POST"},
			AllowedHeaders:   []string{"Authorization", "Content-Type", "X-CSRF-Token", "Stripe-Signature", "Stripe-User-Id", "Stripe-Account-Id"},
			AllowCredentials: true,
		},
		Authenticators: map[string]config.Authenticator{
			// stripe-app: calls signed by the Stripe App.
			stripeAuth: {Type: config.AuthStripeApp, Secrets: []string{s.StripeAppSecret}},
			// payments-dashboard: staff tokens exchanged for a cookie session.
			staffTokens: {Type: config.AuthHS256, Secret: s.HS256Secret, Issuer: "backlot", Audience: "backlot"},
			staffSession: {Type: config.AuthSession, Login: staffTokens,
				Cookie: config.SessionCookie{Name: "backlot_dev_session", Secure: &no, SameSite: "lax"}},
			// extension-api: JWTs from the marketplace's token service.
			extensionAuth: {Type: config.AuthJWKS, JWKSURL: u.Issuer + "/.well-known/jwks.json", Issuer: u.Issuer,
				Audience: "backlot", Algorithms: []string{"RS256", "ES256"},
				Claims: config.ClaimsMap{Subject: "sub", Email: "name", Tenant: "tenant"}},
			// marketplace users, by their marketplace token.
			shopperAuth: {Type: config.AuthSharetribe, Marketplace: marketName},
		},
		Marketplaces: map[string]config.Marketplace{
			marketName: {
				Type: "sharetribe", ClientID: marketplaceClientID, ClientSecret: s.MarketplaceClientSecret,
				Integration:       config.MarketplaceClient{ClientID: integrationClientID, ClientSecret: s.IntegrationClientSecret},
				APIURL:            u.Marketplace,
				IntegrationAPIURL: u.Marketplace,
				Environment:       "dev",
				// The marketplace's changes (the ID check's privateData
				// writes among them) become jobs.
				Events: config.MarketplaceEvents{
					Poll:  config.Duration(eventPoll),
					Types: eventTypes(),
					Job:   eventJob,
					Start: "now",
				},
			},
		},
		Connections: map[string]config.Connection{
			connectionName: {
				AuthorizeURL: u.OAuth + "/authorize",
				TokenURL:     u.OAuth + "/token",
				RevokeURL:    u.OAuth + "/revoke",
				UserinfoURL:  u.OAuth + "/userinfo",
				Issuer:       u.OAuth,
				ClientID:     oauthClientID,
				ClientSecret: s.OAuthClientSecret,
				Scopes:       []string{"read"},
				Auth:         []string{stripeAuth},
				ScopeBy:      []string{"tenant", "subject"},
				ReturnTo:     u.Backlot + demoPath + "?step=connect",
				OnExpired:    expiredJob,
				OnRecovered:  recoveredJob,
			},
		},
		Upstreams: map[string]config.Upstream{
			"payments": {BaseURL: u.Payments + "/v2", AllowPrivate: allow},
		},
		Routes: []config.Route{
			route("POST /api/user", "/user", []string{"email", "account_id"}, config.Credential{Lookup: lookup("/user", "email", "account_id")}),
			route("POST /api/account", "/account", nil, config.Credential{Lookup: lookup("/account", "account_id")}),
			route("POST /api/checkout/find", "/checkout/find", nil, config.Credential{Lookup: lookup("/account", "account_id")}),
			route("POST /api/refund", "/checkout/refund", []string{"account_id"}, config.Credential{Lookup: lookup("/account", "account_id")}),
			route("POST /api/credit_card", "/credit_card", nil, config.Credential{Body: map[string]string{
				"client_id": fmt.Sprint(paymentsClientID), "client_secret": s.PaymentsClientSecret}}),
		},
		Webhooks: []config.Webhook{
			{
				// ID verification: the vendor signs nothing; only its
				// callback address may post here.
				Path:     idvWebhookPath,
				Verify:   config.Verify{Scheme: config.SchemeNone},
				AllowIPs: []string{idvSourceCIDR},
				Dedupe:   "body",
				Job:      idvJob,
			},
			{
				// webhook-queue: Standard Webhooks in, forwarded to an app.
				Path:    queueWebhookPath,
				Verify:  config.Verify{Scheme: config.SchemeStandard, Secrets: []string{s.WebhookSecret}},
				Job:     queueJob,
				Forward: &config.Forward{URL: u.Backlot + receiverPath, Secret: s.ForwardSecret},
			},
		},
	}
	cfg.Console = config.Console{Path: consolePath, Auth: []string{staffSession}, Admin: []string{staffSession}}
	if err := cfg.Prepare(); err != nil {
		return nil, fmt.Errorf("development configuration: %w", err)
	}
	return cfg, nil
}

// eventTypes are the marketplace events polled into eventJob: user
// updates and every listing event.
func eventTypes() []string {
	return []string{"user/updated", "listing/created", "listing/updated", "listing/deleted"}
}
