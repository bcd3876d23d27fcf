package backlot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/marketplace/events"
	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
)

// Errors a *MarketplaceError matches with errors.Is, by the marketplace's
// HTTP status.
var (
	ErrMarketplaceInvalid     = errors.New("marketplace: invalid request") // 400
	ErrMarketplaceForbidden   = errors.New("marketplace: forbidden")       // 401, 403: backlot's credentials were refused
	ErrMarketplaceNotFound    = errors.New("marketplace: not found")       // 404
	ErrMarketplaceConflict    = errors.New("marketplace: conflict")        // 409
	ErrMarketplaceRateLimited = errors.New("marketplace: rate limited")    // 429, after backlot's own retries
	ErrMarketplaceUnavailable = errors.New("marketplace: unavailable")     // 5xx, or no answer at all
)

// MarketplaceError is a failed marketplace call. WriteError answers it
// with the error envelope, the marketplace's own error body in
// original_error: 400, 404 and 409 keep their status, 429 becomes 503
// with Retry-After, anything else (refused credentials, 5xx, no answer)
// 502.
type MarketplaceError struct {
	// Method and Path name the call ("GET", "/v1/integration_api/users/show").
	Method string
	Path   string
	// Status is the marketplace's HTTP status; 0 when it did not answer.
	Status int
	// Code is the first error code of the answer ("not-found").
	Code string
	// RetryAfter is the marketplace's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Body is the marketplace's error body, {"errors": [...]}.
	Body json.RawMessage
	// Err is the cause.
	Err error
}

func (e *MarketplaceError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *MarketplaceError) Unwrap() error { return e.Err }

// Is matches the ErrMarketplace… sentinels.
func (e *MarketplaceError) Is(target error) bool {
	switch target {
	case ErrMarketplaceInvalid:
		return e.Status == http.StatusBadRequest
	case ErrMarketplaceForbidden:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrMarketplaceNotFound:
		return e.Status == http.StatusNotFound
	case ErrMarketplaceConflict:
		return e.Status == http.StatusConflict
	case ErrMarketplaceRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrMarketplaceUnavailable:
		return e.Status == 0 || e.Status >= 500
	}
	return false
}

// envelope is the *Error WriteError answers e with.
func (e *MarketplaceError) envelope() *Error {
	out := &Error{Err: e, Description: fmt.Sprintf("the marketplace refused %s %s", e.Method, e.Path)}
	if json.Valid(e.Body) && len(e.Body) > 0 {
		out.Original = e.Body
	}
	switch e.Status {
	case http.StatusBadRequest:
		out.Status, out.Code = http.StatusBadRequest, "marketplace_invalid_request"
	case http.StatusNotFound:
		out.Status, out.Code = http.StatusNotFound, "marketplace_not_found"
	case http.StatusConflict:
		out.Status, out.Code = http.StatusConflict, "marketplace_conflict"
	case http.StatusTooManyRequests:
		out.Status, out.Code = http.StatusServiceUnavailable, "marketplace_rate_limited"
		out.Message = "The marketplace is busy. Please try again shortly."
		if e.RetryAfter > 0 {
			out.Header = http.Header{"Retry-After": {strconv.Itoa(int((e.RetryAfter + time.Second - 1) / time.Second))}}
		}
	case 0:
		out.Status, out.Code = http.StatusBadGateway, "marketplace_unreachable"
		out.Description = fmt.Sprintf("the marketplace did not answer %s %s", e.Method, e.Path)
	default:
		out.Status, out.Code = http.StatusBadGateway, "marketplace_error"
	}
	return out
}

// Marketplace calls one configured Sharetribe marketplace's Integration
// API with the integration client credentials, within the marketplace's
// rate limits (shared by every instance when the store is PostgreSQL).
// Answers are Sharetribe's JSON as received ({"data": …, "included": …,
// "meta": …}); failures are *MarketplaceError. Query parameters and
// command bodies use Sharetribe's names (perPage, authorId, publicData…).
type Marketplace struct {
	name string
	c    *sharetribe.Client
	keys *secrets.Keyring // derives the checksum key of WriteChecked
}

// Marketplace returns the marketplace configured under name, nil if there
// is none.
func (a *App) Marketplace(name string) *Marketplace { return a.markets[name] }

// Name is the marketplace's configured name.
func (m *Marketplace) Name() string { return m.name }

// Integration makes any Integration API call: GET (a query) or POST (a
// command, body as JSON) to path under /v1/integration_api/, such as
// "stock_adjustments/create".
func (m *Marketplace) Integration(ctx context.Context, method, path string, params url.Values, body any) (json.RawMessage, error) {
	out, err := m.c.Integration(ctx, method, path, params, body)
	if err != nil {
		return nil, marketplaceError(method, "/v1/integration_api/"+path, err)
	}
	return out, nil
}

func (m *Marketplace) query(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return m.Integration(ctx, http.MethodGet, path, params, nil)
}

// command posts body with "id" set to id; fields is a JSON object (a
// struct or map) or nil.
func (m *Marketplace) command(ctx context.Context, path, id string, fields any) (json.RawMessage, error) {
	body := map[string]any{}
	if fields != nil {
		b, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("marketplace %s: encode %s: %w", m.name, path, err)
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, fmt.Errorf("marketplace %s: %s takes a JSON object: %w", m.name, path, err)
		}
	}
	body["id"] = id
	return m.Integration(ctx, http.MethodPost, path, url.Values{"expand": {"true"}}, body)
}

// QueryUsers is users/query (params: page, perPage, include…).
func (m *Marketplace) QueryUsers(ctx context.Context, params url.Values) (json.RawMessage, error) {
	return m.query(ctx, "users/query", params)
}

