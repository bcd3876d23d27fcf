package devenv

import (
	"bytes"
	"context"
	"crypto/hmac"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/stripesig"
	"github.com/backlothq/backlot/internal/webhook"
	"github.com/backlothq/backlot/jobs"
)

//go:embed assets
var assets embed.FS

// pageTmpl is the demo page. It is parsed once per Env (no package state).
func parsePage() (*template.Template, error) {
	return template.ParseFS(assets, "assets/demo.html")
}

// maxDeliveries bounds the forwarded deliveries the receiver remembers.
const maxDeliveries = 50

// demo serves the demo page and the small JSON API its script calls. The
// API does server side what a real front-end's counterpart would: sign as
// the Stripe App, hold the vendor's API credentials, mint a staff token.
// It exists only in `backlot dev` and listens on loopback only.
type demo struct {
	e        *Env
	page     *template.Template
	staff    *authn.HS256
	forward  *webhook.StandardSigner
	queue    *webhook.StandardSigner
	client   *http.Client
	receiver *receiver
}

func newDemo(e *Env) (*demo, error) {
	page, err := parsePage()
	if err != nil {
		return nil, fmt.Errorf("demo page: %w", err)
	}
	staff, err := authn.NewHS256(staffTokens, e.cfg.Authenticators[staffTokens], authn.Deps{})
	if err != nil {
		return nil, fmt.Errorf("demo page: staff tokens: %w", err)
	}
	fwd, err := webhook.NewStandardSigner(e.Secrets.ForwardSecret)
	if err != nil {
		return nil, fmt.Errorf("demo page: forward secret: %w", err)
	}
	q, err := webhook.NewStandardSigner(e.Secrets.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("demo page: webhook secret: %w", err)
	}
	return &demo{
		e: e, page: page, staff: staff, forward: fwd, queue: q,
		client: &http.Client{
			Timeout: 15 * time.Second,
			// Answers are relayed as they are; a redirect is shown, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		receiver: &receiver{},
	}, nil
}

// register mounts the page and its API on backlot. Unsafe methods are
// behind Go's cross-origin protection: another site open in the same
// browser cannot make the dev server start checks or mint tokens.
func (d *demo) register(app Backlot, idv IDVerification) {
	cop := http.NewCrossOriginProtection()
	safe := func(h http.HandlerFunc) http.HandlerFunc { return cop.Handler(h).ServeHTTP }
	app.Handle("GET /{$}", nil, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, demoPath, http.StatusFound)
	})
	app.Handle("GET "+demoPath+"{$}", nil, d.handlePage)
	app.Handle("GET "+demoPath+"static/{file}", nil, d.handleStatic)
	app.Handle("GET "+demoPath+"stripe/login", nil, d.handleStripeLogin)
	app.Handle("GET "+demoPath+"api/stripe/userinfo", nil, d.handleStripeCall(http.MethodGet, "userinfo"))
	app.Handle("GET "+demoPath+"api/stripe/status", nil, d.handleStripeCall(http.MethodGet, "status"))
	app.Handle("POST "+demoPath+"api/stripe/logout", nil, safe(d.handleStripeCall(http.MethodPost, "logout")))
	// The id-verification recipe's own routes, for the marketplace user
	// the SDK cookie names (the sharetribe authenticator also refuses a
	// cookie-borne POST from another site).
	app.Handle("POST "+demoPath+"api/idv/start", []string{shopperAuth}, safe(idv.Start))
	app.Handle("GET "+demoPath+"api/idv/status", []string{shopperAuth}, idv.Status)
	app.Handle("POST "+demoPath+"api/staff-token", nil, safe(d.handleStaffToken))
	app.Handle("POST "+demoPath+"api/extension-token", nil, safe(d.handleExtensionToken))
	app.Handle("POST "+demoPath+"api/marketplace-login", nil, safe(d.handleMarketplaceLogin))
	app.Handle("POST "+demoPath+"api/queue/send", nil, safe(d.handleQueueSend))
	app.Handle("POST "+demoPath+"api/reset-simulators", nil, safe(d.handleResetSimulators))
	app.Handle("GET "+demoPath+"api/jobs", nil, d.handleJobs)
	app.Handle("GET "+demoPath+"api/deliveries", nil, d.handleDeliveries)
	app.Handle("POST "+receiverPath, nil, d.handleReceive)
}

