package marketplace

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Pagination limits of the query endpoints.
const (
	PerPageDefault = 100
	PerPageMax     = 100
	maxBodyBytes   = 1 << 20
)

var validUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// apiError answers Sharetribe's error body with an optional details text.
func apiError(w http.ResponseWriter, r *http.Request, status int, code, title, details string) {
	e := map[string]any{"id": uuidValue(newUUID()), "status": status, "code": code, "title": title}
	if details != "" {
		e["details"] = details
	}
	writeAPI(w, r, status, map[string]any{"errors": []any{e}})
}

func writeValidation(w http.ResponseWriter, r *http.Request, details string) {
	apiError(w, r, http.StatusBadRequest, "validation-invalid-params", "Invalid params", details)
}

func writeNotFound(w http.ResponseWriter, r *http.Request) {
	apiError(w, r, http.StatusNotFound, "not-found", "Not found", "")
}

// integ authenticates an Integration API call: a live access token with
// scope integ. Callers hold m.mu.
func (m *Marketplace) integ(w http.ResponseWriter, r *http.Request) (*accessToken, bool) {
	raw, ok := bearer(w, r)
	if !ok {
		return nil, false
	}
	at := m.lookupAccess(raw)
	if at == nil {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-invalid-access-token", "Invalid access token")
		return nil, false
	}
	if at.scope != ScopeIntegration {
		writeAPIError(w, r, http.StatusForbidden, "forbidden", "Forbidden")
		return nil, false
	}
	return at, true
}

// marketplaceToken authenticates a Marketplace API call: any live token of
// the marketplace client (anonymous or a user's). Callers hold m.mu.
func (m *Marketplace) marketplaceToken(w http.ResponseWriter, r *http.Request) (*accessToken, bool) {
	raw, ok := bearer(w, r)
	if !ok {
		return nil, false
	}
	at := m.lookupAccess(raw)
	if at == nil {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-invalid-access-token", "Invalid access token")
		return nil, false
	}
	if at.scope == ScopeIntegration {
		writeAPIError(w, r, http.StatusForbidden, "forbidden", "Forbidden")
		return nil, false
	}
	return at, true
}

// checkParams refuses query parameters the endpoint does not know (rather
// than ignoring a filter the simulator does not implement and answering
// wrong results). include, expand, page, perPage and the fields.*,
// limit.* and imageVariant.* families are always allowed.
func checkParams(w http.ResponseWriter, r *http.Request, q url.Values, allowed ...string) bool {
	for k := range q {
		switch {
		case k == "include" || k == "expand" || k == "page" || k == "perPage":
		case strings.HasPrefix(k, "fields.") || strings.HasPrefix(k, "limit.") || strings.HasPrefix(k, "imageVariant."):
		default:
			found := false
			for _, a := range allowed {
				if k == a {
					found = true
					break
				}
			}
			if !found {
				writeValidation(w, r, "unknown query parameter "+k)
				return false
			}
		}
	}
	return true
}

// pagination reads page and perPage.
func pagination(w http.ResponseWriter, r *http.Request, q url.Values) (page, perPage int, ok bool) {
	page, perPage = 1, PerPageDefault
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeValidation(w, r, "page must be a positive integer")
			return 0, 0, false
		}
		page = n
	}
	if s := q.Get("perPage"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > PerPageMax {
			writeValidation(w, r, "perPage must be an integer between 1 and 100")
			return 0, 0, false
		}
		perPage = n
	}
	return page, perPage, true
}

// paginate cuts one page out of items and describes it.
func paginate[T any](items []T, page, perPage int) ([]T, map[string]any) {
	total := len(items)
	meta := map[string]any{
		"totalItems": total,
		"totalPages": int(math.Ceil(float64(total) / float64(perPage))),
		"page":       page,
		"perPage":    perPage,
	}
	start := (page - 1) * perPage
	if start >= total {
		return nil, meta
	}
	return items[start:min(start+perPage, total)], meta
}

