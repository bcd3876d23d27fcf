package marketplace

import (
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"time"
)

// Listing states, as Sharetribe names them.
const (
	ListingPublished       = "published"
	ListingClosed          = "closed"
	ListingPendingApproval = "pendingApproval"
	ListingDraft           = "draft"
)

// MaxExtendedDataBytes is the most JSON one extended-data object
// (publicData, protectedData, privateData, metadata) may hold: 50 KB.
const MaxExtendedDataBytes = 50 * 1024

// Listing is a listing to seed with AddListing.
type Listing struct {
	Title       string
	Description string
	// State defaults to ListingPublished.
	State       string
	PublicData  map[string]any
	PrivateData map[string]any
	Metadata    map[string]any
}

type listing struct {
	id        string
	authorID  string
	createdAt time.Time
	deleted   bool
	Listing
}

// Transaction is a transaction to seed with AddTransaction.
type Transaction struct {
	ListingID  string
	CustomerID string
	// ProcessName defaults to "default-purchase", ProcessVersion to 1.
	ProcessName    string
	ProcessVersion int
	// LastTransition defaults to "transition/request-payment".
	LastTransition string
	// NextTransitions, when set, are the only transitions
	// transactions/transition accepts (others answer 409
	// transaction-invalid-transition). Default: any "transition/…" name.
	NextTransitions []string
	Metadata        map[string]any
	ProtectedData   map[string]any
}

type transition struct {
	name string
	at   time.Time
	by   string
}

type transaction struct {
	id           string
	providerID   string
	createdAt    time.Time
	transitioned time.Time
	transitions  []transition
	Transaction
}

// AddListing creates a listing by authorID and returns its id. It records
// a listing/created event, as the Marketplace API would.
func (m *Marketplace) AddListing(authorID string, l Listing) string {
	if l.State == "" {
		l.State = ListingPublished
	}
	l.PublicData = maps.Clone(l.PublicData)
	l.PrivateData = maps.Clone(l.PrivateData)
	l.Metadata = maps.Clone(l.Metadata)
	li := &listing{id: newUUID(), authorID: authorID, createdAt: m.opts.Now().UTC().Truncate(time.Millisecond), Listing: l}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listings[li.id] = li
	m.listingOrder = append(m.listingOrder, li.id)
	m.emit(eventListingCreated, sourceMarketplaceAPI, li.id, "listing", listingSnapshot(li), map[string]any{}, authorID, m.opts.ClientID)
	return li.id
}

// AddTransaction creates a transaction on t.ListingID (whose author is the
// provider) and returns its id, or "" if the listing does not exist. It
// records a transaction/initiated event.
func (m *Marketplace) AddTransaction(t Transaction) string {
	if t.ProcessName == "" {
		t.ProcessName = "default-purchase"
	}
	if t.ProcessVersion == 0 {
		t.ProcessVersion = 1
	}
	if t.LastTransition == "" {
		t.LastTransition = "transition/request-payment"
	}
	t.Metadata = maps.Clone(t.Metadata)
	t.ProtectedData = maps.Clone(t.ProtectedData)
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.listings[t.ListingID]
	if l == nil {
		return ""
	}
	now := m.opts.Now().UTC().Truncate(time.Millisecond)
	tx := &transaction{id: newUUID(), providerID: l.authorID, createdAt: now, transitioned: now,
		transitions: []transition{{name: t.LastTransition, at: now, by: "customer"}}, Transaction: t}
	m.txs[tx.id] = tx
	m.txOrder = append(m.txOrder, tx.id)
	m.emit(eventTransactionInitiated, sourceMarketplaceAPI, tx.id, "transaction", transactionSnapshot(tx), map[string]any{}, t.CustomerID, m.opts.ClientID)
	return tx.id
}

// DeleteUser marks a user deleted (user/deleted event); it can no longer
// log in and the Integration API shows it with deleted: true.
func (m *Marketplace) DeleteUser(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[id]
	if u == nil || u.deleted {
		return
	}
	prev := userResource(u, true)
	u.deleted = true
	delete(m.byEmail, lowerEmail(u.email))
	m.emit(eventUserDeleted, sourceConsole, id, "user", nil, prev, "", "")
}

// DeleteListing deletes a listing (listing/deleted event).
func (m *Marketplace) DeleteListing(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.listings[id]
	if l == nil || l.deleted {
		return
	}
	prev := listingSnapshot(l)
	l.deleted = true
	m.emit(eventListingDeleted, sourceConsole, id, "listing", nil, prev, "", "")
}

