package devenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestDemoPageBrowser walks the demo page through every recipe in a real
// browser, each to its end: the Stripe App connects through the OAuth
// simulator's consent page and reads userinfo; a marketplace user signs in
// with the SDK cookie and starts an ID check (privateData pending), approves
// on the vendor's hosted page, and the callback's job writes verified; the
// payments dashboard signs in, takes its CSRF token and proxies a call; a
// marketplace user and a platform extension are recognised by whoami; a
// signed webhook becomes a job forwarded to the receiver; the marketplace's
// events become jobs; the console opens signed in and lists the jobs.
func TestDemoPageBrowser(t *testing.T) {
	t.Parallel()
	env := start(t, t.TempDir(), nil)
	ctx := testutil.Browser(t)

	type step struct {
		name    string
		actions []chromedp.Action[chromedp.Void]
		// then, when set, is an element whose text must contain want.
		then, want string
	}
	wait := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	steps := []step{
		{"open the demo page", []chromedp.Action[chromedp.Void]{chromedp.Navigate(env.URLs.Demo), wait(`body[data-ready="true"]`)}, "", ""},
		{"connect: not connected yet", []chromedp.Action[chromedp.Void]{click("#connect-check"), wait(`#connect-result[data-state="not-connected"]`)}, "", ""},
		{"connect: sign in at the OAuth simulator", []chromedp.Action[chromedp.Void]{click("#connect-login"), wait("#approve"), click("#approve")}, "", ""},
		{"connect: back with userinfo", []chromedp.Action[chromedp.Void]{wait(`body[data-ready="true"]`), wait(`#connect-result[data-state="connected"]`)}, "#connect-result", "alice@example.com"},
		{"idv: sign in to the marketplace", []chromedp.Action[chromedp.Void]{click("#idv-signin"), wait(`#idv-result[data-state="signed-in"]`)}, "#idv-result", `"status": "none"`},
		{"idv: start, privateData pending", []chromedp.Action[chromedp.Void]{click("#idv-start"), wait(`#idv-result[data-state="pending"]`)}, "#idv-result", "redirect_url"},
		{"idv: open the vendor page", []chromedp.Action[chromedp.Void]{click("#idv-open"), wait("#decision-approve")}, "", ""},
		{"idv: approve, the callback's job writes verified", []chromedp.Action[chromedp.Void]{click("#decision-approve"), wait(`body[data-ready="true"]`),
			wait(`#idv-result[data-state="verified"]`)}, "#idv-result", "pending → verified"},
		{"idv: the job and the vendor's answer", nil, "#idv-result", "APPROVED_VERIFIED"},
		{"payments: sign in", []chromedp.Action[chromedp.Void]{click("#pay-login"), wait(`#pay-result[data-state="signed-in"]`)}, "", ""},
		{"payments: CSRF token", []chromedp.Action[chromedp.Void]{click("#pay-csrf"), wait(`#pay-result[data-state="csrf"]`)}, "", ""},
		{"payments: proxied call", []chromedp.Action[chromedp.Void]{click("#pay-call"), wait(`#pay-result[data-state="ok"]`)}, "#pay-result", `"account_id": 1001`},
		{"who: marketplace user", []chromedp.Action[chromedp.Void]{click("#who-marketplace"), wait(`#who-result[data-state="shoppers"]`)}, "#who-result", "alice@backlot.dev"},
		{"who: platform extension", []chromedp.Action[chromedp.Void]{click("#who-extension"), wait(`#who-result[data-state="extension"]`)}, "#who-result", "PARTNER_DEV"},
		{"jobs: signed webhook forwarded", []chromedp.Action[chromedp.Void]{click("#queue-send"), wait(`#queue-result[data-state="completed"]`), wait(`#deliveries[data-count="1"]`)}, "", ""},
		{"jobs: table lists both kinds", []chromedp.Action[chromedp.Void]{click("#jobs-refresh"),
			wait(`#jobs-table tr[data-kind="idv.callback"][data-state="completed"]`),
			wait(`#jobs-table tr[data-kind="queue.event"][data-state="completed"]`)}, "", ""},
		{"jobs: marketplace events (the table refreshes itself)", []chromedp.Action[chromedp.Void]{
			wait(`#jobs-table tr[data-kind="marketplace.event"][data-state="completed"]`)}, "#jobs-table", "user/updated"},
		{"connect: log out", []chromedp.Action[chromedp.Void]{click("#connect-logout"), wait(`#connect-result[data-state="logged-out"]`),
			click("#connect-check"), wait(`#connect-result[data-state="not-connected"]`)}, "", ""},
		{"console: opens signed in as staff, admin", []chromedp.Action[chromedp.Void]{click("#console-open"), wait("#who"), wait("table#jobs")}, "#who", "staff:support@backlot.dev (admin)"},
		{"console: lists the ID check's job", nil, "table#jobs", "idv.callback"},
	}
	for _, s := range steps {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(sctx, s.actions...)
		cancel()
		if err != nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			body, _ := chromedp.Run(dctx, chromedp.Text(chromedp.CSS("body")))
			dcancel()
			t.Fatalf("step %q: %v\nat %s\n%s", s.name, err, loc, body)
		}
		if s.then != "" {
			checkText(t, ctx, s.name, s.then, s.want)
		}
	}
}

// checkText asserts what a step's result shows, beyond its state.
func checkText(t *testing.T, ctx context.Context, step, sel, want string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: read %s: %v", step, sel, err)
	}
	if !strings.Contains(text, want) {
		t.Errorf("%s: %s shows %q, want it to contain %q", step, sel, text, want)
	}
}