func includes(q url.Values) map[string]bool {
	out := map[string]bool{}
	for _, p := range splitList(q.Get("include")) {
		out[p] = true
	}
	return out
}

// readBody reads a command's body, Transit (what the SDKs send) or JSON,
// which must be an object.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "application/transit+json" {
		apiError(w, r, http.StatusBadRequest, "unsupported-content-type", "Unsupported content type",
			"Content-Type must be application/json or application/transit+json")
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, r, http.StatusRequestEntityTooLarge, "request-larger-than-content-length", "Request too large", "")
			return nil, false
		}
		writeValidation(w, r, "unreadable body")
		return nil, false
	}
	var v any
	if mt == "application/transit+json" {
		v, err = decodeTransit(b)
	} else {
		err = json.Unmarshal(b, &v)
	}
	body, isObj := v.(map[string]any)
	if err != nil || !isObj {
		writeValidation(w, r, "the body must be a "+mt+" object")
		return nil, false
	}
	return body, true
}

// bodyID reads the required "id" of a command body.
func bodyID(w http.ResponseWriter, r *http.Request, body map[string]any) (string, bool) {
	id, _ := body["id"].(string)
	if _, present := body["id"]; !present {
		apiError(w, r, http.StatusBadRequest, "validation-missing-key", "Missing key", "id is required")
		return "", false
	}
	if !validUUID.MatchString(id) {
		writeValidation(w, r, "id must be a UUID")
		return "", false
	}
	return strings.ToLower(id), true
}

// disallowed refuses body keys outside allowed.
func disallowed(w http.ResponseWriter, r *http.Request, body map[string]any, allowed ...string) bool {
	for _, k := range sortedKeys(body) {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			apiError(w, r, http.StatusBadRequest, "validation-disallowed-key", "Disallowed key", k+" is not allowed here")
			return true
		}
	}
	return false
}

// queryID reads the required id query parameter.
func queryID(w http.ResponseWriter, r *http.Request, q url.Values) (string, bool) {
	id := q.Get("id")
	if id == "" {
		apiError(w, r, http.StatusBadRequest, "validation-missing-key", "Missing key", "id is required")
		return "", false
	}
	if !validUUID.MatchString(id) {
		writeValidation(w, r, "id must be a UUID")
		return "", false
	}
	return strings.ToLower(id), true
}

// commandResponse is a command's answer: the resource's id and type, or
// the whole resource with expand=true.
func commandResponse(q url.Values, res map[string]any, included []any) map[string]any {
	data := res
	if q.Get("expand") != "true" {
		data = map[string]any{"id": res["id"], "type": res["type"]}
	}
	out := map[string]any{"data": data}
	if len(included) > 0 {
		out["included"] = included
	}
	return out
}

// ---- users

func (m *Marketplace) handleUsersShow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q, "id") {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.integ(w, r); !ok {
		return
	}
	id, ok := queryID(w, r, q)
	if !ok {
		return
	}
	u := m.users[id]
	if u == nil {
		writeNotFound(w, r)
		return
	}
	writeAPI(w, r, http.StatusOK, map[string]any{"data": userResource(u, true)})
}

func (m *Marketplace) handleUsersQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q) {
		return
	}
	page, perPage, ok := pagination(w, r, q)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.integ(w, r); !ok {
		return
	}
	var ids []string
	for _, id := range newestFirst(m.userOrder) {
		if !m.users[id].deleted {
			ids = append(ids, id)
		}
	}
	ids, meta := paginate(ids, page, perPage)
	data := []any{}
	for _, id := range ids {
		data = append(data, userResource(m.users[id], true))
	}
	writeAPI(w, r, http.StatusOK, map[string]any{"data": data, "meta": meta})
}