// ShowUser is users/show for id.
func (m *Marketplace) ShowUser(ctx context.Context, id string) (json.RawMessage, error) {
	return m.query(ctx, "users/show", url.Values{"id": {id}})
}

// UpdateUserProfile is users/update_profile: update holds Sharetribe's
// fields (firstName, publicData, privateData, metadata…); extended data
// merges at the top level and a key set to null is removed.
func (m *Marketplace) UpdateUserProfile(ctx context.Context, id string, update any) (json.RawMessage, error) {
	return m.command(ctx, "users/update_profile", id, update)
}

// QueryListings is listings/query (params: authorId, states, ids,
// include, page, perPage).
func (m *Marketplace) QueryListings(ctx context.Context, params url.Values) (json.RawMessage, error) {
	return m.query(ctx, "listings/query", params)
}

// ShowListing is listings/show for id.
func (m *Marketplace) ShowListing(ctx context.Context, id string) (json.RawMessage, error) {
	return m.query(ctx, "listings/show", url.Values{"id": {id}})
}

// UpdateListing is listings/update (title, description, publicData,
// privateData, metadata).
func (m *Marketplace) UpdateListing(ctx context.Context, id string, update any) (json.RawMessage, error) {
	return m.command(ctx, "listings/update", id, update)
}

// CloseListing is listings/close.
func (m *Marketplace) CloseListing(ctx context.Context, id string) (json.RawMessage, error) {
	return m.command(ctx, "listings/close", id, nil)
}

// OpenListing is listings/open.
func (m *Marketplace) OpenListing(ctx context.Context, id string) (json.RawMessage, error) {
	return m.command(ctx, "listings/open", id, nil)
}

// ApproveListing is listings/approve.
func (m *Marketplace) ApproveListing(ctx context.Context, id string) (json.RawMessage, error) {
	return m.command(ctx, "listings/approve", id, nil)
}

// QueryTransactions is transactions/query (params: listingId, customerId,
// providerId, lastTransitions, include, page, perPage).
func (m *Marketplace) QueryTransactions(ctx context.Context, params url.Values) (json.RawMessage, error) {
	return m.query(ctx, "transactions/query", params)
}

// TransitionTransaction is transactions/transition with an operator
// transition ("transition/…"); params may be nil.
func (m *Marketplace) TransitionTransaction(ctx context.Context, id, transition string, params any) (json.RawMessage, error) {
	body := map[string]any{"transition": transition}
	if params != nil {
		body["params"] = params
	}
	return m.command(ctx, "transactions/transition", id, body)
}

// marketplaceError turns a client error into a *MarketplaceError.
func marketplaceError(method, path string, err error) error {
	var api *sharetribe.APIError
	if errors.As(err, &api) {
		return &MarketplaceError{Method: api.Method, Path: api.Path, Status: api.Status, Code: api.Code(),
			RetryAfter: api.RetryAfter, Body: api.Body, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &MarketplaceError{Method: method, Path: path, Err: err}
}

// buildMarketplaces makes a client for every configured marketplace and
// an event poller for those with events.types.
func (a *App) buildMarketplaces() error {
	a.markets = map[string]*Marketplace{}
	for name, mc := range a.cfg.Marketplaces {
		env := sharetribe.Environment(mc.Environment)
		if env == "" {
			env = sharetribe.EnvDev
		}
		cc := sharetribe.Config{APIURL: mc.APIURL, IntegrationURL: mc.IntegrationAPIURL,
			ClientID: mc.ClientID, ClientSecret: mc.ClientSecret,
			IntegrationClientID: mc.Integration.ClientID, IntegrationClientSecret: mc.Integration.ClientSecret,
			Environment: env}
		if a.store.Backend() == store.BackendPostgres {
			// Sharetribe counts per client IP: instances sharing the
			// database share the budget too.
			cc.Limiter = sharetribe.NewSharedLimiter(a.store, "marketplace:"+name, sharetribe.DefaultLimits(env))
		}
		c, err := sharetribe.New(cc)
		if err != nil {
			return fmt.Errorf("marketplaces.%s: %w", name, err)
		}
		a.markets[name] = &Marketplace{name: name, c: c, keys: a.keys}
		if len(mc.Events.Types) == 0 {
			continue
		}
		p, err := events.New(pollerConfig(name, mc), events.Deps{Source: c, Store: a.store, Enqueue: a.engine.EnqueueTx,
			WakeFunc: a.engine.WakeKind, Logger: a.log, Metrics: a.reg})
		if err != nil {
			return fmt.Errorf("marketplaces.%s.events: %w", name, err)
		}
		a.pollers = append(a.pollers, p)
	}
	return nil
}

func pollerConfig(name string, mc config.Marketplace) events.Config {
	retention := events.RetentionDevTest
	if mc.Environment == string(sharetribe.EnvLive) {
		retention = events.RetentionLive
	}
	return events.Config{Marketplace: name, Types: mc.Events.Types, Job: mc.Events.Job, Poll: mc.Events.Poll.D(),
		StartBeginning: mc.Events.Start == "beginning", Retention: retention}
}

// startPollers starts the event pollers (each polls only while this
// instance leads for its marketplace).
func (a *App) startPollers(ctx context.Context) error {
	for _, p := range a.pollers {
		if err := p.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stopPollers stops them, letting a commit in progress finish.
func (a *App) stopPollers(ctx context.Context) {
	for _, p := range a.pollers {
		if err := p.Stop(ctx); err != nil {
			a.log.Warn("stopping marketplace event poller", "error", err.Error())
		}
	}
}
