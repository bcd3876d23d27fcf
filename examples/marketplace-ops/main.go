// Command marketplace-ops is the server side of a Sharetribe marketplace's
// operations, built on backlot as a Go framework: the Integration API with
// client credentials held by the server, an internal batch endpoint that
// closes listings matching criteria through jobs, a streamed CSV export of
// users joined with their listings, offer analytics (count and median), a
// scheduled reminder job, user endpoints behind HS256 tokens, and
// marketplace events polled into jobs a worker handles.
//
//	go run ./examples/marketplace-ops --config examples/marketplace-ops/backlot.yaml
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/jobs"
)

func main() {
	configPath := flag.String("config", "backlot.yaml", "configuration file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, nil); err != nil {
		fmt.Fprintln(os.Stderr, "marketplace-ops:", err)
		os.Exit(1)
	}
}

// Job kinds.
const (
	jobCloseBatch = "listings.close_batch" // find the listings matching criteria
	jobClose      = "listings.close"       // close one listing
	jobReminders  = "reminders.send"       // scheduled in backlot.yaml
	jobEvent      = "marketplace.event"    // one per polled marketplace event
)

// criteria select listings to close: by author, by publicData values, or
// both. At least one is required.
type criteria struct {
	AuthorID   string         `json:"author_id,omitempty"`
	PublicData map[string]any `json:"public_data,omitempty"`
}

// resource is the part of a Sharetribe resource the example reads.
type resource struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Attributes    json.RawMessage `json:"attributes"`
	Relationships map[string]struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	} `json:"relationships"`
}

type page struct {
	Data     []resource `json:"data"`
	Included []resource `json:"included"`
	Meta     struct {
		TotalPages int `json:"totalPages"`
	} `json:"meta"`
}

type listingAttrs struct {
	Title      string         `json:"title"`
	State      string         `json:"state"`
	CreatedAt  time.Time      `json:"createdAt"`
	PublicData map[string]any `json:"publicData"`
	Metadata   map[string]any `json:"metadata"`
}