func (m *Marketplace) handleUsersUpdateProfile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.integ(w, r)
	if !ok {
		return
	}
	id, ok := bodyID(w, r, body)
	if !ok {
		return
	}
	delete(body, "id")
	u := m.users[id]
	if u == nil || u.deleted {
		writeNotFound(w, r)
		return
	}
	if !m.updateProfile(w, r, u, body, true, sourceIntegrationAPI, "", at.clientID) {
		return
	}
	writeAPI(w, r, http.StatusOK, commandResponse(q, userResource(u, true), nil))
}

// handleCurrentUserUpdateProfile answers POST
// /v1/api/current_user/update_profile: a user changes their own profile
// (not metadata, which only the Integration API writes).
func (m *Marketplace) handleCurrentUserUpdateProfile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.marketplaceToken(w, r)
	if !ok {
		return
	}
	if at.userID == "" {
		writeAPIError(w, r, http.StatusForbidden, "forbidden", "Forbidden")
		return
	}
	u := m.users[at.userID]
	if u == nil || u.deleted {
		writeNotFound(w, r)
		return
	}
	if !m.updateProfile(w, r, u, body, false, sourceMarketplaceAPI, u.id, at.clientID) {
		return
	}
	res := currentUser(u)
	writeAPI(w, r, http.StatusOK, commandResponse(q, res, nil))
}

// updateProfile validates and applies a profile update to u, recording a
// user/updated event when anything changed. Callers hold m.mu.
func (m *Marketplace) updateProfile(w http.ResponseWriter, r *http.Request, u *user, body map[string]any, withMetadata bool, source, actor, clientID string) bool {
	allowed := []string{"firstName", "lastName", "displayName", "bio", "publicData", "protectedData", "privateData"}
	if withMetadata {
		allowed = append(allowed, "metadata")
	}
	if disallowed(w, r, body, allowed...) {
		return false
	}
	p := u.profile
	prev := map[string]any{}
	for _, k := range []string{"firstName", "lastName", "displayName", "bio"} {
		v, present := body[k]
		if !present {
			continue
		}
		s, isStr := v.(string)
		if (!isStr && !(k == "bio" && v == nil)) || (k != "bio" && strings.TrimSpace(s) == "") {
			writeValidation(w, r, k+" must be a non-empty string")
			return false
		}
		cur := map[string]*string{"firstName": &p.FirstName, "lastName": &p.LastName, "displayName": &p.DisplayName, "bio": &p.Bio}[k]
		if *cur != s {
			prev[k] = *cur
			*cur = s
		}
	}
	ext := []struct {
		key string
		cur *map[string]any
	}{{"publicData", &p.PublicData}, {"protectedData", &p.ProtectedData}, {"privateData", &p.PrivateData}, {"metadata", &p.Metadata}}
	for _, e := range ext {
		v, present := body[e.key]
		if !present {
			continue
		}
		upd, isObj := v.(map[string]any)
		if !isObj {
			writeValidation(w, r, e.key+" must be an object")
			return false
		}
		merged, tooBig := mergeExtended(*e.cur, upd)
		if tooBig {
			writeValidation(w, r, e.key+" exceeds the maximum size of 50KB")
			return false
		}
		prev[e.key] = orEmpty(*e.cur)
		*e.cur = merged
	}
	if len(prev) == 0 {
		return true
	}
	u.profile = p
	m.emit(eventUserUpdated, source, u.id, "user", userResource(u, true),
		map[string]any{"attributes": map[string]any{"profile": prev}}, actor, clientID)
	return true
}

// ---- listings

// listingPage renders listings with the author relationship and included
// users when asked for.
func (m *Marketplace) renderListing(l *listing, integ bool, inc map[string]bool, included *[]any, seen map[string]bool) map[string]any {
	res := listingResource(l, integ)
	if inc["author"] {
		res["relationships"] = map[string]any{"author": rel(l.authorID, "user")}
		if u := m.users[l.authorID]; u != nil && !seen[u.id] {
			seen[u.id] = true
			*included = append(*included, userResource(u, integ))
		}
	}
	return res
}

