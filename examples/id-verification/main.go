// Command id-verification is an ID check for a Sharetribe marketplace,
// built on backlot as a Go framework, without a database of its own:
//
//  1. A signed-in user calls POST /api/idv/start. backlot seals the user's
//     refresh token into a single-use reference and starts a check with
//     the vendor (credentials held by the server), passing the reference as
//     userReference; the user gets the vendor's page URL. The user's
//     privateData.idVerification becomes "pending".
//
//  2. The vendor posts its result, form-encoded, to /webhooks/idv from its
//     allow-listed address; backlot stores it and answers 202 at once.
//
//  3. The worker opens the reference (purpose "idv", single use), spends the
//     refresh token to act as the user, and writes the result with a
//     checksum into the user's privateData.
//
//  4. GET /api/idv/status answers verified, denied, pending, none — or
//     tampered, when the user rewrote their own privateData.
//
//     go run ./examples/id-verification --config examples/id-verification/backlot.yaml
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
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
	if err := run(ctx, *configPath, nil, nil); err != nil {
		fmt.Fprintln(os.Stderr, "id-verification:", err)
		os.Exit(1)
	}
}

const (
	// purpose binds the references this program issues: a reference made
	// for anything else never opens here, nor ours elsewhere.
	purpose = "idv"
	// field is the privateData key; its checksum is fieldChecksum.
	field = "idVerification"
	// jobCallback is the job kind of the vendor's callbacks (backlot.yaml).
	jobCallback = "idv.callback"
	// refTTL bounds how long a check may take: the vendor's page lives 30
	// minutes by default, its callback retries for a while after.
	refTTL = 24 * time.Hour
	// userReferenceMax is the vendor's limit on userReference.
	userReferenceMax = 100
)

// vendor is the ID-verification vendor's API (Jumio Netverify v4 shape).
type vendor struct {
	url, token, secret string
	client             *http.Client
}

// sealed is what a reference carries: whom the check is for and the
// refresh token that lets the worker act as them later.
type sealed struct {
	User         string `json:"u"`
	RefreshToken string `json:"rt"`
}

// result is what the worker writes into privateData.idVerification.
type result struct {
	Status               string `json:"status"` // pending, verified, denied
	VerificationStatus   string `json:"verificationStatus,omitempty"`
	TransactionReference string `json:"transactionReference,omitempty"`
	UpdatedAt            string `json:"updatedAt"`
}

// run builds the App, adds the routes and the worker, and serves on ln
// (nil: server.listen) until ctx ends. ready, if set, sees the App before
// it serves (tests read jobs through it).
func run(ctx context.Context, configPath string, ln net.Listener, ready func(*backlot.App)) error {
	v := vendor{url: strings.TrimRight(os.Getenv("IDV_API_URL"), "/"), token: os.Getenv("IDV_API_TOKEN"),
		secret: os.Getenv("IDV_API_SECRET"), client: &http.Client{Timeout: 15 * time.Second}}
	if v.url == "" || v.token == "" || v.secret == "" {
		return errors.New("set IDV_API_URL, IDV_API_TOKEN and IDV_API_SECRET (the vendor's API and credentials)")
	}
	app, err := backlot.New(backlot.WithConfigFile(configPath))
	if err != nil {
		return err
	}
	mkt := app.Marketplace("main")
	if mkt == nil {
		app.Close()
		return errors.New("backlot.yaml has no marketplace named main")
	}
	callbackURL := strings.TrimRight(app.Config().Server.PublicURL, "/") + "/webhooks/idv"

	// POST /api/idv/start: the signed-in user starts a check.
	app.Handle("POST /api/idv/start", []string{"shoppers"}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		if p.RefreshToken == "" {
			// Only a refresh token lets the worker act as the user once
			// this request is gone; the SDK's cookie carries it, a bare
			// bearer token does not.
			backlot.WriteError(w, r, backlot.NewError(http.StatusBadRequest, "refresh_token_required",
				"call this with the Sharetribe SDK's cookie (st-<client id>-token), which carries the refresh token; a bearer token alone cannot be acted on later"))
			return
		}
		payload, _ := json.Marshal(sealed{User: p.Subject, RefreshToken: p.RefreshToken})
		// A refresh token never travels, not even encrypted: a stored,
		// single-use reference whose handle is all the vendor sees.
		ref, err := app.Refs().Issue(r.Context(), payload, purpose, refTTL, userReferenceMax, backlot.RefSingleUse())
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		started, err := v.initiate(r.Context(), p.Subject, ref, callbackURL)
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		pending := result{Status: "pending", TransactionReference: started.TransactionReference, UpdatedAt: time.Now().UTC().Format(time.RFC3339)}
		if err := mkt.WriteCheckedFor(r.Context(), p.Subject, field, pending); err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"redirect_url": started.RedirectURL, "transaction_reference": started.TransactionReference})
	})

	// GET /api/idv/status: what privateData says, checksum verified.
	app.Handle("GET /api/idv/status", []string{"shoppers"}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		value, st, err := mkt.ReadCheckedFor(r.Context(), p.Subject, field)
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		switch st {
		case backlot.CheckMissing:
			writeJSON(w, http.StatusOK, map[string]string{"status": "none"})
		case backlot.CheckTampered:
			writeJSON(w, http.StatusOK, map[string]string{"status": "tampered"})
		default:
			var res result
			if err := json.Unmarshal(value, &res); err != nil {
				backlot.WriteError(w, r, fmt.Errorf("read %s: %w", field, err))
				return
			}
			writeJSON(w, http.StatusOK, res)
		}
	})

	// The vendor's callback, queued by the webhook endpoint.
	app.Worker(jobCallback, func(ctx context.Context, job *jobs.Job) error {
		return handleCallback(ctx, app, mkt, job)
	})

	if ready != nil {
		ready(app)
	}
	if ln == nil {
		return app.Run(ctx)
	}
	return app.Serve(ctx, ln)
}