// userResource renders u: with integ, as the Integration API shows any
// user (all extended data); without, as the Marketplace API shows another
// user (public data and metadata only).
func userResource(u *user, integ bool) map[string]any {
	p := u.profile
	var bio any
	if p.Bio != "" {
		bio = p.Bio
	}
	profile := map[string]any{
		"displayName":     p.DisplayName,
		"abbreviatedName": abbreviatedName(p.FirstName, p.LastName),
		"bio":             bio,
		"publicData":      orEmpty(p.PublicData),
		"metadata":        orEmpty(p.Metadata),
	}
	attrs := map[string]any{
		"banned":    u.banned,
		"deleted":   u.deleted,
		"createdAt": timestamp(u.createdAt),
		"profile":   profile,
	}
	if integ {
		state := "active"
		if u.banned {
			state = "banned"
		}
		profile["firstName"] = p.FirstName
		profile["lastName"] = p.LastName
		profile["protectedData"] = orEmpty(p.ProtectedData)
		profile["privateData"] = orEmpty(p.PrivateData)
		attrs["state"] = state
		attrs["email"] = u.email
		attrs["emailVerified"] = u.emailVerified
		attrs["pendingEmail"] = nil
		attrs["stripeConnected"] = false
		attrs["identityProviders"] = []any{}
	}
	return map[string]any{"id": uuidValue(u.id), "type": keyword("user"), "attributes": attrs}
}

// listingResource renders l: with integ, privateData included.
func listingResource(l *listing, integ bool) map[string]any {
	attrs := map[string]any{
		"title":            l.Title,
		"description":      l.Description,
		"state":            keyword(l.State),
		"deleted":          l.deleted,
		"createdAt":        timestamp(l.createdAt),
		"geolocation":      nil,
		"price":            nil,
		"availabilityPlan": nil,
		"publicData":       orEmpty(l.PublicData),
		"metadata":         orEmpty(l.Metadata),
	}
	if integ {
		attrs["privateData"] = orEmpty(l.PrivateData)
	}
	return map[string]any{"id": uuidValue(l.id), "type": keyword("listing"), "attributes": attrs}
}

func transactionResource(t *transaction) map[string]any {
	trs := make([]any, len(t.transitions))
	for i, tr := range t.transitions {
		trs[i] = map[string]any{"transition": keyword(tr.name), "createdAt": timestamp(tr.at), "by": keyword(tr.by)}
	}
	return map[string]any{"id": uuidValue(t.id), "type": keyword("transaction"), "attributes": map[string]any{
		"createdAt":          timestamp(t.createdAt),
		"processName":        keyword(t.ProcessName),
		"processVersion":     t.ProcessVersion,
		"lastTransition":     keyword(t.LastTransition),
		"lastTransitionedAt": timestamp(t.transitioned),
		"transitions":        trs,
		"lineItems":          []any{},
		"payinTotal":         nil,
		"payoutTotal":        nil,
		"protectedData":      orEmpty(t.ProtectedData),
		"metadata":           orEmpty(t.Metadata),
	}}
}

// rel is a to-one relationship object.
func rel(id, typ string) map[string]any {
	return map[string]any{"data": map[string]any{"id": uuidValue(id), "type": keyword(typ)}}
}

// listingSnapshot and transactionSnapshot are the resources events carry:
// the Integration API's view with the relationships to other resources,
// which relatedResourceId filters on.
func listingSnapshot(l *listing) map[string]any {
	res := listingResource(l, true)
	res["relationships"] = map[string]any{"author": rel(l.authorID, "user")}
	return res
}

func transactionSnapshot(t *transaction) map[string]any {
	res := transactionResource(t)
	res["relationships"] = map[string]any{
		"listing":  rel(t.ListingID, "listing"),
		"customer": rel(t.CustomerID, "user"),
		"provider": rel(t.providerID, "user"),
	}
	return res
}

// mergeExtended applies a top-level merge of update onto cur, as
// Sharetribe does: keys in update replace those in cur, a key set to null
// is removed. It returns a new map (event snapshots keep the old one) and
// whether the result exceeds MaxExtendedDataBytes.
func mergeExtended(cur, update map[string]any) (map[string]any, bool) {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range update {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	return out, err != nil || len(b) > MaxExtendedDataBytes
}

// newestFirst returns ids in reverse creation order: Sharetribe's query
// endpoints sort by createdAt descending by default.
func newestFirst(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[len(ids)-1-i] = id
	}
	return out
}

func lowerEmail(e string) string { return strings.ToLower(e) }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