func (m *Marketplace) handleListingsShow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q, "id") {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.integ(w, r); !ok {
		return
	}
	id, ok := queryID(w, r, q)
	if !ok {
		return
	}
	l := m.listings[id]
	if l == nil || l.deleted {
		writeNotFound(w, r)
		return
	}
	included := []any{}
	out := map[string]any{"data": m.renderListing(l, true, includes(q), &included, map[string]bool{})}
	if len(included) > 0 {
		out["included"] = included
	}
	writeAPI(w, r, http.StatusOK, out)
}

func (m *Marketplace) handleListingsQuery(w http.ResponseWriter, r *http.Request) {
	m.queryListings(w, r, true)
}

// handleMarketplaceListingsQuery answers GET /v1/api/listings/query: only
// published listings, as the public sees them.
func (m *Marketplace) handleMarketplaceListingsQuery(w http.ResponseWriter, r *http.Request) {
	m.queryListings(w, r, false)
}

func (m *Marketplace) queryListings(w http.ResponseWriter, r *http.Request, integ bool) {
	q := r.URL.Query()
	allowed := []string{"authorId", "ids"}
	if integ {
		allowed = append(allowed, "states")
	}
	if !checkParams(w, r, q, allowed...) {
		return
	}
	page, perPage, ok := pagination(w, r, q)
	if !ok {
		return
	}
	states := map[string]bool{}
	for _, s := range splitList(q.Get("states")) {
		switch s {
		case ListingPublished, ListingClosed, ListingPendingApproval, ListingDraft:
			states[s] = true
		default:
			writeValidation(w, r, "unknown listing state "+s)
			return
		}
	}
	ids := map[string]bool{}
	for _, id := range splitList(q.Get("ids")) {
		if !validUUID.MatchString(id) {
			writeValidation(w, r, "ids must be UUIDs")
			return
		}
		ids[strings.ToLower(id)] = true
	}
	author := q.Get("authorId")
	if author != "" && !validUUID.MatchString(author) {
		writeValidation(w, r, "authorId must be a UUID")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if integ {
		if _, ok := m.integ(w, r); !ok {
			return
		}
	} else if _, ok := m.marketplaceToken(w, r); !ok {
		return
	}
	var matched []*listing
	for _, id := range newestFirst(m.listingOrder) {
		l := m.listings[id]
		switch {
		case l.deleted:
		case !integ && l.State != ListingPublished:
		case len(states) > 0 && !states[l.State]:
		case len(ids) > 0 && !ids[l.id]:
		case author != "" && !strings.EqualFold(author, l.authorID):
		default:
			matched = append(matched, l)
		}
	}
	pageItems, meta := paginate(matched, page, perPage)
	inc := includes(q)
	included, seen := []any{}, map[string]bool{}
	data := []any{}
	for _, l := range pageItems {
		data = append(data, m.renderListing(l, integ, inc, &included, seen))
	}
	out := map[string]any{"data": data, "meta": meta}
	if len(included) > 0 {
		out["included"] = included
	}
	writeAPI(w, r, http.StatusOK, out)
}

func (m *Marketplace) handleListingsUpdate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.integ(w, r)
	if !ok {
		return
	}
	id, ok := bodyID(w, r, body)
	if !ok {
		return
	}
	delete(body, "id")
	if disallowed(w, r, body, "title", "description", "publicData", "privateData", "metadata") {
		return
	}
	l := m.listings[id]
	if l == nil || l.deleted {
		writeNotFound(w, r)
		return
	}
	next := l.Listing
	prev := map[string]any{}
	for _, k := range []string{"title", "description"} {
		v, present := body[k]
		if !present {
			continue
		}
		s, isStr := v.(string)
		if !isStr || (k == "title" && strings.TrimSpace(s) == "") {
			writeValidation(w, r, k+" must be a string (title non-empty)")
			return
		}
		cur := map[string]*string{"title": &next.Title, "description": &next.Description}[k]
		if *cur != s {
			prev[k] = *cur
			*cur = s
		}
	}
	for _, e := range []struct {
		key string
		cur *map[string]any
	}{{"publicData", &next.PublicData}, {"privateData", &next.PrivateData}, {"metadata", &next.Metadata}} {
		v, present := body[e.key]
		if !present {
			continue
		}
		upd, isObj := v.(map[string]any)
		if !isObj {
			writeValidation(w, r, e.key+" must be an object")
			return
		}
		merged, tooBig := mergeExtended(*e.cur, upd)
		if tooBig {
			writeValidation(w, r, e.key+" exceeds the maximum size of 50KB")
			return
		}
		prev[e.key] = orEmpty(*e.cur)
		*e.cur = merged
	}
	if len(prev) > 0 {
		l.Listing = next
		m.emit(eventListingUpdated, sourceIntegrationAPI, l.id, "listing", listingSnapshot(l),
			map[string]any{"attributes": prev}, "", at.clientID)
	}
	m.writeListingCommand(w, r, q, l)
}

