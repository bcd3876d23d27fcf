// Drives the real Sharetribe SDK against the marketplace simulator and
// prints what it saw as one JSON line. Run by sdk_interop_test.go with
// BASE_URL, CLIENT_ID, EMAIL and PASSWORD in the environment.
const sharetribeSdk = require('sharetribe-flex-sdk');

const { BASE_URL, CLIENT_ID, EMAIL, PASSWORD } = process.env;

const main = async () => {
  const store = sharetribeSdk.tokenStore.memoryStore();
  const sdk = sharetribeSdk.createInstance({
    clientId: CLIENT_ID,
    baseUrl: BASE_URL,
    tokenStore: store,
  });
  const out = {};

  // Logged out: the SDK fetches an anonymous token, which the API refuses
  // for the current user.
  try {
    await sdk.currentUser.show();
    out.anonShow = 'accepted';
  } catch (e) {
    out.anonShow = { status: e.status, code: e.data && e.data.errors && e.data.errors[0].code };
  }
  out.anonInfo = await sdk.authInfo();

  try {
    await sdk.login({ username: EMAIL, password: 'wrong-password' });
    out.wrongPassword = 'accepted';
  } catch (e) {
    out.wrongPassword = e.status;
  }

  await sdk.login({ username: EMAIL, password: PASSWORD });
  out.userInfo = await sdk.authInfo();

  const show = await sdk.currentUser.show();
  const user = show.data.data;
  out.user = {
    id: String(user.id && user.id.uuid ? user.id.uuid : user.id),
    type: user.type,
    email: user.attributes.email,
    displayName: user.attributes.profile.displayName,
  };
  out.loginToken = await store.getToken();

  // A stale access token: the SDK must get a 401, refresh and retry.
  await store.setToken({ ...out.loginToken, access_token: 'stale-access-token' });
  const again = await sdk.currentUser.show();
  out.afterRefresh = {
    email: again.data.data.attributes.email,
    token: await store.getToken(),
  };

  await sdk.logout();
  out.afterLogout = (await store.getToken()) || null;
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
