// Signs deliveries with the real client libraries, for interop_test.go.
// Reads one JSON request on stdin: {standard: {secret, id, timestamp, body},
// stripe: {secret, timestamp, body}}; writes the header values as JSON.
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';

let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = {};
  if (req.standard) {
    const s = req.standard;
    out.standard = new Webhook(s.secret).sign(s.id, new Date(s.timestamp * 1000), s.body);
  }
  if (req.stripe) {
    const s = req.stripe;
    const stripe = new Stripe('sk_test_interop');
    out.stripe = stripe.webhooks.generateTestHeaderString({ payload: s.body, secret: s.secret, timestamp: s.timestamp });
  }
  process.stdout.write(JSON.stringify(out));
});