func (m *Marketplace) writeListingCommand(w http.ResponseWriter, r *http.Request, q url.Values, l *listing) {
	included := []any{}
	res := m.renderListing(l, true, includes(q), &included, map[string]bool{})
	writeAPI(w, r, http.StatusOK, commandResponse(q, res, included))
}

// listingStateHandler serves listings/open, listings/close and
// listings/approve: open takes closed to published, close published to
// closed (each a no-op when already there), approve pendingApproval to
// published; any other state answers 409 listing-invalid-state.
func (m *Marketplace) listingStateHandler(action string) http.HandlerFunc {
	from, to := map[string]string{"open": ListingClosed, "close": ListingPublished, "approve": ListingPendingApproval}[action],
		map[string]string{"open": ListingPublished, "close": ListingClosed, "approve": ListingPublished}[action]
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !checkParams(w, r, q) {
			return
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		at, ok := m.integ(w, r)
		if !ok {
			return
		}
		id, ok := bodyID(w, r, body)
		if !ok {
			return
		}
		delete(body, "id")
		if disallowed(w, r, body) {
			return
		}
		l := m.listings[id]
		if l == nil || l.deleted {
			writeNotFound(w, r)
			return
		}
		switch {
		case l.State == from:
			prevState := l.State
			l.State = to
			m.emit(eventListingUpdated, sourceIntegrationAPI, l.id, "listing", listingSnapshot(l),
				map[string]any{"attributes": map[string]any{"state": keyword(prevState)}}, "", at.clientID)
		case l.State == to && action != "approve":
		default:
			apiError(w, r, http.StatusConflict, "listing-invalid-state", "Invalid listing state",
				"cannot "+action+" a listing in state "+l.State)
			return
		}
		m.writeListingCommand(w, r, q, l)
	}
}

// ---- transactions

func (m *Marketplace) renderTransaction(t *transaction, inc map[string]bool, included *[]any, seen map[string]bool) map[string]any {
	res := transactionResource(t)
	rels := map[string]any{}
	add := func(name, id string, r map[string]any) {
		rels[name] = rel(id, r["type"].(keyword).String())
		if !seen[id] {
			seen[id] = true
			*included = append(*included, r)
		}
	}
	if l := m.listings[t.ListingID]; inc["listing"] && l != nil {
		add("listing", l.id, listingResource(l, true))
	}
	if u := m.users[t.CustomerID]; inc["customer"] && u != nil {
		add("customer", u.id, userResource(u, true))
	}
	if u := m.users[t.providerID]; inc["provider"] && u != nil {
		add("provider", u.id, userResource(u, true))
	}
	if len(rels) > 0 {
		res["relationships"] = rels
	}
	return res
}