// handleCallback acts on one vendor callback: the form's fields arrive as
// a JSON object of strings.
func handleCallback(ctx context.Context, app *backlot.App, mkt *backlot.Marketplace, job *jobs.Job) error {
	var form map[string]any
	if err := json.Unmarshal(job.Payload, &form); err != nil {
		return fmt.Errorf("callback is not a form: %w", err)
	}
	ref, _ := form["customerId"].(string)
	status, _ := form["verificationStatus"].(string)
	scan, _ := form["jumioIdScanReference"].(string)
	if ref == "" || len(ref) > userReferenceMax {
		return fmt.Errorf("callback customerId is %d characters: not a reference this server issued", len(ref))
	}
	// The job id is the consumer: a retry of this job may open the
	// reference again, any other job (a replayed callback) may not.
	raw, err := app.Refs().Open(ctx, ref, purpose, backlot.RefConsumer(strconv.FormatInt(job.ID, 10)))
	if err != nil {
		return fmt.Errorf("callback for scan %s: %w", scan, err)
	}
	var s sealed
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("callback for scan %s: sealed payload: %w", scan, err)
	}
	jobs.Logf(ctx, "callback for scan %s: %s", scan, status)
	// Act as the user. Sharetribe rotates refresh tokens, so this spends
	// the one the browser had: see README.md.
	tok, err := mkt.RefreshUserToken(ctx, s.RefreshToken)
	if err != nil {
		return fmt.Errorf("act as user %s: %w", s.User, err)
	}
	res := result{Status: "denied", VerificationStatus: status, TransactionReference: scan, UpdatedAt: time.Now().UTC().Format(time.RFC3339)}
	if status == "APPROVED_VERIFIED" {
		res.Status = "verified"
	}
	if err := mkt.WriteChecked(ctx, tok.AccessToken, field, res); err != nil {
		return fmt.Errorf("write %s for user %s: %w", field, s.User, err)
	}
	// Done: the reference (and the spent token in it) need not wait for
	// its expiry.
	if err := app.Refs().Delete(ctx, ref); err != nil {
		jobs.Logf(ctx, "delete reference: %v", err)
	}
	return nil
}

type initiated struct {
	TransactionReference string `json:"transactionReference"`
	RedirectURL          string `json:"redirectUrl"`
}

// initiate starts a transaction at the vendor with the server's Basic
// credentials. The vendor's refusals come back in the error envelope's
// original_error.
func (v vendor) initiate(ctx context.Context, userID, ref, callbackURL string) (*initiated, error) {
	body, _ := json.Marshal(map[string]string{
		"customerInternalReference": userID,
		"userReference":             ref,
		"callbackUrl":               callbackURL,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.url+"/api/v4/initiate", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("initiate: %w", err)
	}
	req.SetBasicAuth(v.token, v.secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "backlot-id-verification/1.0")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, &backlot.Error{Status: http.StatusBadGateway, Code: "vendor_unreachable",
			Description: "the ID-verification vendor did not answer", Err: err}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		e := &backlot.Error{Status: http.StatusBadGateway, Code: "vendor_error",
			Description: fmt.Sprintf("the ID-verification vendor refused initiate with %d", resp.StatusCode),
			Message:     "ID verification is unavailable right now. Please try again later."}
		if json.Valid(data) {
			e.Original = data
		}
		return nil, e
	}
	var out initiated
	if err := json.Unmarshal(data, &out); err != nil || out.RedirectURL == "" {
		return nil, &backlot.Error{Status: http.StatusBadGateway, Code: "vendor_error", Description: "the vendor's initiate answer is not understood"}
	}
	return &out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
