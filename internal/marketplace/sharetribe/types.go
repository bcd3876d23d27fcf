package sharetribe

import (
	"context"
	"encoding/json"
	"iter"
	"time"
)

// Resource is one resource of an API answer: an id, a type, attributes of
// type A and the relationships asked for with include.
type Resource[A any] struct {
	ID            string                  `json:"id"`
	Type          string                  `json:"type"`
	Attributes    A                       `json:"attributes"`
	Relationships map[string]Relationship `json:"relationships,omitempty"`
}

// Relationship points to included resources: {"data": {"id", "type"}} or
// a list of them.
type Relationship struct {
	Data json.RawMessage `json:"data"`
}

// Ref is the id and type of a related resource.
type Ref struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// One decodes a to-one relationship; ok is false if it is empty or a list.
func (r Relationship) One() (ref Ref, ok bool) {
	if err := json.Unmarshal(r.Data, &ref); err != nil || ref.ID == "" {
		return Ref{}, false
	}
	return ref, true
}

// Included is a resource of an answer's "included" list, attributes left
// raw; Decode reads them.
type Included = Resource[json.RawMessage]

// Meta is a query's pagination: totalItems, totalPages, page, perPage
// (events/query gives only perPage).
type Meta struct {
	TotalItems int `json:"totalItems"`
	TotalPages int `json:"totalPages"`
	Page       int `json:"page"`
	PerPage    int `json:"perPage"`
}

// Page is a query's answer.
type Page[T any] struct {
	Data     []T        `json:"data"`
	Included []Included `json:"included,omitempty"`
	Meta     Meta       `json:"meta"`
}

// Full reports whether the page holds as many items as a page can, so
// more may follow.
func (p *Page[T]) Full() bool { return p.Meta.PerPage > 0 && len(p.Data) >= p.Meta.PerPage }

// One is a show or command answer.
type One[T any] struct {
	Data     T          `json:"data"`
	Included []Included `json:"included,omitempty"`
}

// All iterates over every item of a paginated query, fetching page after
// page until one is not full or the last page is reached. It stops at the
// first error, which it yields.
func All[T any](ctx context.Context, fetch func(ctx context.Context, page int) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page := 1; ; page++ {
			p, err := fetch(ctx, page)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range p.Data {
				if !yield(item, nil) {
					return
				}
			}
			if len(p.Data) == 0 || (p.Meta.TotalPages > 0 && page >= p.Meta.TotalPages) || (p.Meta.TotalPages == 0 && !p.Full()) {
				return
			}
		}
	}
}

// Profile is a user's profile.
type Profile struct {
	FirstName       string         `json:"firstName"`
	LastName        string         `json:"lastName"`
	DisplayName     string         `json:"displayName"`
	AbbreviatedName string         `json:"abbreviatedName"`
	Bio             *string        `json:"bio"`
	PublicData      map[string]any `json:"publicData"`
	ProtectedData   map[string]any `json:"protectedData"`
	PrivateData     map[string]any `json:"privateData"`
	Metadata        map[string]any `json:"metadata"`
}

// UserAttributes are a user's attributes (the Integration API's view; the
// Marketplace API's currentUser has the same fields).
type UserAttributes struct {
	Banned        bool      `json:"banned"`
	Deleted       bool      `json:"deleted"`
	State         string    `json:"state"`
	CreatedAt     time.Time `json:"createdAt"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"emailVerified"`
	Profile       Profile   `json:"profile"`
}

// User is a user or currentUser resource.
type User = Resource[UserAttributes]

// Listing states.
const (
	ListingPublished       = "published"
	ListingClosed          = "closed"
	ListingPendingApproval = "pendingApproval"
	ListingDraft           = "draft"
)

// ListingAttributes are a listing's attributes.
type ListingAttributes struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	State       string         `json:"state"`
	Deleted     bool           `json:"deleted"`
	CreatedAt   time.Time      `json:"createdAt"`
	PublicData  map[string]any `json:"publicData"`
	PrivateData map[string]any `json:"privateData"`
	Metadata    map[string]any `json:"metadata"`
}

// Listing is a listing resource.
type Listing = Resource[ListingAttributes]

// TransitionRecord is one step of a transaction's history.
type TransitionRecord struct {
	Transition string    `json:"transition"`
	CreatedAt  time.Time `json:"createdAt"`
	By         string    `json:"by"`
}

// TransactionAttributes are a transaction's attributes.
type TransactionAttributes struct {
	ProcessName        string             `json:"processName"`
	ProcessVersion     int                `json:"processVersion"`
	LastTransition     string             `json:"lastTransition"`
	LastTransitionedAt time.Time          `json:"lastTransitionedAt"`
	CreatedAt          time.Time          `json:"createdAt"`
	Transitions        []TransitionRecord `json:"transitions"`
	ProtectedData      map[string]any     `json:"protectedData"`
	Metadata           map[string]any     `json:"metadata"`
}

// Transaction is a transaction resource.
type Transaction = Resource[TransactionAttributes]

// AuditData says who caused an event.
type AuditData struct {
	UserID    *string `json:"userId"`
	AdminID   *string `json:"adminId"`
	RequestID *string `json:"requestId"`
	ClientID  *string `json:"clientId"`
}

// EventAttributes are an event's attributes. Resource is the resource
// after the change (null after a deletion); PreviousValues holds the
// changed fields' earlier values.
type EventAttributes struct {
	SequenceID     int64           `json:"sequenceId"`
	EventType      string          `json:"eventType"`
	CreatedAt      time.Time       `json:"createdAt"`
	ResourceID     string          `json:"resourceId"`
	ResourceType   string          `json:"resourceType"`
	Source         string          `json:"source"`
	Resource       json.RawMessage `json:"resource"`
	PreviousValues json.RawMessage `json:"previousValues"`
	AuditData      AuditData       `json:"auditData"`
}

// Event is an event resource.
type Event = Resource[EventAttributes]