func (m *Marketplace) handleTransactionsQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q, "customerId", "providerId", "listingId", "lastTransitions", "createdAtStart") {
		return
	}
	page, perPage, ok := pagination(w, r, q)
	if !ok {
		return
	}
	for _, k := range []string{"customerId", "providerId", "listingId"} {
		if v := q.Get(k); v != "" && !validUUID.MatchString(v) {
			writeValidation(w, r, k+" must be a UUID")
			return
		}
	}
	var start time.Time
	if s := q.Get("createdAtStart"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeValidation(w, r, "createdAtStart must be an ISO 8601 timestamp")
			return
		}
		start = t
	}
	last := map[string]bool{}
	for _, t := range splitList(q.Get("lastTransitions")) {
		last[t] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.integ(w, r); !ok {
		return
	}
	var matched []*transaction
	for _, id := range newestFirst(m.txOrder) {
		t := m.txs[id]
		switch {
		case q.Get("customerId") != "" && !strings.EqualFold(q.Get("customerId"), t.CustomerID):
		case q.Get("providerId") != "" && !strings.EqualFold(q.Get("providerId"), t.providerID):
		case q.Get("listingId") != "" && !strings.EqualFold(q.Get("listingId"), t.ListingID):
		case len(last) > 0 && !last[t.LastTransition]:
		case t.createdAt.Before(start):
		default:
			matched = append(matched, t)
		}
	}
	pageItems, meta := paginate(matched, page, perPage)
	inc := includes(q)
	included, seen := []any{}, map[string]bool{}
	data := []any{}
	for _, t := range pageItems {
		data = append(data, m.renderTransaction(t, inc, &included, seen))
	}
	out := map[string]any{"data": data, "meta": meta}
	if len(included) > 0 {
		out["included"] = included
	}
	writeAPI(w, r, http.StatusOK, out)
}

var transitionName = regexp.MustCompile(`^transition/[a-z0-9][a-z0-9-]*$`)

// handleTransactionsTransition answers POST
// /v1/integration_api/transactions/transition: the operator moves a
// transaction along its process (no payments, no actions run here).
func (m *Marketplace) handleTransactionsTransition(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.integ(w, r)
	if !ok {
		return
	}
	id, ok := bodyID(w, r, body)
	if !ok {
		return
	}
	if disallowed(w, r, body, "id", "transition", "params") {
		return
	}
	name, _ := body["transition"].(string)
	if !transitionName.MatchString(name) {
		writeValidation(w, r, "transition must be a transition name like transition/accept")
		return
	}
	if p, present := body["params"]; present {
		if _, isObj := p.(map[string]any); !isObj {
			writeValidation(w, r, "params must be an object")
			return
		}
	}
	t := m.txs[id]
	if t == nil {
		apiError(w, r, http.StatusNotFound, "transaction-not-found", "Transaction not found", "")
		return
	}
	if len(t.NextTransitions) > 0 && !containsString(t.NextTransitions, name) {
		apiError(w, r, http.StatusConflict, "transaction-invalid-transition", "Invalid transition",
			name+" is not possible after "+t.LastTransition)
		return
	}
	prev := map[string]any{
		"lastTransition":     keyword(t.LastTransition),
		"lastTransitionedAt": timestamp(t.transitioned),
	}
	now := m.opts.Now().UTC().Truncate(time.Millisecond)
	t.LastTransition = name
	t.transitioned = now
	t.transitions = append(t.transitions, transition{name: name, at: now, by: "operator"})
	t.NextTransitions = nil
	m.emit(eventTransactionTransitioned, sourceIntegrationAPI, t.id, "transaction", transactionSnapshot(t),
		map[string]any{"attributes": prev}, "", at.clientID)
	included := []any{}
	res := m.renderTransaction(t, includes(q), &included, map[string]bool{})
	writeAPI(w, r, http.StatusOK, commandResponse(q, res, included))
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (k keyword) String() string { return string(k) }