type userAttrs struct {
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"createdAt"`
	Profile   struct {
		DisplayName string         `json:"displayName"`
		Metadata    map[string]any `json:"metadata"`
	} `json:"profile"`
}

// pages calls query for page 1, 2, … until the last page, stopping early
// when fn returns false or an error.
func pages(ctx context.Context, query func(ctx context.Context, p url.Values) (json.RawMessage, error), params url.Values, fn func(p *page) (bool, error)) error {
	for n := 1; ; n++ {
		q := url.Values{}
		for k, v := range params {
			q[k] = v
		}
		q.Set("page", strconv.Itoa(n))
		q.Set("perPage", "100")
		raw, err := query(ctx, q)
		if err != nil {
			return err
		}
		var p page
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decode page %d: %w", n, err)
		}
		more, err := fn(&p)
		if err != nil || !more || len(p.Data) == 0 || n >= p.Meta.TotalPages {
			return err
		}
	}
}

// run builds the app, adds the routes and workers, and serves until ctx
// ends. With ln nil it listens on server.listen.
func run(ctx context.Context, configPath string, ln net.Listener) error {
	app, err := backlot.New(backlot.WithConfigFile(configPath))
	if err != nil {
		return err
	}
	mkt := app.Marketplace("main")
	if mkt == nil {
		return errors.New("backlot.yaml has no marketplace named main")
	}

	// ---- internal endpoints (API key "ops")

	// POST /internal/listings/close {"author_id", "public_data"}: answers
	// 202 at once; a job finds the matching listings and enqueues one
	// close job per listing, so each close retries on its own.
	app.Handle("POST /internal/listings/close", []string{"ops"}, func(w http.ResponseWriter, r *http.Request) {
		var c criteria
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || (c.AuthorID == "" && len(c.PublicData) == 0) {
			backlot.WriteError(w, r, backlot.NewError(http.StatusBadRequest, "invalid_criteria",
				`the body must be {"author_id": "<uuid>", "public_data": {"key": value}} with at least one of them`))
			return
		}
		payload, _ := json.Marshal(c)
		res, err := app.Jobs().Enqueue(r.Context(), jobCloseBatch, payload, nil)
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]int64{"job_id": res.ID})
	})
	app.Worker(jobCloseBatch, func(ctx context.Context, job *jobs.Job) error {
		var c criteria
		if err := json.Unmarshal(job.Payload, &c); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		params := url.Values{"states": {"published"}}
		if c.AuthorID != "" {
			params.Set("authorId", c.AuthorID)
		}
		matched := 0
		err := pages(ctx, mkt.QueryListings, params, func(p *page) (bool, error) {
			for _, l := range p.Data {
				var a listingAttrs
				if err := json.Unmarshal(l.Attributes, &a); err != nil {
					return false, err
				}
				if !matches(a.PublicData, c.PublicData) {
					continue
				}
				matched++
				payload, _ := json.Marshal(map[string]string{"id": l.ID})
				// Deduped per batch: a retried batch job does not close twice.
				key := fmt.Sprintf("close:%d:%s", job.ID, l.ID)
				if _, err := app.Jobs().Enqueue(ctx, jobClose, payload, &jobs.EnqueueOpts{DedupeKey: key}); err != nil {
					return false, err
				}
			}
			return true, nil
		})
		jobs.Logf(ctx, "%d listings match; one close job each", matched)
		return err
	})
	app.Worker(jobClose, func(ctx context.Context, job *jobs.Job) error {
		var in struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(job.Payload, &in); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		_, err := mkt.CloseListing(ctx, in.ID)
		if errors.Is(err, backlot.ErrMarketplaceConflict) {
			jobs.Logf(ctx, "listing %s was not open any more", in.ID)
			return nil
		}
		return err
	})

	// GET /internal/export/users.csv: users joined with their listings,
	// one row per listing with its author's columns (users without a
	// listing are left out), streamed a page (100 listings, one query) at a time, so
	// memory stays flat however many there are.
	app.Handle("GET /internal/export/users.csv", []string{"ops"}, func(w http.ResponseWriter, r *http.Request) {
		exportCSV(w, r, mkt)
	})

	// GET /internal/listings/{id}: one listing as the Integration API
	// sees it (metadata included).
	app.Handle("GET /internal/listings/{id}", []string{"ops"}, func(w http.ResponseWriter, r *http.Request) {
		raw, err := mkt.ShowListing(r.Context(), r.PathValue("id"))
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	})

	// ---- user endpoints (HS256 tokens: missing 401, invalid 403)

	// GET /api/me: the caller's marketplace profile, read with the
	// Integration API (the token's subject is their user id).
	app.Handle("GET /api/me", []string{"users"}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		raw, err := mkt.ShowUser(r.Context(), p.Subject)
		if err != nil {
			backlot.WriteError(w, r, err) // a marketplace refusal carries its body in original_error
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	})

	// GET /api/listings/{id}/offers: how many offers a project listing
	// has and their median amount. In this bidding marketplace an offer
	// is a transaction on the listing, its amount (minor units) in the
	// transaction's protectedData.offerAmount.
	app.Handle("GET /api/listings/{id}/offers", []string{"users"}, func(w http.ResponseWriter, r *http.Request) {
		var amounts []float64
		err := pages(r.Context(), mkt.QueryTransactions, url.Values{"listingId": {r.PathValue("id")}}, func(p *page) (bool, error) {
			for _, tx := range p.Data {
				var a struct {
					ProtectedData struct {
						OfferAmount *float64 `json:"offerAmount"`
					} `json:"protectedData"`
				}
				if err := json.Unmarshal(tx.Attributes, &a); err != nil {
					return false, err
				}
				if a.ProtectedData.OfferAmount != nil {
					amounts = append(amounts, *a.ProtectedData.OfferAmount)
				}
			}
			return true, nil
		})
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		out := map[string]any{"listing_id": r.PathValue("id"), "count": len(amounts), "median": nil}
		if m, ok := median(amounts); ok {
			out["median"] = m
		}
		writeJSON(w, http.StatusOK, out)
	})

	// ---- scheduled work

	// reminders.send (cron in backlot.yaml): remind the authors of
	// listings still waiting for approval, at most once a day each; the
	// reminder is recorded in the author's metadata.
	app.Worker(jobReminders, func(ctx context.Context, job *jobs.Job) error {
		now := time.Now().UTC()
		sent := 0
		err := pages(ctx, mkt.QueryListings, url.Values{"states": {"pendingApproval"}, "include": {"author"}}, func(p *page) (bool, error) {
			for _, l := range p.Data {
				author := l.Relationships["author"].Data.ID
				if author == "" {
					continue
				}
				raw, err := mkt.ShowUser(ctx, author)
				if err != nil {
					return false, err
				}
				var u struct {
					Data struct {
						Attributes userAttrs `json:"attributes"`
					} `json:"data"`
				}
				if err := json.Unmarshal(raw, &u); err != nil {
					return false, err
				}
				if last, _ := u.Data.Attributes.Profile.Metadata["lastReminderAt"].(string); last != "" {
					if t, err := time.Parse(time.RFC3339, last); err == nil && now.Sub(t) < 24*time.Hour {
						continue
					}
				}
				// A real app sends the email here (through a proxy route
				// or a vendor SDK); the metadata write makes it once a day.
				if _, err := mkt.UpdateUserProfile(ctx, author, map[string]any{"metadata": map[string]any{
					"lastReminderAt": now.Format(time.RFC3339), "reminderListingId": l.ID}}); err != nil {
					return false, err
				}
				sent++
			}
			return true, nil
		})
		jobs.Logf(ctx, "sent %d reminders", sent)
		return err
	})

	// ---- marketplace events

	// marketplace.event: one job per polled event (listing/created here).
	// New listings get metadata.indexedAt; that write makes a
	// listing/updated event, which backlot.yaml does not poll, so no loop.
	app.Worker(jobEvent, func(ctx context.Context, job *jobs.Job) error {
		var ev struct {
			Attributes struct {
				EventType  string    `json:"eventType"`
				ResourceID string    `json:"resourceId"`
				CreatedAt  time.Time `json:"createdAt"`
				SequenceID int64     `json:"sequenceId"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(job.Payload, &ev); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		a := ev.Attributes
		jobs.Logf(ctx, "event %d %s %s", a.SequenceID, a.EventType, a.ResourceID)
		if a.EventType != "listing/created" {
			return nil
		}
		_, err := mkt.UpdateListing(ctx, a.ResourceID, map[string]any{"metadata": map[string]any{
			"indexedAt": a.CreatedAt.UTC().Format(time.RFC3339Nano)}})
		if errors.Is(err, backlot.ErrMarketplaceNotFound) {
			return nil // deleted since
		}
		return err
	})

	if ln == nil {
		return app.Run(ctx)
	}
	return app.Serve(ctx, ln)
}

