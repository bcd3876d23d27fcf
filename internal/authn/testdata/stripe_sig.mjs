// Prints a Stripe-Signature header made by the stripe package over the
// Stripe App payload {"user_id":…,"account_id":…}.
//   node stripe_sig.mjs <secret> <unix timestamp> <user_id> <account_id>
import Stripe from 'stripe';

const [secret, ts, userId, accountId] = process.argv.slice(2);
const stripe = new Stripe('sk_test_interop_unused');
// JSON.stringify keeps insertion order: exactly the order Stripe signs.
const payload = JSON.stringify({ user_id: userId, account_id: accountId });
process.stdout.write(stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Number(ts) }));