// pageData fills the page template.
type pageData struct {
	URLs         URLs
	Dir          string
	SecretsFile  string
	WebhookPath  string
	Users        []DemoUser
	Merchants    []merchantView
	ConsoleURL   string
	CookieName   string
	StaffSubject string
	EventTypes   string
	EventPoll    time.Duration
	EventJob     string
	StripeUser   string
	StripeAcct   string
	Connection   string
}

type merchantView struct {
	Name         string
	Email        string
	Accounts     string
	FirstAccount int64
}

func (d *demo) handlePage(w http.ResponseWriter, r *http.Request) {
	e := d.e
	data := pageData{
		URLs: e.URLs, Dir: e.Dir, SecretsFile: e.Dir + "/" + SecretsFile, WebhookPath: queueWebhookPath,
		Users: e.DemoUsers(), StripeUser: stripeDemoUser, StripeAcct: stripeDemoAccount, Connection: connectionName,
	}
	for _, m := range e.Merchants {
		ids := make([]string, len(m.AccountIDs))
		for i, id := range m.AccountIDs {
			ids[i] = strconv.FormatInt(id, 10)
		}
		mv := merchantView{Name: m.Name, Email: m.Email, Accounts: strings.Join(ids, ", ")}
		if len(m.AccountIDs) > 0 {
			mv.FirstAccount = m.AccountIDs[0]
		}
		data.Merchants = append(data.Merchants, mv)
	}
	data.ConsoleURL = e.URLs.Backlot + consolePath
	data.CookieName = "st-" + marketplaceClientID + "-token"
	data.StaffSubject = staffDemoSubject
	data.EventTypes, data.EventPoll, data.EventJob = strings.Join(eventTypes(), ", "), eventPoll, eventJob
	var buf bytes.Buffer
	if err := d.page.Execute(&buf, data); err != nil {
		http.Error(w, "render demo page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// pageHeaders replaces backlot's API CSP (which allows nothing) with one
// for a page: its own script and style, calls to its own origin, forms to
// itself, and still no framing.
func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
}

func (d *demo) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var ctype string
	switch name {
	case "demo.js":
		ctype = "text/javascript; charset=utf-8"
	case "demo.css":
		ctype = "text/css; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	pageHeaders(w)
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

// stripePayload is what a Stripe App signs: exactly these keys, this order.
func stripePayload() []byte {
	return []byte(`{"user_id":"` + stripeDemoUser + `","account_id":"` + stripeDemoAccount + `"}`)
}

func (d *demo) stripeSignature() string {
	return stripesig.Sign([]byte(d.e.Secrets.StripeAppSecret), stripePayload(), time.Now())
}

// handleStripeLogin sends the browser to the connection's login with the
// credential in the query, as the Stripe App's sign-in button does (a
// redirect cannot carry headers).
func (d *demo) handleStripeLogin(w http.ResponseWriter, r *http.Request) {
	q := url.Values{"user_id": {stripeDemoUser}, "account_id": {stripeDemoAccount}, "signature": {d.stripeSignature()}}
	http.Redirect(w, r, "/connect/"+connectionName+"/login?"+q.Encode(), http.StatusSeeOther)
}

// handleStripeCall calls /connect/<name>/<op> signed as the Stripe App,
// and relays the answer.
func (d *demo) handleStripeCall(method, op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), method, d.e.URLs.Backlot+"/connect/"+connectionName+"/"+op, nil)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		req.Header.Set("Stripe-Signature", d.stripeSignature())
		req.Header.Set("Stripe-User-Id", stripeDemoUser)
		req.Header.Set("Stripe-Account-Id", stripeDemoAccount)
		d.relay(w, req)
	}
}

// relay sends req and answers {"status": …, "body": …} with the
// upstream's JSON body (or text) inside.
func (d *demo) relay(w http.ResponseWriter, req *http.Request) {
	res, err := d.client.Do(req)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	out := map[string]any{"status": res.StatusCode}
	if json.Valid(b) {
		out["body"] = json.RawMessage(b)
	} else {
		out["body"] = string(b)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleStaffToken mints a staff token for the payments dashboard's
// login, as `backlot token mint` would.
func (d *demo) handleStaffToken(w http.ResponseWriter, r *http.Request) {
	tok, err := d.staff.Mint(staffDemoSubject, "", nil, 0)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "subject": staffDemoSubject})
}

// handleExtensionToken asks the issuer simulator for a token, as the
// platform extension's front-end gets one from the marketplace.
func (d *demo) handleExtensionToken(w http.ResponseWriter, r *http.Request) {
	q := url.Values{"sub": {d.e.DemoUsers()[0].ID}, "name": {d.e.DemoUsers()[0].Email}, "tenant": {"PARTNER_DEV"}}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, d.e.URLs.Issuer+"/token?"+q.Encode(), nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	tok, status, err := d.fetchText(req)
	if err != nil || status != http.StatusOK {
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": fmt.Sprintf("issuer answered %d: %v", status, err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": strings.TrimSpace(tok)})
}

