// Drives the real Sharetribe Integration SDK against the marketplace
// simulator and prints what it saw as one JSON line. Run by
// integration_sdk_interop_test.go with BASE_URL, CLIENT_ID, CLIENT_SECRET,
// USER_ID, LISTING_ID and START_SEQ in the environment.
const flexIntegrationSdk = require('sharetribe-flex-integration-sdk');

const { BASE_URL, CLIENT_ID, CLIENT_SECRET, USER_ID, LISTING_ID, START_SEQ } = process.env;
const { UUID } = flexIntegrationSdk.types;

const newSdk = extra =>
  flexIntegrationSdk.createInstance({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    baseUrl: BASE_URL,
    tokenStore: flexIntegrationSdk.tokenStore.memoryStore(),
    ...extra,
  });

const errorOf = e => ({
  status: e.status,
  code: e.data && e.data.errors && e.data.errors[0] && e.data.errors[0].code,
});

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

const main = async () => {
  const sdk = newSdk({});
  const out = {};

  // client_credentials happens on the first call.
  const users = await sdk.users.query({ perPage: 2 });
  out.users = {
    ids: users.data.data.map(u => u.id.uuid),
    types: users.data.data.map(u => u.type),
    meta: users.data.meta,
  };
  out.authInfo = await sdk.authInfo();

  // A command: the SDK sends the body as Transit.
  const closed = await sdk.listings.close({ id: new UUID(LISTING_ID) }, { expand: true });
  out.closed = { id: closed.data.data.id.uuid, state: closed.data.data.attributes.state };

  const updated = await sdk.users.updateProfile(
    {
      id: new UUID(USER_ID),
      metadata: { tier: 'gold', level: 3 },
      publicData: { role: null, city: 'Helsinki' },
    },
    { expand: true }
  );
  const profile = updated.data.data.attributes.profile;
  out.updated = { metadata: profile.metadata, publicData: profile.publicData };

  const events = await sdk.events.query({ startAfterSequenceId: Number(START_SEQ) });
  out.events = events.data.data.map(e => ({
    seq: e.attributes.sequenceId,
    type: e.attributes.eventType,
    resourceId: e.attributes.resourceId.uuid,
    previousState: e.attributes.previousValues && e.attributes.previousValues.attributes
      ? e.attributes.previousValues.attributes.state
      : undefined,
  }));

  try {
    await sdk.listings.show({ id: new UUID('9e1a5c3e-0000-4000-8000-000000000000') });
    out.notFound = 'found';
  } catch (e) {
    out.notFound = errorOf(e);
  }

  // Unpaced, a burst of queries goes over the simulator's dev-style limit
  // and some are refused with 429 too-many-requests.
  const burst = await Promise.allSettled(
    Array.from({ length: 8 }, () => sdk.users.show({ id: new UUID(USER_ID) }))
  );
  out.burst = burst.map(r => (r.status === 'fulfilled' ? { status: 200 } : errorOf(r.reason)));

  // Paced by the SDK's own rate limiter, the same burst is not refused.
  await sleep(1100);
  const paced = newSdk({
    queryLimiter: flexIntegrationSdk.util.createRateLimiter({
      bucketInitial: 1,
      bucketIncreaseInterval: 250,
      bucketIncreaseAmount: 1,
      bucketMaximum: 1,
    }),
  });
  const pacedRes = await Promise.allSettled(
    Array.from({ length: 8 }, () => paced.users.show({ id: new UUID(USER_ID) }))
  );
  out.paced = pacedRes.map(r => (r.status === 'fulfilled' ? { status: 200 } : errorOf(r.reason)));
  return out;
};

main().then(
  out => {
    process.stdout.write(JSON.stringify(out) + '\n');
  },
  err => {
    process.stderr.write(`interop failed: ${err && err.stack}\n${JSON.stringify(err && err.data)}\n`);
    process.exit(1);
  }
);
