package devenv

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/idv"
)

// PrintSummary writes what a developer needs to start: the URLs, the demo
// logins, where the data and secrets are, and the webhook secret to sign
// test deliveries with (as `stripe listen` prints its whsec_).
func (e *Env) PrintSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backlot dev: ready in %s\n\n", e.StartDuration.Round(time.Millisecond))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  demo page\t%s\n", e.URLs.Demo)
	fmt.Fprintf(tw, "  console\t%s\tjobs, webhooks, connections, keys, audit log (sign in below)\n", e.URLs.Backlot+consolePath)
	fmt.Fprintf(tw, "  backlot\t%s\n", e.URLs.Backlot)
	fmt.Fprintf(tw, "  marketplace\t%s\tSharetribe APIs (client %s)\n", e.URLs.Marketplace, marketplaceClientID)
	fmt.Fprintf(tw, "  oauth\t%s\tOAuth 2.0 server (connection %q)\n", e.URLs.OAuth, connectionName)
	fmt.Fprintf(tw, "  idv\t%s\tID verification, callbacks from %s to %s\n", e.URLs.IDV, idv.CallbackSourceDefault, idvWebhookPath)
	fmt.Fprintf(tw, "  payments\t%s\tWePay-v2-shaped API\n", e.URLs.Payments)
	fmt.Fprintf(tw, "  partner\t%s\tmerchant-token middleware\n", e.URLs.Partner)
	fmt.Fprintf(tw, "  issuer\t%s\tJWKS token issuer\n", e.URLs.Issuer)
	tw.Flush()
	fmt.Fprintf(&b, "\n  every simulator: POST /_sim/reset, /_sim/faults to inject latency, 5xx, 429 and timeouts\n")
	demo := e.DemoUsers()
	users := make([]string, len(demo))
	for i, u := range demo {
		users[i] = u.Email
	}
	fmt.Fprintf(&b, "  marketplace users: %s (password %s)\n", strings.Join(users, ", "), demoPassword)
	merchants := make([]string, len(e.Merchants))
	for i, m := range e.Merchants {
		merchants[i] = fmt.Sprintf("%s %v", m.Email, m.AccountIDs)
	}
	fmt.Fprintf(&b, "  console sign-in: \"Open the console\" on the demo page, or paste the \"token\" (staff %s, dev only) of\n"+
		"    curl -s -X POST %sapi/staff-token\n", staffDemoSubject, e.URLs.Demo)
	fmt.Fprintf(&b, "  marketplace events %s: polled every %s into %s jobs\n", strings.Join(eventTypes(), ", "), eventPoll, eventJob)
	fmt.Fprintf(&b, "  payments merchants: %s\n", strings.Join(merchants, ", "))
	fmt.Fprintf(&b, "  data: %s/%s; secrets: %s/%s", e.Dir, dbFile, e.Dir, SecretsFile)
	if e.SecretsCreated {
		fmt.Fprintf(&b, " (new)")
	}
	fmt.Fprintf(&b, "\n  webhook signing secret for %s: %s\n", queueWebhookPath, e.Secrets.WebhookSecret)
	_, err := io.WriteString(w, b.String())
	return err
}
