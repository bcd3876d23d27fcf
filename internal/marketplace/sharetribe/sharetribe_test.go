package sharetribe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/testutil"
)

const (
	clientID     = "08ec69f6-d37e-414d-83eb-324e94afddf0"
	clientSecret = "market-secret"
	integID      = "6f2c7e1a-2b9d-4c3e-8f10-9a8b7c6d5e4f"
	integSecret  = "integ-secret"
	email        = "joe@example.com"
	password     = "secret-joe"
)

type fixture struct {
	m      *marketplace.Marketplace
	srv    *httptest.Server
	c      *Client
	clock  *testutil.Clock
	userID string
	sleeps *[]time.Duration
}

// fast is a limiter loose enough that unit tests never wait on it.
var fast = Limits{QueriesPerSecond: 1e6, QueryBurst: 1e6, CommandsPerSecond: 1e6, CommandBurst: 1e6}

func setup(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	clk := testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	m := marketplace.New(marketplace.Options{
		ClientID: clientID, ClientSecret: clientSecret,
		IntegrationClientID: integID, IntegrationClientSecret: integSecret,
		AccessTokenTTL: time.Hour, Now: clk.Now,
	})
	uid := m.AddUser(email, password, marketplace.Profile{FirstName: "Joe", LastName: "Dunphy", PublicData: map[string]any{"role": "customer"}})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	sleeps := &[]time.Duration{}
	cfg := Config{
		APIURL: srv.URL, IntegrationURL: srv.URL,
		ClientID: clientID, ClientSecret: clientSecret,
		IntegrationClientID: integID, IntegrationClientSecret: integSecret,
		Limiter: NewLocalLimiter(fast),
		Now:     clk.Now,
		SleepFunc: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			*sleeps = append(*sleeps, d)
			return ctx.Err()
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, srv: srv, c: c, clock: clk, userID: uid, sleeps: sleeps}
}

func ptr[T any](v T) *T { return &v }

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"live", Config{Environment: EnvLive}, true},
		{"unknown environment", Config{Environment: "prod"}, false},
		{"relative URL", Config{APIURL: "flex-api.sharetribe.com"}, false},
		{"ftp URL", Config{IntegrationURL: "ftp://example.com"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	for _, env := range []Environment{EnvDev, EnvTest} {
		if l := DefaultLimits(env); l.QueriesPerSecond != 1 || l.CommandsPerSecond != 0.5 {
			t.Errorf("%s limits %+v, want 1 query/s and 1 command per 2 s", env, l)
		}
	}
	if l := DefaultLimits(EnvLive); l.QueriesPerSecond != 8 || l.CommandsPerSecond != 4 {
		t.Errorf("live limits %+v, want 8 queries/s and 4 commands/s", l)
	}
}

func TestTokenGrants(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()

	anon, err := f.c.AnonymousToken(ctx)
	if err != nil || anon.Scope != "public-read" || anon.RefreshToken != "" {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	user, err := f.c.PasswordToken(ctx, email, password)
	if err != nil || user.Scope != "user" || user.RefreshToken == "" || !user.Expiry.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("password: %+v %v", user, err)
	}
	next, err := f.c.RefreshToken(ctx, user.RefreshToken)
	if err != nil || next.RefreshToken == user.RefreshToken || next.AccessToken == "" {
		t.Fatalf("refresh: %+v %v", next, err)
	}
	trusted, err := f.c.ExchangeToken(ctx, next.AccessToken)
	if err != nil || trusted.Scope != "trusted:user" {
		t.Fatalf("token_exchange: %+v %v", trusted, err)
	}
	integ, err := f.c.IntegrationToken(ctx)
	if err != nil || integ.Scope != "integ" {
		t.Fatalf("integration: %+v %v", integ, err)
	}

	bad := []struct {
		name string
		fn   func() error
		code string
		is   error
	}{
		{"wrong password", func() error { _, err := f.c.PasswordToken(ctx, email, "nope"); return err }, "invalid_grant", ErrUnauthorized},
		{"spent refresh token", func() error { _, err := f.c.RefreshToken(ctx, user.RefreshToken); return err }, "invalid_grant", ErrUnauthorized},
		{"bad subject token", func() error { _, err := f.c.ExchangeToken(ctx, "nope"); return err }, "invalid_grant", ErrUnauthorized},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code() != tc.code || !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %s matching %v", err, tc.code, tc.is)
			}
		})
	}

	noSecret := setup(t, func(c *Config) { c.ClientSecret = ""; c.IntegrationClientSecret = "" })
	if _, err := noSecret.c.ExchangeToken(ctx, next.AccessToken); err == nil {
		t.Error("token_exchange without a client secret succeeded")
	}
	if _, err := noSecret.c.QueryUsers(ctx, PageParams{}); !errors.Is(err, errNoIntegration) {
		t.Errorf("integration call without credentials: %v", err)
	}
}

