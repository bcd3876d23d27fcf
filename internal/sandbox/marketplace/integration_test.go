package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func (f *fixture) integToken(t *testing.T) string {
	t.Helper()
	return f.token(t, url.Values{"client_id": {testIntegID}, "client_secret": {testIntegSecret}, "grant_type": {"client_credentials"}}).AccessToken
}

// send makes a request with a bearer token and an optional body (JSON
// unless ctype says otherwise) and decodes the JSON answer.
func (f *fixture) send(t *testing.T, method, path, token, ctype, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		if ctype == "" {
			ctype = "application/json"
		}
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res.StatusCode, res.Header, v
}

func TestNotSimulated(t *testing.T) {
	t.Parallel()
	f := setup(t)
	status, _, body := f.send(t, "GET", "/v2/whatever", "", "", "")
	routes, _ := body["routes"].([]any)
	if status != 404 || body["error"] != "not_simulated" || len(routes) < 16 {
		t.Fatalf("unknown route: %d %v", status, body)
	}
	found := false
	for _, r := range routes {
		found = found || r == "GET /v1/integration_api/events/query"
	}
	if !found {
		t.Errorf("routes %v lack events/query", routes)
	}
	// Under the API prefixes, Sharetribe's own error format.
	for _, p := range []string{"/v1/integration_api/nope", "/v1/api/nope/query"} {
		if status, _, body := f.send(t, "GET", p, f.integToken(t), "", ""); status != 404 || apiCode(body) != "not-found" {
			t.Errorf("%s: %d %v", p, status, body)
		}
	}
	// A known path with the wrong method too.
	if status, _, body := f.send(t, "GET", "/v1/integration_api/listings/close", f.integToken(t), "", ""); status != 404 || apiCode(body) != "not-found" {
		t.Errorf("GET on a POST route: %d %v", status, body)
	}
}

