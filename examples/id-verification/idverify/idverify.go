// Package idverify is the id-verification recipe's server side, as a
// value the example program (and `backlot dev`'s demo page) mounts on a
// backlot App:
//
//   - Start: the signed-in user starts a check. The user's refresh token is
//     sealed into a single-use reference, the check starts at the vendor
//     with the server's credentials and the reference as userReference, and
//     privateData.idVerification becomes "pending".
//   - HandleCallback: the worker of the vendor's queued callback. It opens
//     the reference, spends the refresh token to act as the user, and
//     writes the result with a checksum into the user's privateData.
//   - Status: what privateData says, checksum verified.
package idverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/jobs"
)

const (
	// Purpose binds the references this recipe issues: a reference made
	// for anything else never opens here, nor ours elsewhere.
	Purpose = "idv"
	// Field is the privateData key; its checksum is Field + "Checksum".
	Field = "idVerification"
	// refTTL bounds how long a check may take: the vendor's page lives 30
	// minutes by default, its callback retries for a while after.
	refTTL = 24 * time.Hour
	// userReferenceMax is the vendor's limit on userReference.
	userReferenceMax = 100
)

// Vendor is the ID-verification vendor's API (Jumio Netverify v4 shape)
// and the server's credentials for it.
type Vendor struct {
	// URL is the API's base URL, without a trailing slash.
	URL string
	// Token and Secret are the Basic credentials; the browser never sees
	// them.
	Token, Secret string
	// SuccessURL and ErrorURL, when set, are where the vendor's hosted page
	// sends the user when done. Unset: the vendor's own defaults.
	SuccessURL, ErrorURL string
	// UserAgent names the caller, as the vendor requires.
	UserAgent string
	// Client makes the calls. Default: a client with a 15 s timeout.
	Client *http.Client
}

// Recipe is the recipe mounted on one App and one marketplace.
type Recipe struct {
	app         *backlot.App
	mkt         *backlot.Marketplace
	vendor      Vendor
	callbackURL string
}

// New builds the recipe for app's marketplace named market. callbackURL is
// where the vendor posts its result (a webhook endpoint whose job's worker
// is HandleCallback).
func New(app *backlot.App, market string, v Vendor, callbackURL string) (*Recipe, error) {
	if v.URL == "" || v.Token == "" || v.Secret == "" {
		return nil, errors.New("the vendor's API URL, token and secret are required")
	}
	mkt := app.Marketplace(market)
	if mkt == nil {
		return nil, fmt.Errorf("the configuration has no marketplace named %s", market)
	}
	v.URL = strings.TrimRight(v.URL, "/")
	if v.Client == nil {
		v.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if v.UserAgent == "" {
		v.UserAgent = "backlot-id-verification/1.0"
	}
	return &Recipe{app: app, mkt: mkt, vendor: v, callbackURL: callbackURL}, nil
}

// sealed is what a reference carries: whom the check is for and the
// refresh token that lets the worker act as them later.
type sealed struct {
	User         string `json:"u"`
	RefreshToken string `json:"rt"`
}

// Result is what the worker writes into privateData.idVerification.
type Result struct {
	Status               string `json:"status"` // pending, verified, denied
	VerificationStatus   string `json:"verificationStatus,omitempty"`
	TransactionReference string `json:"transactionReference,omitempty"`
	UpdatedAt            string `json:"updatedAt"`
}

// Start starts a check for the signed-in marketplace user (the route must
// be behind a sharetribe authenticator) and answers {redirect_url,
// transaction_reference}.
func (rc *Recipe) Start(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	if p == nil || p.RefreshToken == "" {
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
	ref, err := rc.app.Refs().Issue(r.Context(), payload, Purpose, refTTL, userReferenceMax, backlot.RefSingleUse())
	if err != nil {
		backlot.WriteError(w, r, err)
		return
	}
	started, err := rc.vendor.initiate(r.Context(), p.Subject, ref, rc.callbackURL)
	if err != nil {
		backlot.WriteError(w, r, err)
		return
	}
	pending := Result{Status: "pending", TransactionReference: started.TransactionReference, UpdatedAt: time.Now().UTC().Format(time.RFC3339)}
	if err := rc.mkt.WriteCheckedFor(r.Context(), p.Subject, Field, pending); err != nil {
		backlot.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect_url": started.RedirectURL, "transaction_reference": started.TransactionReference})
}

// Status answers the signed-in user's check as privateData has it,
// checksum verified: the Result, or {"status": "none"} or
// {"status": "tampered"} (the user rewrote their own privateData).
func (rc *Recipe) Status(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	if p == nil {
		backlot.WriteError(w, r, backlot.NewError(http.StatusUnauthorized, "unauthorized", "sign in to the marketplace first"))
		return
	}
	value, st, err := rc.mkt.ReadCheckedFor(r.Context(), p.Subject, Field)
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
		var res Result
		if err := json.Unmarshal(value, &res); err != nil {
			backlot.WriteError(w, r, fmt.Errorf("read %s: %w", Field, err))
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// HandleCallback acts on one vendor callback (the worker of the webhook's
// job kind): the form's fields arrive as a JSON object of strings.
func (rc *Recipe) HandleCallback(ctx context.Context, job *jobs.Job) error {
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
	raw, err := rc.app.Refs().Open(ctx, ref, Purpose, backlot.RefConsumer(strconv.FormatInt(job.ID, 10)))
	if err != nil {
		return fmt.Errorf("callback for scan %s: %w", scan, err)
	}
	var s sealed
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("callback for scan %s: sealed payload: %w", scan, err)
	}
	jobs.Logf(ctx, "callback for scan %s: %s", scan, status)
	// Act as the user. Sharetribe rotates refresh tokens, so this spends
	// the one the browser had: see the example's README.md.
	tok, err := rc.mkt.RefreshUserToken(ctx, s.RefreshToken)
	if err != nil {
		return fmt.Errorf("act as user %s: %w", s.User, err)
	}
	res := Result{Status: "denied", VerificationStatus: status, TransactionReference: scan, UpdatedAt: time.Now().UTC().Format(time.RFC3339)}
	if status == "APPROVED_VERIFIED" {
		res.Status = "verified"
	}
	if err := rc.mkt.WriteChecked(ctx, tok.AccessToken, Field, res); err != nil {
		return fmt.Errorf("write %s for user %s: %w", Field, s.User, err)
	}
	jobs.Logf(ctx, "user %s: %s is %s", s.User, Field, res.Status)
	// Done: the reference (and the spent token in it) need not wait for
	// its expiry.
	if err := rc.app.Refs().Delete(ctx, ref); err != nil {
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
func (v Vendor) initiate(ctx context.Context, userID, ref, callbackURL string) (*initiated, error) {
	in := map[string]string{
		"customerInternalReference": userID,
		"userReference":             ref,
		"callbackUrl":               callbackURL,
	}
	if v.SuccessURL != "" {
		in["successUrl"] = v.SuccessURL
	}
	if v.ErrorURL != "" {
		in["errorUrl"] = v.ErrorURL
	}
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.URL+"/api/v4/initiate", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("initiate: %w", err)
	}
	req.SetBasicAuth(v.Token, v.Secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", v.UserAgent)
	resp, err := v.Client.Do(req)
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