func TestIntegrationTokenCache(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	a, err := f.c.IntegrationToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f.c.IntegrationToken(ctx); b.AccessToken != a.AccessToken {
		t.Error("second call did not reuse the cached token")
	}
	// Within a minute of expiry, a new one is fetched.
	f.clock.Advance(59*time.Minute + time.Second)
	b, err := f.c.IntegrationToken(ctx)
	if err != nil || b.AccessToken == a.AccessToken {
		t.Fatalf("near expiry: same token or %v", err)
	}
	// A cached token the server no longer accepts is replaced on the 401.
	f.m.ExpireTokens()
	if _, err := f.c.QueryUsers(ctx, PageParams{}); err != nil {
		t.Fatalf("query after the server expired the token: %v", err)
	}
	if c, _ := f.c.IntegrationToken(ctx); c.AccessToken == b.AccessToken {
		t.Error("token not replaced after a 401")
	}
}

func TestMarketplaceAPI(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	tok, err := f.c.PasswordToken(ctx, email, password)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.c.CurrentUser(ctx, tok.AccessToken)
	if err != nil || u.ID != f.userID || u.Type != "currentUser" || u.Attributes.Email != email {
		t.Fatalf("current user: %+v %v", u, err)
	}
	u, err = f.c.UpdateCurrentUserProfile(ctx, tok.AccessToken, ProfileUpdate{
		DisplayName: ptr("Joey"),
		PublicData:  map[string]any{"role": nil, "city": "Helsinki"},
		PrivateData: map[string]any{"idv": "pending"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := u.Attributes.Profile
	if p.DisplayName != "Joey" || p.PublicData["city"] != "Helsinki" || p.PrivateData["idv"] != "pending" {
		t.Errorf("profile after update %+v", p)
	}
	if _, ok := p.PublicData["role"]; ok {
		t.Errorf("role set to null was kept: %v", p.PublicData)
	}

	bad := []struct {
		name string
		upd  ProfileUpdate
		code string
	}{
		{"over 50 KB", ProfileUpdate{PublicData: map[string]any{"blob": strings.Repeat("x", 51*1024)}}, "validation-invalid-params"},
		{"metadata", ProfileUpdate{Metadata: map[string]any{"tier": "gold"}}, "validation-disallowed-key"},
		{"empty first name", ProfileUpdate{FirstName: ptr(" ")}, "validation-invalid-params"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.UpdateCurrentUserProfile(ctx, tok.AccessToken, tc.upd)
			var ae *APIError
			if !errors.Is(err, ErrValidation) || !errors.As(err, &ae) || ae.Code() != tc.code || ae.Status != 400 {
				t.Fatalf("got %v, want 400 %s", err, tc.code)
			}
		})
	}
	// The refusals changed nothing.
	if u, _ := f.c.CurrentUser(ctx, tok.AccessToken); u.Attributes.Profile.FirstName != "Joe" || len(u.Attributes.Profile.Metadata) != 0 {
		t.Errorf("refused updates changed the profile: %+v", u.Attributes.Profile)
	}
}

func TestIntegrationUsers(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	for i := range 4 {
		f.m.AddUser(fmt.Sprintf("u%d@example.com", i), "pw", marketplace.Profile{FirstName: fmt.Sprint("U", i), LastName: "X"})
	}
	page, err := f.c.QueryUsers(ctx, PageParams{Page: 2, PerPage: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.Meta != (Meta{TotalItems: 5, TotalPages: 3, Page: 2, PerPage: 2}) || len(page.Data) != 2 {
		t.Fatalf("page 2: meta %+v, %d users", page.Meta, len(page.Data))
	}
	var seen []string
	for u, err := range All(ctx, func(ctx context.Context, n int) (*Page[User], error) {
		return f.c.QueryUsers(ctx, PageParams{Page: n, PerPage: 2})
	}) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, u.ID)
	}
	if len(seen) != 5 || seen[len(seen)-1] != f.userID {
		t.Errorf("All: %d users, last %v (want the oldest, %s)", len(seen), seen, f.userID)
	}

	u, err := f.c.UpdateUserProfile(ctx, f.userID, ProfileUpdate{Metadata: map[string]any{"tier": "gold"}, ProtectedData: map[string]any{"phone": "+358"}})
	if err != nil || u.Attributes.Profile.Metadata["tier"] != "gold" || u.Attributes.Profile.ProtectedData["phone"] != "+358" {
		t.Fatalf("update: %+v %v", u, err)
	}
	shown, err := f.c.ShowUser(ctx, f.userID)
	if err != nil || shown.Attributes.Profile.Metadata["tier"] != "gold" || shown.Type != "user" {
		t.Fatalf("show: %+v %v", shown, err)
	}
}

func TestIntegrationListingsAndTransactions(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	pub := f.m.AddListing(f.userID, marketplace.Listing{Title: "Bike"})
	pending := f.m.AddListing(f.userID, marketplace.Listing{Title: "Kayak", State: marketplace.ListingPendingApproval})

	l, err := f.c.CloseListing(ctx, pub)
	if err != nil || l.Attributes.State != ListingClosed {
		t.Fatalf("close: %+v %v", l, err)
	}
	// Closing again is a no-op; a closed listing is invisible to the
	// Marketplace API's query but not to the Integration API's.
	if _, err := f.c.CloseListing(ctx, pub); err != nil {
		t.Fatalf("close again: %v", err)
	}
	anon, _ := f.c.AnonymousToken(ctx)
	var public Page[Listing]
	if err := f.c.do(ctx, f.c.userCall(Query, anon.AccessToken, "listings/query", nil, nil), &public); err != nil || len(public.Data) != 0 {
		t.Fatalf("marketplace listings/query: %+v %v", public.Data, err)
	}
	all, err := f.c.QueryListings(ctx, ListingsQuery{Include: []string{"author"}})
	if err != nil || len(all.Data) != 2 || len(all.Included) != 1 || all.Included[0].ID != f.userID {
		t.Fatalf("integration listings/query: %+v %v", all, err)
	}
	if ref, ok := all.Data[0].Relationships["author"].One(); !ok || ref.ID != f.userID {
		t.Errorf("author relationship %+v", all.Data[0].Relationships)
	}
	closed, err := f.c.QueryListings(ctx, ListingsQuery{States: []string{ListingClosed}})
	if err != nil || len(closed.Data) != 1 || closed.Data[0].ID != pub {
		t.Fatalf("states=closed: %+v %v", closed, err)
	}
	if l, err := f.c.OpenListing(ctx, pub); err != nil || l.Attributes.State != ListingPublished {
		t.Fatalf("open: %+v %v", l, err)
	}
	if l, err := f.c.ApproveListing(ctx, pending); err != nil || l.Attributes.State != ListingPublished {
		t.Fatalf("approve: %+v %v", l, err)
	}
	l, err = f.c.UpdateListing(ctx, pub, ListingUpdate{Title: ptr("Red bike"), Metadata: map[string]any{"featured": true}})
	if err != nil || l.Attributes.Title != "Red bike" || l.Attributes.Metadata["featured"] != true {
		t.Fatalf("update: %+v %v", l, err)
	}
	one, err := f.c.ShowListing(ctx, pub, "author")
	if err != nil || one.Data.Attributes.Title != "Red bike" || len(one.Included) != 1 {
		t.Fatalf("show: %+v %v", one, err)
	}

	customer := f.m.AddUser("c@example.com", "pw", marketplace.Profile{FirstName: "C", LastName: "D"})
	tx := f.m.AddTransaction(marketplace.Transaction{ListingID: pub, CustomerID: customer, NextTransitions: []string{"transition/accept", "transition/decline"}})
	txs, err := f.c.QueryTransactions(ctx, TransactionsQuery{CustomerID: customer, Include: []string{"listing", "customer", "provider"}})
	if err != nil || len(txs.Data) != 1 || txs.Data[0].ID != tx || len(txs.Included) != 3 {
		t.Fatalf("transactions/query: %+v %v", txs, err)
	}
	if _, err := f.c.TransitionTransaction(ctx, tx, "transition/complete", nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("impossible transition: %v, want 409", err)
	}
	got, err := f.c.TransitionTransaction(ctx, tx, "transition/accept", map[string]any{"note": "ok"})
	if err != nil || got.Attributes.LastTransition != "transition/accept" || len(got.Attributes.Transitions) != 2 {
		t.Fatalf("transition: %+v %v", got, err)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	lid := f.m.AddListing(f.userID, marketplace.Listing{Title: "Bike"})
	start := f.m.LastSequenceID()
	if _, err := f.c.CloseListing(ctx, lid); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.UpdateUserProfile(ctx, f.userID, ProfileUpdate{Metadata: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	page, err := f.c.QueryEvents(ctx, EventsQuery{StartAfterSequenceID: &start})
	if err != nil || len(page.Data) != 2 || page.Full() || page.Meta.PerPage != 100 {
		t.Fatalf("events after %d: %+v %v", start, page, err)
	}
	e := page.Data[0].Attributes
	if e.EventType != "listing/updated" || e.ResourceID != lid || e.SequenceID != start+1 || e.Source != "source/integration-api" ||
		e.AuditData.ClientID == nil || *e.AuditData.ClientID != integID || !strings.Contains(string(e.PreviousValues), `"published"`) ||
		!strings.Contains(string(e.Resource), `"closed"`) {
		t.Errorf("close event %+v resource %s previous %s", e, e.Resource, e.PreviousValues)
	}
	if page.Data[1].Attributes.EventType != "user/updated" || page.Data[1].Attributes.SequenceID <= e.SequenceID {
		t.Errorf("second event %+v", page.Data[1].Attributes)
	}

	filters := []struct {
		name string
		q    EventsQuery
		want []string
	}{
		{"types", EventsQuery{EventTypes: []string{"listing/created"}}, []string{"listing/created"}},
		{"resource", EventsQuery{ResourceID: lid}, []string{"listing/created", "listing/updated"}},
		{"related", EventsQuery{RelatedResourceID: f.userID}, []string{"listing/created", "listing/updated"}},
		{"created at", EventsQuery{CreatedAtStart: f.clock.Now().Add(time.Minute)}, nil},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.c.QueryEvents(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range p.Data {
				got = append(got, e.Attributes.EventType)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := f.c.QueryEvents(ctx, EventsQuery{StartAfterSequenceID: &start, CreatedAtStart: f.clock.Now()}); err == nil {
		t.Error("both start parameters accepted")
	}

	// 150 more events: a full page of 100, then the rest.
	for i := range 150 {
		f.m.AddUser(fmt.Sprintf("e%d@example.com", i), "pw", marketplace.Profile{FirstName: "E", LastName: "F"})
	}
	after := f.m.LastSequenceID() - 150
	p1, err := f.c.QueryEvents(ctx, EventsQuery{StartAfterSequenceID: &after})
	if err != nil || len(p1.Data) != 100 || !p1.Full() {
		t.Fatalf("first page: %d events, %v", len(p1.Data), err)
	}
	last := p1.Data[99].Attributes.SequenceID
	p2, err := f.c.QueryEvents(ctx, EventsQuery{StartAfterSequenceID: &last})
	if err != nil || len(p2.Data) != 50 || p2.Full() {
		t.Fatalf("second page: %d events, %v", len(p2.Data), err)
	}

	// Retention: after 7 days and a bit, the old events are gone.
	f.clock.Advance(7*24*time.Hour + time.Second)
	zero := int64(0)
	if p, err := f.c.QueryEvents(ctx, EventsQuery{StartAfterSequenceID: &zero}); err != nil || len(p.Data) != 0 {
		t.Fatalf("after retention: %d events, %v", len(p.Data), err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxRetries = -1 })
	ctx := context.Background()
	pub := f.m.AddListing(f.userID, marketplace.Listing{Title: "Bike"})
	anon, err := f.c.AnonymousToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.m.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/transactions/query", Status: 500})
	f.m.InjectFault(marketplace.Fault{Route: "/v1/integration_api/marketplace/show", Status: 503})
	f.m.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/users/query", Status: 429, RetryAfter: 7})
	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
		is     error
	}{
		{"400 validation", func() error { _, err := f.c.ShowUser(ctx, "not-a-uuid"); return err }, 400, "validation-invalid-params", ErrValidation},
		{"400 page size", func() error {
			_, err := f.c.QueryListings(ctx, ListingsQuery{PageParams: PageParams{PerPage: 101}})
			return err
		}, 400, "validation-invalid-params", ErrValidation},
		{"401", func() error { _, err := f.c.CurrentUser(ctx, "garbage"); return err }, 401, "auth-invalid-access-token", ErrUnauthorized},
		{"403", func() error { _, err := f.c.CurrentUser(ctx, anon.AccessToken); return err }, 403, "forbidden", ErrForbidden},
		{"404", func() error { _, err := f.c.ShowUser(ctx, "9e1a5c3e-0000-4000-8000-000000000000"); return err }, 404, "not-found", ErrNotFound},
		{"409", func() error { _, err := f.c.ApproveListing(ctx, pub); return err }, 409, "listing-invalid-state", ErrConflict},
		{"429", func() error { _, err := f.c.QueryUsers(ctx, PageParams{}); return err }, 429, "too-many-requests", ErrRateLimited},
		{"500", func() error { _, err := f.c.QueryTransactions(ctx, TransactionsQuery{}); return err }, 500, "server-error", ErrServer},
	}
	sentinels := []error{ErrValidation, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrRateLimited, ErrServer}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *APIError", err)
			}
			if ae.Status != tc.status || ae.Code() != tc.code || len(ae.Errors) != 1 || ae.Errors[0].ID == "" || ae.Errors[0].Title == "" || len(ae.Body) == 0 {
				t.Errorf("got %+v, want %d %s with id, title and body", ae, tc.status, tc.code)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tc.is) {
					t.Errorf("errors.Is(%v) = %v", s, errors.Is(err, s))
				}
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Errorf("message %q lacks the code", err)
			}
		})
	}
	var ae *APIError
	_, err = f.c.QueryUsers(ctx, PageParams{})
	if !errors.As(err, &ae) || ae.RetryAfter != 7*time.Second {
		t.Errorf("Retry-After not read: %v", err)
	}
}

func TestRetryOn429(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxRetryWait = 10 * time.Second })
	ctx := context.Background()
	f.m.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/users/query", Status: 429, RetryAfter: 2, Times: 2})
	if _, err := f.c.QueryUsers(ctx, PageParams{}); err != nil {
		t.Fatalf("after two 429s: %v", err)
	}
	if fmt.Sprint(*f.sleeps) != "[2s 2s]" {
		t.Errorf("waited %v, want Retry-After twice", *f.sleeps)
	}
	// A command is retried too: a 429 means it was not carried out.
	lid := f.m.AddListing(f.userID, marketplace.Listing{Title: "Bike"})
	f.m.InjectFault(marketplace.Fault{Route: "POST /v1/integration_api/listings/close", Status: 429, Times: 1})
	if _, err := f.c.CloseListing(ctx, lid); err != nil {
		t.Fatalf("command after a 429: %v", err)
	}
	// Retry-After beyond MaxRetryWait fails at once.
	*f.sleeps = nil
	f.m.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/users/show", Status: 429, RetryAfter: 60, Times: 1})
	if _, err := f.c.ShowUser(ctx, f.userID); !errors.Is(err, ErrRateLimited) || len(*f.sleeps) != 0 {
		t.Errorf("Retry-After 60 s with a 10 s cap: %v after sleeping %v", err, *f.sleeps)
	}
	// A Retry-After too large for a time.Duration (go-retryablehttp once
	// slept "484289h" on one) fails at once too, never a negative wait.
	*f.sleeps = nil
	f.m.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/users/show", Status: 429, RetryAfter: 99999999999, Times: 1})
	if _, err := f.c.ShowUser(ctx, f.userID); !errors.Is(err, ErrRateLimited) || len(*f.sleeps) != 0 {
		t.Errorf("Retry-After 99999999999 s: %v after sleeping %v", err, *f.sleeps)
	}
	// Out of retries: the 429 is returned after MaxRetries waits, each
	// without Retry-After doubling.
	*f.sleeps = nil
	f.m.ClearFaults()
	f.m.InjectFault(marketplace.Fault{Route: "/v1/integration_api/transactions/query", Status: 429, RetryAfter: 1})
	if _, err := f.c.QueryTransactions(ctx, TransactionsQuery{}); !errors.Is(err, ErrRateLimited) || len(*f.sleeps) != MaxRetriesDefault {
		t.Errorf("persistent 429: %v after %v", err, *f.sleeps)
	}
	// A done context stops the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.c.QueryTransactions(cctx, TransactionsQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestStaysWithinSimulatorLimits runs the client's own limiter against the
// simulator's real-time rate limits: paced by the limiter, the client
// never gets a 429; unpaced, the same burst is refused.
func TestStaysWithinSimulatorLimits(t *testing.T) {
	t.Parallel()
	limits := &marketplace.RateLimits{QueriesPerSecond: 20, QueryBurst: 2, CommandsPerSecond: 10, CommandBurst: 1, MaxConcurrent: 10}
	run := func(lim Limits, retries int) marketplace.Stats {
		m := marketplace.New(marketplace.Options{ClientID: clientID, IntegrationClientID: integID, IntegrationClientSecret: integSecret, RateLimits: limits})
		srv := httptest.NewServer(m)
		defer srv.Close()
		c, err := New(Config{APIURL: srv.URL, IntegrationURL: srv.URL, IntegrationClientID: integID, IntegrationClientSecret: integSecret,
			Limiter: NewLocalLimiter(lim), MaxRetries: retries})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() { c.QueryUsers(context.Background(), PageParams{}) })
		}
		wg.Wait()
		return m.Stats()
	}
	paced := run(Limits{QueriesPerSecond: 15, QueryBurst: 1, CommandsPerSecond: 5, CommandBurst: 1}, -1)
	if paced.Limited != 0 || paced.Queries != 12 {
		t.Errorf("paced client: %d of %d queries refused", paced.Limited, paced.Queries)
	}
	unpaced := run(fast, -1)
	if unpaced.Limited == 0 {
		t.Errorf("unpaced burst of 12 against a burst of 2 was never refused: %+v", unpaced)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxInFlight = 3 })
	f.m.InjectFault(marketplace.Fault{Route: "/v1/integration_api/users/query", LatencyMS: 30})
	if _, err := f.c.IntegrationToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Go(func() {
			_, err := f.c.QueryUsers(context.Background(), PageParams{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := f.m.Stats(); s.MaxInFlight > 3 || s.MaxInFlight < 2 || s.Queries != 12 {
		t.Errorf("stats %+v, want at most 3 in flight", s)
	}
}

func TestTokenAnswerWithError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"x","expires_in":60,"error":"invalid_client"}`)
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, IntegrationURL: srv.URL, ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AnonymousToken(context.Background()); err == nil {
		t.Error("a 200 token answer with an error field was accepted")
	}
}