func TestIntegrationAuthorization(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := f.login(t).AccessToken
	integ := f.integToken(t)
	tests := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no token", "/v1/integration_api/users/query", "", 401, "auth-missing-access-token"},
		{"bad token", "/v1/integration_api/users/query", "nope", 401, "auth-invalid-access-token"},
		{"user token", "/v1/integration_api/users/query", user, 403, "forbidden"},
		{"anonymous token", "/v1/integration_api/events/query", f.anon(t).AccessToken, 403, "forbidden"},
		{"integration token on the Marketplace API", "/v1/api/listings/query", integ, 403, "forbidden"},
		{"integration token", "/v1/integration_api/users/query", integ, 200, ""},
		{"anonymous token on the Marketplace API", "/v1/api/listings/query", f.anon(t).AccessToken, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.send(t, "GET", tc.path, tc.token, "", "")
			if status != tc.status || apiCode(body) != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t)
	integ := f.integToken(t)
	user := f.login(t).AccessToken
	lid := f.m.AddListing(f.userID, Listing{Title: "Bike"})
	big := `{"publicData":{"blob":"` + strings.Repeat("x", MaxExtendedDataBytes) + `"}}`
	tests := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		code                                   string
	}{
		{"unknown query parameter", "GET", "/v1/integration_api/users/query?pub_role=x", integ, "", "", 400, "validation-invalid-params"},
		{"page 0", "GET", "/v1/integration_api/users/query?page=0", integ, "", "", 400, "validation-invalid-params"},
		{"perPage 101", "GET", "/v1/integration_api/listings/query?perPage=101", integ, "", "", 400, "validation-invalid-params"},
		{"perPage not a number", "GET", "/v1/integration_api/listings/query?perPage=ten", integ, "", "", 400, "validation-invalid-params"},
		{"unknown listing state", "GET", "/v1/integration_api/listings/query?states=open", integ, "", "", 400, "validation-invalid-params"},
		{"missing id", "GET", "/v1/integration_api/users/show", integ, "", "", 400, "validation-missing-key"},
		{"malformed id", "GET", "/v1/integration_api/listings/show?id=42", integ, "", "", 400, "validation-invalid-params"},
		{"unknown id", "GET", "/v1/integration_api/listings/show?id=" + newUUID(), integ, "", "", 404, "not-found"},
		{"both event starts", "GET", "/v1/integration_api/events/query?startAfterSequenceId=1&createdAtStart=2026-01-01T00:00:00Z", integ, "", "", 400, "validation-invalid-params"},
		{"negative sequence id", "GET", "/v1/integration_api/events/query?startAfterSequenceId=-1", integ, "", "", 400, "validation-invalid-params"},
		{"bad event type", "GET", "/v1/integration_api/events/query?eventTypes=listing", integ, "", "", 400, "validation-invalid-params"},
		{"bad createdAtStart", "GET", "/v1/integration_api/events/query?createdAtStart=yesterday", integ, "", "", 400, "validation-invalid-params"},
		{"form body", "POST", "/v1/integration_api/listings/close", integ, "application/x-www-form-urlencoded", "id=" + lid, 400, "unsupported-content-type"},
		{"body not an object", "POST", "/v1/integration_api/listings/close", integ, "", `["` + lid + `"]`, 400, "validation-invalid-params"},
		{"malformed JSON", "POST", "/v1/integration_api/listings/close", integ, "", `{"id":`, 400, "validation-invalid-params"},
		{"body without id", "POST", "/v1/integration_api/listings/close", integ, "", `{}`, 400, "validation-missing-key"},
		{"extra key", "POST", "/v1/integration_api/listings/close", integ, "", `{"id":"` + lid + `","state":"x"}`, 400, "validation-disallowed-key"},
		{"listing price", "POST", "/v1/integration_api/listings/update", integ, "", `{"id":"` + lid + `","price":1}`, 400, "validation-disallowed-key"},
		{"extended data not an object", "POST", "/v1/integration_api/listings/update", integ, "", `{"id":"` + lid + `","publicData":[1]}`, 400, "validation-invalid-params"},
		{"empty title", "POST", "/v1/integration_api/listings/update", integ, "", `{"id":"` + lid + `","title":""}`, 400, "validation-invalid-params"},
		{"over 50 KB", "POST", "/v1/api/current_user/update_profile", user, "", big, 400, "validation-invalid-params"},
		{"metadata by the user", "POST", "/v1/api/current_user/update_profile", user, "", `{"metadata":{"a":1}}`, 400, "validation-disallowed-key"},
		{"bio a number", "POST", "/v1/api/current_user/update_profile", user, "", `{"bio":7}`, 400, "validation-invalid-params"},
		{"anonymous update_profile", "POST", "/v1/api/current_user/update_profile", f.anon(t).AccessToken, "", `{"bio":"x"}`, 403, "forbidden"},
		{"bad transition name", "POST", "/v1/integration_api/transactions/transition", integ, "", `{"id":"` + newUUID() + `","transition":"accept"}`, 400, "validation-invalid-params"},
		{"unknown transaction", "POST", "/v1/integration_api/transactions/transition", integ, "", `{"id":"` + newUUID() + `","transition":"transition/accept"}`, 404, "transaction-not-found"},
		{"oversized body", "POST", "/v1/integration_api/listings/update", integ, "", `{"id":"` + lid + `","description":"` + strings.Repeat("x", maxBodyBytes) + `"}`, 413, "request-larger-than-content-length"},
	}
	before := f.m.LastSequenceID()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.send(t, tc.method, tc.path, tc.token, tc.ctype, tc.body)
			if status != tc.status || apiCode(body) != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			e := body["errors"].([]any)[0].(map[string]any)
			if e["status"] != float64(tc.status) || e["title"] == "" || !uuidRE.MatchString(e["id"].(string)) {
				t.Errorf("error shape %v", e)
			}
		})
	}
	if after := f.m.LastSequenceID(); after != before {
		t.Errorf("refused requests recorded %d events", after-before)
	}
}

func TestExtendedDataLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := f.login(t).AccessToken
	// {"blob":"…"} is 11 bytes around the value, plus the existing role.
	fits := strings.Repeat("x", MaxExtendedDataBytes-len(`{"blob":"","role":"customer"}`))
	status, _, body := f.send(t, "POST", "/v1/api/current_user/update_profile?expand=true", user, "", `{"publicData":{"blob":"`+fits+`"}}`)
	if status != 200 {
		t.Fatalf("exactly 50 KB: %d %v", status, apiCode(body))
	}
	status, _, body = f.send(t, "POST", "/v1/api/current_user/update_profile", user, "", `{"publicData":{"more":1}}`)
	if status != 400 || apiCode(body) != "validation-invalid-params" {
		t.Fatalf("one key more: %d %v", status, apiCode(body))
	}
	// Setting the big key to null removes it, and the update fits again.
	status, _, body = f.send(t, "POST", "/v1/api/current_user/update_profile?expand=true", user, "", `{"publicData":{"blob":null,"more":1}}`)
	pd := body["data"].(map[string]any)["attributes"].(map[string]any)["profile"].(map[string]any)["publicData"].(map[string]any)
	if status != 200 || pd["blob"] != nil || pd["more"] != float64(1) || pd["role"] != "customer" {
		t.Fatalf("null removes: %d %v", status, pd)
	}
	// Without expand, a command answers only id and type.
	status, _, body = f.send(t, "POST", "/v1/api/current_user/update_profile", user, "", `{"bio":"hi"}`)
	if d := body["data"].(map[string]any); status != 200 || len(d) != 2 || d["type"] != "currentUser" {
		t.Errorf("unexpanded answer %v", body)
	}
}

func TestMarketplaceListingsHideUnpublished(t *testing.T) {
	t.Parallel()
	f := setup(t)
	integ := f.integToken(t)
	pub := f.m.AddListing(f.userID, Listing{Title: "Bike", PrivateData: map[string]any{"secret": 1}})
	f.m.AddListing(f.userID, Listing{Title: "Kayak", State: ListingPendingApproval})
	f.m.AddListing(f.userID, Listing{Title: "Draft", State: ListingDraft})
	closed := f.m.AddListing(f.userID, Listing{Title: "Tent"})
	if status, _, _ := f.send(t, "POST", "/v1/integration_api/listings/close", integ, "", `{"id":"`+closed+`"}`); status != 200 {
		t.Fatal("close failed")
	}
	_, _, body := f.send(t, "GET", "/v1/api/listings/query?include=author", f.anon(t).AccessToken, "", "")
	data := body["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["id"] != pub {
		t.Fatalf("marketplace query: %v", data)
	}
	attrs := data[0].(map[string]any)["attributes"].(map[string]any)
	if _, leaked := attrs["privateData"]; leaked {
		t.Error("the Marketplace API shows privateData")
	}
	author := body["included"].([]any)[0].(map[string]any)["attributes"].(map[string]any)
	if _, leaked := author["email"]; leaked {
		t.Error("the Marketplace API shows the author's email")
	}
	_, _, body = f.send(t, "GET", "/v1/integration_api/listings/query", integ, "", "")
	if n := len(body["data"].([]any)); n != 4 || body["meta"].(map[string]any)["totalItems"] != float64(4) {
		t.Errorf("integration query: %d listings, meta %v", n, body["meta"])
	}
	// approve only from pendingApproval; open from draft is refused.
	if status, _, b := f.send(t, "POST", "/v1/integration_api/listings/approve", integ, "", `{"id":"`+pub+`"}`); status != 409 || apiCode(b) != "listing-invalid-state" {
		t.Errorf("approve a published listing: %d %v", status, b)
	}
}

func TestDeletionEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lid := f.m.AddListing(f.userID, Listing{Title: "Bike"})
	start := f.m.LastSequenceID()
	f.m.DeleteListing(lid)
	f.m.DeleteUser(f.userID)
	f.m.DeleteUser(f.userID) // once only
	_, _, body := f.send(t, "GET", fmt.Sprintf("/v1/integration_api/events/query?startAfterSequenceId=%d", start), f.integToken(t), "", "")
	events := body["data"].([]any)
	if len(events) != 2 {
		t.Fatalf("events %v", events)
	}
	for i, want := range []string{"listing/deleted", "user/deleted"} {
		a := events[i].(map[string]any)["attributes"].(map[string]any)
		prev, _ := a["previousValues"].(map[string]any)
		if a["eventType"] != want || a["resource"] != nil || prev["id"] == nil || a["source"] != "source/console" {
			t.Errorf("event %d: %v", i, a)
		}
	}
	// A deleted user cannot log in and is left out of users/query.
	if status, _ := f.post(t, "/v1/auth/token", url.Values{"client_id": {testClientID}, "grant_type": {"password"}, "username": {testEmail}, "password": {testPassword}}, nil); status != 401 {
		t.Errorf("deleted user logged in: %d", status)
	}
	_, _, body = f.send(t, "GET", "/v1/integration_api/users/query", f.integToken(t), "", "")
	if n := len(body["data"].([]any)); n != 0 {
		t.Errorf("users/query shows %d users", n)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.m.opts.RateLimits = &RateLimits{QueriesPerSecond: 1, QueryBurst: 2, CommandsPerSecond: 0.5, CommandBurst: 1}
	integ := f.integToken(t) // the Authentication API is not limited
	lid := f.m.AddListing(f.userID, Listing{Title: "Bike"})
	query := func() (int, http.Header, map[string]any) {
		return f.send(t, "GET", "/v1/integration_api/users/query", integ, "", "")
	}
	command := func() (int, http.Header, map[string]any) {
		return f.send(t, "POST", "/v1/integration_api/listings/close", integ, "", `{"id":"`+lid+`"}`)
	}
	for i := range 2 {
		if status, _, _ := query(); status != 200 {
			t.Fatalf("query %d within the burst: %d", i, status)
		}
	}
	status, h, body := query()
	if status != 429 || apiCode(body) != "too-many-requests" || h.Get("Retry-After") != "1" {
		t.Fatalf("third query: %d Retry-After %q %v", status, h.Get("Retry-After"), body)
	}
	// Commands have their own bucket.
	if status, _, _ := command(); status != 200 {
		t.Fatalf("first command: %d", status)
	}
	if status, h, _ := command(); status != 429 || h.Get("Retry-After") != "2" {
		t.Fatalf("second command: %d Retry-After %q", status, h.Get("Retry-After"))
	}
	f.clock.Advance(time.Second)
	if status, _, _ := query(); status != 200 {
		t.Fatalf("query a second later: %d", status)
	}
	if status, _, _ := command(); status != 429 {
		t.Fatalf("command a second later: %d", status)
	}
	f.clock.Advance(time.Second)
	if status, _, _ := command(); status != 200 {
		t.Fatalf("command two seconds later: %d", status)
	}
	s := f.m.Stats()
	if s.Queries != 4 || s.Commands != 4 || s.Limited != 3 || len(s.PerSecond) != 3 ||
		s.PerSecond[0] != (SecondStats{Second: f.clock.Now().Add(-2 * time.Second), Queries: 3, Commands: 2, Limited: 2}) {
		t.Errorf("stats %+v", s)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.m.opts.RateLimits = &RateLimits{QueriesPerSecond: 1000, QueryBurst: 1000, CommandsPerSecond: 1000, CommandBurst: 1000, MaxConcurrent: 1}
	integ := f.integToken(t)
	f.m.InjectFault(Fault{Route: "/v1/integration_api/users/query", LatencyMS: 300, Times: 1})
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	wg.Go(func() {
		status, _, _ := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", "")
		statuses <- status
	})
	time.Sleep(100 * time.Millisecond) // the first is inside its latency
	wg.Go(func() {
		status, _, _ := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", "")
		statuses <- status
	})
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[200] != 1 || got[429] != 1 {
		t.Errorf("statuses %v, want one answered and one refused while it was in flight", got)
	}
	if s := f.m.Stats(); s.MaxInFlight != 1 || s.Limited != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestFaultsOverHTTP(t *testing.T) {
	t.Parallel()
	f := setup(t)
	integ := f.integToken(t)
	post := func(body string) (int, map[string]any) {
		res, err := http.Post(f.srv.URL+"/_sim/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v
	}
	for _, bad := range []string{`nope`, `{"status":500}`, `{"route":"/x","status":200}`, `{"route":"/x","latency_ms":-1}`} {
		if status, body := post(bad); status != 400 || body["error"] != "invalid_request" {
			t.Errorf("fault %s: %d %v", bad, status, body)
		}
	}
	status, body := post(`[{"route":"GET /v1/integration_api/users/query","status":503,"times":1},{"route":"/v1/integration_api/users/show","status":429,"retry_after":9}]`)
	if status != 200 || len(body["faults"].([]any)) != 2 {
		t.Fatalf("add faults: %d %v", status, body)
	}
	if status, _, body := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", ""); status != 503 || apiCode(body) != "server-error" {
		t.Errorf("injected 503: %d %v", status, body)
	}
	if status, _, _ := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", ""); status != 200 {
		t.Errorf("after times ran out: %d", status)
	}
	if status, h, body := f.send(t, "GET", "/v1/integration_api/users/show?id="+f.userID, integ, "", ""); status != 429 || h.Get("Retry-After") != "9" || apiCode(body) != "too-many-requests" {
		t.Errorf("injected 429: %d %q %v", status, h.Get("Retry-After"), body)
	}
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/_sim/faults", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if status, _, _ := f.send(t, "GET", "/v1/integration_api/users/show?id="+f.userID, integ, "", ""); status != 200 {
		t.Errorf("after clearing: %d", status)
	}

	// A timeout never answers; the client gives up.
	f.m.InjectFault(Fault{Route: "/v1/integration_api/events/query", Timeout: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/integration_api/events/query", nil)
	req.Header.Set("Authorization", "Bearer "+integ)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout fault: %v", err)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	f := setup(t)
	integ := f.integToken(t)
	f.m.InjectFault(Fault{Route: "/v1/integration_api/users/show", Status: 500})
	res, err := http.Post(f.srv.URL+"/_sim/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || f.m.LastSequenceID() != 0 || f.m.Stats().Queries != 0 {
		t.Fatalf("reset: %d, last seq %d", res.StatusCode, f.m.LastSequenceID())
	}
	if status, _, body := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", ""); status != 401 || apiCode(body) != "auth-invalid-access-token" {
		t.Errorf("old token after reset: %d %v", status, body)
	}
	integ = f.integToken(t)
	_, _, body := f.send(t, "GET", "/v1/integration_api/users/query", integ, "", "")
	if n := len(body["data"].([]any)); n != 0 {
		t.Errorf("%d users after reset", n)
	}
	if status, _, _ := f.send(t, "GET", "/v1/integration_api/users/show?id="+f.userID, integ, "", ""); status != 404 {
		t.Errorf("fault survived reset: %d", status)
	}
}

func TestTransitDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"map with keyword keys", `["^ ","~:id","~u9e1a5c3e-0000-4000-8000-000000000000","~:n",1]`, `{"id":"9e1a5c3e-0000-4000-8000-000000000000","n":1}`},
		{"cached keys", `["^ ","~:publicData",["^ ","~:city","x"],"~:privateData",["^ ","^1","y"]]`, `{"privateData":{"city":"y"},"publicData":{"city":"x"}}`},
		{"cached keyword values", `["~:listing/updated","~:listing/updated","^0"]`, `["listing/updated","listing/updated","listing/updated"]`},
		{"verbose", `{"~:id":"~uabc","~:tags":["a","~~b"]}`, `{"id":"abc","tags":["a","~b"]}`},
		{"tags", `["^ ","~:price",["~#mn",[1000,"EUR"]],"~:geo",["~#geo",[60.1,24.9]],"~:at","~m1772366400000"]`, `{"at":"2026-03-01T12:00:00.000Z","geo":{"lat":60.1,"lng":24.9},"price":{"amount":1000,"currency":"EUR"}}`},
		{"scalars", `["~_","~?t","~i42","~d1.5","~^x","~` + "`" + `y",null]`, `[null,true,42,1.5,"^x","` + "`" + `y",null]`},
		{"null value removes", `["^ ","~:publicData",["^ ","~:role",null]]`, `{"publicData":{"role":null}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeTransit([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			if string(b) != tc.want {
				t.Errorf("got %s, want %s", b, tc.want)
			}
		})
	}
	for _, bad := range []string{`["^ ","~:a"]`, `["^5"]`, `["~i12x"]`, `["~#zz",1]`, `["~mnope"]`, `["^ ",1,2]`, `{`} {
		if v, err := decodeTransit([]byte(bad)); err == nil {
			t.Errorf("%s decoded to %v", bad, v)
		}
	}
}
