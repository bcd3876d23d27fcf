package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestIntegrationSDKInterop drives the real Sharetribe Integration SDK
// (pinned in testdata/integration-sdk) against the simulator:
// client_credentials, users.query, listings.close and users.updateProfile
// (Transit request bodies), events.query with startAfterSequenceId, a 404,
// and the rate limits: an unpaced burst gets 429 too-many-requests, the
// same burst paced by the SDK's own limiter does not. (The SDK has no
// retry of its own for 429; its limiter is how it avoids them.)
func TestIntegrationSDKInterop(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "integration-sdk"))
	if err != nil {
		t.Fatal(err)
	}
	node := testutil.Node(t, dir)

	// A real clock: the rate limits run in real time against the SDK.
	m := New(Options{
		ClientID: testClientID, IntegrationClientID: testIntegID, IntegrationClientSecret: testIntegSecret,
		RateLimits: &RateLimits{QueriesPerSecond: 5, QueryBurst: 4, CommandsPerSecond: 5, CommandBurst: 4},
	})
	userID := m.AddUser(testEmail, testPassword, Profile{FirstName: "Joe", LastName: "Dunphy", PublicData: map[string]any{"role": "customer"}})
	m.AddUser("ann@example.com", "pw", Profile{FirstName: "Ann", LastName: "B"})
	m.AddUser("bob@example.com", "pw", Profile{FirstName: "Bob", LastName: "C"})
	listingID := m.AddListing(userID, Listing{Title: "Bike"})
	start := m.LastSequenceID()
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "interop.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+srv.URL, "CLIENT_ID="+testIntegID, "CLIENT_SECRET="+testIntegSecret,
		"USER_ID="+userID, "LISTING_ID="+listingID, "START_SEQ="+strconv.FormatInt(start, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node interop.js: %v\n%s", err, stderr.String())
	}
	type apiErr struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	var got struct {
		Users struct {
			IDs   []string       `json:"ids"`
			Types []string       `json:"types"`
			Meta  map[string]int `json:"meta"`
		} `json:"users"`
		AuthInfo map[string]any `json:"authInfo"`
		Closed   struct{ ID, State string }
		Updated  struct {
			Metadata   map[string]any `json:"metadata"`
			PublicData map[string]any `json:"publicData"`
		} `json:"updated"`
		Events []struct {
			Seq           int64  `json:"seq"`
			Type          string `json:"type"`
			ResourceID    string `json:"resourceId"`
			PreviousState string `json:"previousState"`
		} `json:"events"`
		NotFound apiErr   `json:"notFound"`
		Burst    []apiErr `json:"burst"`
		Paced    []apiErr `json:"paced"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	if len(got.Users.IDs) != 2 || got.Users.Types[0] != "user" || got.Users.Meta["totalItems"] != 3 || got.Users.Meta["totalPages"] != 2 || got.Users.Meta["perPage"] != 2 {
		t.Errorf("users.query: %+v", got.Users)
	}
	// The integration client_credentials grant carries a refresh token,
	// which the SDK reports as its grant type.
	if got.AuthInfo["grantType"] != "refresh_token" {
		t.Errorf("authInfo %v", got.AuthInfo)
	}
	if got.Closed.ID != listingID || got.Closed.State != "closed" {
		t.Errorf("listings.close: %+v", got.Closed)
	}
	if got.Updated.Metadata["tier"] != "gold" || got.Updated.Metadata["level"] != float64(3) ||
		got.Updated.PublicData["city"] != "Helsinki" || got.Updated.PublicData["role"] != nil {
		t.Errorf("users.updateProfile: %+v", got.Updated)
	}
	if len(got.Events) != 2 || got.Events[0].Seq != start+1 || got.Events[0].Type != "listing/updated" ||
		got.Events[0].ResourceID != listingID || got.Events[0].PreviousState != "published" ||
		got.Events[1].Type != "user/updated" || got.Events[1].ResourceID != userID {
		t.Errorf("events.query after %d: %+v", start, got.Events)
	}
	if got.NotFound != (apiErr{404, "not-found"}) {
		t.Errorf("listings.show unknown: %+v", got.NotFound)
	}
	limited := 0
	for _, r := range got.Burst {
		switch r {
		case apiErr{Status: 200}:
		case apiErr{429, "too-many-requests"}:
			limited++
		default:
			t.Errorf("burst answer %+v", r)
		}
	}
	if limited == 0 {
		t.Errorf("an unpaced burst of 8 was never refused: %+v", got.Burst)
	}
	for _, r := range got.Paced {
		if r.Status != 200 {
			t.Errorf("paced by the SDK's limiter, a query was refused: %+v", got.Paced)
			break
		}
	}
	if s := m.Stats(); s.Limited != limited {
		t.Errorf("simulator counted %d refusals, the SDK saw %d", s.Limited, limited)
	}
}
