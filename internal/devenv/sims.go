package devenv

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/sandbox/idv"
	"github.com/backlothq/backlot/internal/sandbox/issuer"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/sandbox/partner"
	"github.com/backlothq/backlot/internal/sandbox/payments"
	"github.com/backlothq/backlot/jobs"
)

// demoSeed is a marketplace user to seed, with its listings.
type demoSeed struct {
	email, first, last string
	listings           []string
}

// demoSeeds are the marketplace's seeded users; each gets demoPassword.
func demoSeeds() []demoSeed {
	return []demoSeed{
		{"alice@backlot.dev", "Alice", "Provider", []string{"Pottery wheel, weekend rental", "Kiln time, per hour"}},
		{"bob@backlot.dev", "Bob", "Customer", nil},
		{"carol@backlot.dev", "Carol", "Operator", []string{"Guided city walk"}},
	}
}

// startSimulators builds every simulator and serves each on its listener
// (lns: marketplace, oauth, idv, payments, partner, issuer). On failure it
// closes the listeners it was given.
func (e *Env) startSimulators(lns []net.Listener) error {
	fail := func(err error) error {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	s, u := e.Secrets, &e.URLs
	e.market = marketplace.New(marketplace.Options{
		ClientID:                marketplaceClientID,
		ClientSecret:            s.MarketplaceClientSecret,
		IntegrationClientID:     integrationClientID,
		IntegrationClientSecret: s.IntegrationClientSecret,
		// Sharetribe's dev-environment limits: backlot's client paces
		// itself by them, so the demo meets them the way production would.
		RateLimits: marketplace.DevRateLimits(),
	})
	e.seedMarketplace()
	e.oauth = oauth.New(oauth.Options{
		Issuer: u.OAuth,
		Clients: []oauth.Client{{
			ID: oauthClientID, Secret: s.OAuthClientSecret, RequirePKCE: true,
			RedirectURIs: []string{u.Backlot + "/connect/" + connectionName + "/callback"},
		}},
	})
	var err error
	e.idv, err = idv.New(idv.Options{APIToken: s.IDVAPIToken, APISecret: s.IDVAPISecret, PublicURL: u.IDV})
	if err != nil {
		return fail(fmt.Errorf("ID-verification simulator: %w", err))
	}
	e.pay = payments.New(payments.Options{ClientID: paymentsClientID, ClientSecret: s.PaymentsClientSecret, TokenKey: []byte(s.PaymentsTokenKey)})
	e.Merchants = e.pay.Merchants()
	e.part = partner.New(partner.Options{Secret: s.PartnerSecret, Payments: e.pay})
	e.iss, err = issuer.New(issuer.Options{Issuer: u.Issuer})
	if err != nil {
		return fail(fmt.Errorf("token issuer simulator: %w", err))
	}
	if err := checkCallbackSource(); err != nil {
		e.log.Warn("the ID-verification simulator cannot send its callbacks from "+idv.CallbackSourceDefault+
			": step 2 of the demo page will not complete", "error", err.Error(),
			"fix", "add the address to the loopback interface (macOS: sudo ifconfig lo0 alias "+idv.CallbackSourceDefault+" up)")
	}
	handlers := []http.Handler{marketplaceHandler{e}, e.oauth, e.idv, e.pay, e.part, e.iss}
	errLog := slog.NewLogLogger(e.log.Handler(), slog.LevelWarn)
	for i, h := range handlers {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
		e.servers = append(e.servers, srv)
		go srv.Serve(lns[i])
	}
	return nil
}

// checkCallbackSource tells whether this machine can send from the ID
// vendor's callback address (Linux routes all of 127.0.0.0/8 to loopback;
// macOS has only 127.0.0.1 unless told otherwise).
func checkCallbackSource() error {
	ln, err := net.Listen("tcp", net.JoinHostPort(idv.CallbackSourceDefault, "0"))
	if err != nil {
		return err
	}
	return ln.Close()
}

// seedMarketplace adds the demo users, with passwords, and their listings.
func (e *Env) seedMarketplace() {
	var users []DemoUser
	for _, d := range demoSeeds() {
		id := e.market.AddUser(d.email, demoPassword, marketplace.Profile{
			FirstName: d.first, LastName: d.last,
			PublicData: map[string]any{"role": d.last},
		})
		for _, title := range d.listings {
			e.market.AddListing(id, marketplace.Listing{Title: title, Description: "Demo listing of " + d.first + "."})
		}
		users = append(users, DemoUser{Email: d.email, Password: demoPassword, Name: d.first + " " + d.last, ID: id})
	}
	e.usersMu.Lock()
	e.demoUsers = users
	e.usersMu.Unlock()
}

// DemoUsers returns the marketplace's demo users. Their ids change when
// the marketplace is reset (and on every start).
func (e *Env) DemoUsers() []DemoUser {
	e.usersMu.Lock()
	defer e.usersMu.Unlock()
	return append([]DemoUser(nil), e.demoUsers...)
}

// resetMarketplace empties the marketplace and seeds it again.
func (e *Env) resetMarketplace() {
	e.market.Reset()
	e.seedMarketplace()
}

// marketplaceHandler serves the marketplace simulator, except that its
// POST /_sim/reset comes back to the demo data instead of an empty
// marketplace: in development, reset means "as freshly started".
type marketplaceHandler struct{ e *Env }

func (h marketplaceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.e.market.ServeHTTP(w, r)
	if r.Method == http.MethodPost && r.URL.Path == "/_sim/reset" {
		h.e.seedMarketplace()
	}
}

// registerWorkers handles the job kinds the development configuration
// produces and no forward takes, so the demo shows each job going all the
// way: the vendor's callbacks by the id-verification recipe, the rest by
// logging what arrived.
func registerWorkers(app Backlot, idv IDVerification, log *slog.Logger) {
	app.Worker(idvJob, func(ctx context.Context, j *jobs.Job) error {
		if err := idv.Callback(ctx, j); err != nil {
			return err
		}
		log.Info("ID-verification callback processed", "job", j.ID)
		return nil
	})
	app.Worker(eventJob, func(ctx context.Context, j *jobs.Job) error {
		var ev sharetribe.Event // what the poller enqueued
		if err := json.Unmarshal(j.Payload, &ev); err != nil {
			return fmt.Errorf("decode marketplace event: %w", err)
		}
		a := ev.Attributes
		jobs.Logf(ctx, "event %d: %s of %s %s (source %s)", a.SequenceID, a.EventType, a.ResourceType, a.ResourceID, a.Source)
		log.Info("marketplace event", "job", j.ID, "type", a.EventType, "resource", a.ResourceID)
		return nil
	})
	for _, kind := range []string{expiredJob, recoveredJob} {
		app.Worker(kind, func(ctx context.Context, j *jobs.Job) error {
			jobs.Logf(ctx, "%s: %s", kind, j.Payload)
			return nil
		})
	}
}