// matches reports whether every key of want has the same value in have
// (compared as JSON, so 3 and 3.0 agree).
func matches(have, want map[string]any) bool {
	for k, v := range want {
		a, _ := json.Marshal(have[k])
		b, _ := json.Marshal(v)
		if _, ok := have[k]; !ok || string(a) != string(b) {
			return false
		}
	}
	return true
}

// median of xs; ok is false when there are none.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// exportCSV streams listings joined with their authors. Once the first
// row is written the status is sent: a later failure ends the body with
// an "# error" line instead of an envelope.
func exportCSV(w http.ResponseWriter, r *http.Request, mkt *backlot.Marketplace) {
	flusher, _ := w.(http.Flusher)
	cw := csv.NewWriter(w)
	started := false
	err := pages(r.Context(), mkt.QueryListings, url.Values{"include": {"author"}}, func(p *page) (bool, error) {
		authors := make(map[string]userAttrs, len(p.Included))
		for _, inc := range p.Included {
			if inc.Type != "user" {
				continue
			}
			var u userAttrs
			if err := json.Unmarshal(inc.Attributes, &u); err != nil {
				return false, err
			}
			authors[inc.ID] = u
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="users.csv"`)
			_ = cw.Write([]string{"user_id", "user_email", "user_display_name", "user_created_at",
				"listing_id", "listing_title", "listing_state", "listing_created_at"})
		}
		for _, l := range p.Data {
			var a listingAttrs
			if err := json.Unmarshal(l.Attributes, &a); err != nil {
				return false, err
			}
			uid := l.Relationships["author"].Data.ID
			u := authors[uid]
			_ = cw.Write([]string{uid, u.Email, u.Profile.DisplayName, fmtTime(u.CreatedAt),
				l.ID, a.Title, a.State, fmtTime(a.CreatedAt)})
		}
		cw.Flush()
		if flusher != nil {
			flusher.Flush()
		}
		return cw.Error() == nil, cw.Error()
	})
	if err == nil {
		if !started {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			_ = cw.Write([]string{"user_id", "user_email", "user_display_name", "user_created_at",
				"listing_id", "listing_title", "listing_state", "listing_created_at"})
			cw.Flush()
		}
		return
	}
	if !started {
		backlot.WriteError(w, r, err)
		return
	}
	fmt.Fprintf(w, "# error: export incomplete\n")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
