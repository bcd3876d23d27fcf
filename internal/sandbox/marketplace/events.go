package marketplace

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event types and sources, as Sharetribe names them.
const (
	eventUserCreated             = "user/created"
	eventUserUpdated             = "user/updated"
	eventUserDeleted             = "user/deleted"
	eventListingCreated          = "listing/created"
	eventListingUpdated          = "listing/updated"
	eventListingDeleted          = "listing/deleted"
	eventTransactionInitiated    = "transaction/initiated"
	eventTransactionTransitioned = "transaction/transitioned"

	sourceMarketplaceAPI = "source/marketplace-api"
	sourceIntegrationAPI = "source/integration-api"
	sourceConsole        = "source/console"
)

// EventsPerPage is the most events one events/query answer holds.
const EventsPerPage = 100

type event struct {
	seq          int64
	id           string
	eventType    string
	createdAt    time.Time
	resourceID   string
	resourceType string
	resource     any // nil for deletions
	previous     any
	source       string
	userID       string
	clientID     string
	requestID    string
}

// emit records an event with the next sequence id. resource and previous
// are rendered trees, never mutated afterwards (extended data is replaced,
// not changed in place). Callers hold m.mu.
func (m *Marketplace) emit(eventType, source, resourceID, resourceType string, resource, previous any, userID, clientID string) {
	m.lastSeq++
	m.events = append(m.events, &event{
		seq:          m.lastSeq,
		id:           newUUID(),
		eventType:    eventType,
		createdAt:    m.opts.Now().UTC().Truncate(time.Millisecond),
		resourceID:   resourceID,
		resourceType: resourceType,
		resource:     resource,
		previous:     previous,
		source:       source,
		userID:       userID,
		clientID:     clientID,
		requestID:    newUUID(),
	})
}

// LastSequenceID returns the sequence id of the newest event, 0 if none.
func (m *Marketplace) LastSequenceID() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq
}

// expireEvents drops events older than the retention. Callers hold m.mu.
func (m *Marketplace) expireEvents() {
	cutoff := m.opts.Now().Add(-m.opts.EventRetention)
	i := 0
	for i < len(m.events) && m.events[i].createdAt.Before(cutoff) {
		i++
	}
	if i > 0 {
		m.events = append([]*event(nil), m.events[i:]...)
	}
}

func eventResource(e *event) map[string]any {
	var audit = map[string]any{"userId": nil, "adminId": nil, "requestId": uuidValue(e.requestID), "clientId": nil}
	if e.userID != "" {
		audit["userId"] = uuidValue(e.userID)
	}
	if e.clientID != "" {
		audit["clientId"] = uuidValue(e.clientID)
	}
	return map[string]any{"id": uuidValue(e.id), "type": keyword("event"), "attributes": map[string]any{
		"sequenceId":     e.seq,
		"eventType":      keyword(e.eventType),
		"createdAt":      timestamp(e.createdAt),
		"resourceId":     uuidValue(e.resourceID),
		"resourceType":   keyword(e.resourceType),
		"resource":       e.resource,
		"previousValues": e.previous,
		"source":         keyword(e.source),
		"auditData":      audit,
		"marketplaceId":  nil,
	}}
}

// relatedTo reports whether e's resource refers to id (a listing's author,
// a transaction's listing, customer or provider).
func relatedTo(e *event, id string) bool {
	res, _ := e.resource.(map[string]any)
	if res == nil {
		res, _ = e.previous.(map[string]any)
	}
	rels, _ := res["relationships"].(map[string]any)
	for _, r := range rels {
		d, _ := r.(map[string]any)["data"].(map[string]any)
		if d != nil && d["id"] == uuidValue(id) {
			return true
		}
	}
	return false
}

// handleEventsQuery answers GET /v1/integration_api/events/query: events in
// ascending sequence order, at most EventsPerPage, after
// startAfterSequenceId or from createdAtStart (not both), filtered by
// eventTypes, resourceId and relatedResourceId.
func (m *Marketplace) handleEventsQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !checkParams(w, r, q, "startAfterSequenceId", "createdAtStart", "eventTypes", "resourceId", "relatedResourceId") {
		return
	}
	var after int64 = -1
	var start time.Time
	if s := q.Get("startAfterSequenceId"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeValidation(w, r, "startAfterSequenceId must be a non-negative integer")
			return
		}
		after = n
	}
	if s := q.Get("createdAtStart"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeValidation(w, r, "createdAtStart must be an ISO 8601 timestamp")
			return
		}
		if after >= 0 {
			writeValidation(w, r, "startAfterSequenceId and createdAtStart cannot be used together")
			return
		}
		start = t
	}
	types := map[string]bool{}
	for _, t := range splitList(q.Get("eventTypes")) {
		if !strings.Contains(t, "/") {
			writeValidation(w, r, "eventTypes must be a comma separated list like user/created,listing/updated")
			return
		}
		types[t] = true
	}
	resourceID, relatedID := q.Get("resourceId"), q.Get("relatedResourceId")
	for _, id := range []string{resourceID, relatedID} {
		if id != "" && !validUUID.MatchString(id) {
			writeValidation(w, r, "resourceId and relatedResourceId must be UUIDs")
			return
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.integ(w, r); !ok {
		return
	}
	m.expireEvents()
	data := []any{}
	for _, e := range m.events {
		if len(data) == EventsPerPage {
			break
		}
		if e.seq <= after || e.createdAt.Before(start) {
			continue
		}
		if len(types) > 0 && !types[e.eventType] {
			continue
		}
		if resourceID != "" && e.resourceID != resourceID {
			continue
		}
		if relatedID != "" && !relatedTo(e, relatedID) {
			continue
		}
		data = append(data, eventResource(e))
	}
	writeAPI(w, r, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{"perPage": EventsPerPage}})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