// handleMarketplaceLogin logs a demo user in to the marketplace with a
// password, as the Sharetribe SDK does in the browser, and answers the
// user token (which the SDK would keep in its cookie).
func (d *demo) handleMarketplaceLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want JSON {email, password}"})
		return
	}
	form := url.Values{
		"client_id": {marketplaceClientID}, "grant_type": {"password"}, "scope": {"user"},
		"username": {in.Email}, "password": {in.Password},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, d.e.URLs.Marketplace+"/v1/auth/token", strings.NewReader(form.Encode()))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	d.relay(w, req)
}

// handleQueueSend posts a webhook signed with the queue's whsec_, as the
// vendor would.
func (d *demo) handleQueueSend(w http.ResponseWriter, r *http.Request) {
	id := "msg_dev_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	body, _ := json.Marshal(map[string]any{"type": "order.created", "data": map[string]any{"order": id, "amount": 4200}})
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, d.e.URLs.Backlot+queueWebhookPath, bytes.NewReader(body))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", d.queue.Sign(id, ts, body))
	d.relay(w, req)
}

func (d *demo) handleResetSimulators(w http.ResponseWriter, r *http.Request) {
	d.e.ResetSimulators()
	writeJSON(w, http.StatusOK, map[string]bool{"reset": true})
}

// jobView is a job as the demo page lists it.
type jobView struct {
	ID        int64           `json:"id"`
	Kind      string          `json:"kind"`
	State     jobs.State      `json:"state"`
	Attempt   int             `json:"attempt"`
	LastError string          `json:"last_error,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Payload   json.RawMessage `json:"payload"`
	Log       []string        `json:"log"`
}

// handleJobs lists the most recent jobs, newest first (?kind= filters).
func (d *demo) handleJobs(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	list, err := d.e.jobsDB.ListJobs(ctx, store.JobFilter{Kind: r.URL.Query().Get("kind"), Limit: 20})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	out := make([]jobView, 0, len(list))
	for _, j := range list {
		v := jobView{ID: j.ID, Kind: j.Kind, State: j.State, Attempt: j.Attempt, LastError: j.LastError, CreatedAt: j.CreatedAt, Payload: j.Payload, Log: []string{}}
		if lines, err := d.e.jobsDB.JobLogs(ctx, j.ID); err == nil {
			for _, l := range lines {
				v.Log = append(v.Log, l.Line)
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// delivery is one forwarded job the receiver accepted.
type delivery struct {
	ID         string          `json:"webhook_id"`
	DeliveryID string          `json:"backlot_delivery_id"`
	Verified   bool            `json:"verified"`
	At         time.Time       `json:"at"`
	Body       json.RawMessage `json:"body"`
}

// receiver stands for the app a webhook-queue job is forwarded to: it
// checks the Standard Webhooks signature with the forward secret and
// remembers the last deliveries.
type receiver struct {
	mu   sync.Mutex
	list []delivery
}

func (rc *receiver) add(dl delivery) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.list = append(rc.list, dl)
	if len(rc.list) > maxDeliveries {
		rc.list = rc.list[len(rc.list)-maxDeliveries:]
	}
}

func (rc *receiver) snapshot() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]delivery, len(rc.list))
	for i, dl := range rc.list {
		out[len(out)-1-i] = dl
	}
	return out
}

func (rc *receiver) reset() {
	rc.mu.Lock()
	rc.list = nil
	rc.mu.Unlock()
}

func (d *demo) handleReceive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	t, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing webhook-id or webhook-timestamp"})
		return
	}
	if d := time.Since(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "stale signature"})
		return
	}
	want := d.forward.Sign(id, t, body)
	ok := false
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid signature"})
		return
	}
	dl := delivery{ID: id, DeliveryID: r.Header.Get("Backlot-Delivery-Id"), Verified: true, At: time.Now().UTC()}
	if json.Valid(body) {
		dl.Body = body
	} else {
		dl.Body, _ = json.Marshal(string(body))
	}
	d.receiver.add(dl)
	w.WriteHeader(http.StatusNoContent)
}

func (d *demo) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": d.receiver.snapshot()})
}

func (d *demo) fetchText(req *http.Request) (string, int, error) {
	res, err := d.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return string(b), res.StatusCode, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
