package sharetribe

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ProfileUpdate is a profile change. Nil fields are left alone. Extended
// data merges at the top level: the keys given replace the stored ones,
// a key set to nil is removed, other keys stay. Each extended-data object
// may hold at most 50 KB of JSON.
type ProfileUpdate struct {
	FirstName     *string        `json:"firstName,omitempty"`
	LastName      *string        `json:"lastName,omitempty"`
	DisplayName   *string        `json:"displayName,omitempty"`
	Bio           *string        `json:"bio,omitempty"`
	PublicData    map[string]any `json:"publicData,omitempty"`
	ProtectedData map[string]any `json:"protectedData,omitempty"`
	PrivateData   map[string]any `json:"privateData,omitempty"`
	// Metadata is written only through the Integration API.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// ListingUpdate is a listing change; nil fields are left alone and
// extended data merges as in ProfileUpdate.
type ListingUpdate struct {
	Title       *string        `json:"title,omitempty"`
	Description *string        `json:"description,omitempty"`
	PublicData  map[string]any `json:"publicData,omitempty"`
	PrivateData map[string]any `json:"privateData,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// PageParams picks a page of a query: Page from 1, PerPage at most 100
// (zero values mean the API's defaults, page 1 of 100).
type PageParams struct {
	Page    int
	PerPage int
}

func (p PageParams) set(q url.Values) {
	if p.Page > 0 {
		q.Set("page", strconv.Itoa(p.Page))
	}
	if p.PerPage > 0 {
		q.Set("perPage", strconv.Itoa(p.PerPage))
	}
}

func setList(q url.Values, key string, vals []string) {
	if len(vals) > 0 {
		q.Set(key, strings.Join(vals, ","))
	}
}

// commandQuery asks commands for the whole resource back.
func commandQuery(include []string) url.Values {
	q := url.Values{"expand": {"true"}}
	setList(q, "include", include)
	return q
}

// ---- Marketplace API, for a user

// CurrentUser returns the user userToken belongs to
// (GET /v1/api/current_user/show).
func (c *Client) CurrentUser(ctx context.Context, userToken string) (*User, error) {
	var out One[User]
	if err := c.do(ctx, c.userCall(Query, userToken, "current_user/show", nil, nil), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// UpdateCurrentUserProfile changes the profile of the user userToken
// belongs to (POST /v1/api/current_user/update_profile); Metadata must be
// nil. It returns the updated user.
func (c *Client) UpdateCurrentUserProfile(ctx context.Context, userToken string, upd ProfileUpdate) (*User, error) {
	var out One[User]
	if err := c.do(ctx, c.userCall(Command, userToken, "current_user/update_profile", commandQuery(nil), upd), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// ---- Integration API: users

// ShowUser returns a user by id.
func (c *Client) ShowUser(ctx context.Context, id string) (*User, error) {
	var out One[User]
	if err := c.do(ctx, c.integCall(Query, "users/show", url.Values{"id": {id}}, nil), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// QueryUsers returns a page of users, newest first.
func (c *Client) QueryUsers(ctx context.Context, p PageParams) (*Page[User], error) {
	q := url.Values{}
	p.set(q)
	var out Page[User]
	if err := c.do(ctx, c.integCall(Query, "users/query", q, nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateUserProfile changes a user's profile, metadata included.
func (c *Client) UpdateUserProfile(ctx context.Context, id string, upd ProfileUpdate) (*User, error) {
	body := struct {
		ID string `json:"id"`
		ProfileUpdate
	}{id, upd}
	var out One[User]
	if err := c.do(ctx, c.integCall(Command, "users/update_profile", commandQuery(nil), body), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// ---- Integration API: listings

// ListingsQuery filters listings/query.
type ListingsQuery struct {
	AuthorID string
	IDs      []string
	// States filters by state; empty means any.
	States  []string
	Include []string // "author"
	PageParams
}

// ShowListing returns a listing by id (include: "author").
func (c *Client) ShowListing(ctx context.Context, id string, include ...string) (*One[Listing], error) {
	q := url.Values{"id": {id}}
	setList(q, "include", include)
	var out One[Listing]
	if err := c.do(ctx, c.integCall(Query, "listings/show", q, nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryListings returns a page of listings in any state, newest first.
func (c *Client) QueryListings(ctx context.Context, lq ListingsQuery) (*Page[Listing], error) {
	q := url.Values{}
	if lq.AuthorID != "" {
		q.Set("authorId", lq.AuthorID)
	}
	setList(q, "ids", lq.IDs)
	setList(q, "states", lq.States)
	setList(q, "include", lq.Include)
	lq.set(q)
	var out Page[Listing]
	if err := c.do(ctx, c.integCall(Query, "listings/query", q, nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateListing changes a listing and returns it.
func (c *Client) UpdateListing(ctx context.Context, id string, upd ListingUpdate) (*Listing, error) {
	body := struct {
		ID string `json:"id"`
		ListingUpdate
	}{id, upd}
	return c.listingCommand(ctx, "listings/update", body)
}

// OpenListing publishes a closed listing again.
func (c *Client) OpenListing(ctx context.Context, id string) (*Listing, error) {
	return c.listingCommand(ctx, "listings/open", map[string]string{"id": id})
}

// CloseListing closes a published listing.
func (c *Client) CloseListing(ctx context.Context, id string) (*Listing, error) {
	return c.listingCommand(ctx, "listings/close", map[string]string{"id": id})
}

// ApproveListing publishes a listing pending approval.
func (c *Client) ApproveListing(ctx context.Context, id string) (*Listing, error) {
	return c.listingCommand(ctx, "listings/approve", map[string]string{"id": id})
}

func (c *Client) listingCommand(ctx context.Context, path string, body any) (*Listing, error) {
	var out One[Listing]
	if err := c.do(ctx, c.integCall(Command, path, commandQuery(nil), body), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// ---- Integration API: transactions

// TransactionsQuery filters transactions/query.
type TransactionsQuery struct {
	CustomerID      string
	ProviderID      string
	ListingID       string
	LastTransitions []string
	CreatedAtStart  time.Time
	Include         []string // "listing", "customer", "provider"
	PageParams
}

// QueryTransactions returns a page of transactions, newest first.
func (c *Client) QueryTransactions(ctx context.Context, tq TransactionsQuery) (*Page[Transaction], error) {
	q := url.Values{}
	for k, v := range map[string]string{"customerId": tq.CustomerID, "providerId": tq.ProviderID, "listingId": tq.ListingID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	setList(q, "lastTransitions", tq.LastTransitions)
	if !tq.CreatedAtStart.IsZero() {
		q.Set("createdAtStart", tq.CreatedAtStart.UTC().Format(time.RFC3339Nano))
	}
	setList(q, "include", tq.Include)
	tq.set(q)
	var out Page[Transaction]
	if err := c.do(ctx, c.integCall(Query, "transactions/query", q, nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TransitionTransaction moves a transaction along its process with an
// operator transition ("transition/…"); params may be nil.
func (c *Client) TransitionTransaction(ctx context.Context, id, transition string, params map[string]any) (*Transaction, error) {
	body := map[string]any{"id": id, "transition": transition}
	if params != nil {
		body["params"] = params
	}
	var out One[Transaction]
	if err := c.do(ctx, c.integCall(Command, "transactions/transition", commandQuery(nil), body), &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// ---- Integration API: events

// EventsQuery filters events/query. At most one of StartAfterSequenceID
// and CreatedAtStart may be set; with neither, the oldest retained events
// come first.
type EventsQuery struct {
	StartAfterSequenceID *int64
	CreatedAtStart       time.Time
	EventTypes           []string // e.g. "listing/updated"
	ResourceID           string
	RelatedResourceID    string
}

// QueryEvents returns up to one page (100) of events in sequence order.
// Page.Full says whether more may be waiting.
func (c *Client) QueryEvents(ctx context.Context, eq EventsQuery) (*Page[Event], error) {
	if eq.StartAfterSequenceID != nil && !eq.CreatedAtStart.IsZero() {
		return nil, fmt.Errorf("sharetribe: events/query takes StartAfterSequenceID or CreatedAtStart, not both")
	}
	q := url.Values{}
	if eq.StartAfterSequenceID != nil {
		q.Set("startAfterSequenceId", strconv.FormatInt(*eq.StartAfterSequenceID, 10))
	}
	if !eq.CreatedAtStart.IsZero() {
		q.Set("createdAtStart", eq.CreatedAtStart.UTC().Format(time.RFC3339Nano))
	}
	setList(q, "eventTypes", eq.EventTypes)
	if eq.ResourceID != "" {
		q.Set("resourceId", eq.ResourceID)
	}
	if eq.RelatedResourceID != "" {
		q.Set("relatedResourceId", eq.RelatedResourceID)
	}
	var out Page[Event]
	if err := c.do(ctx, c.integCall(Query, "events/query", q, nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}
