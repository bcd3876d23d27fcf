// Logs in with the real Sharetribe SDK against the marketplace simulator,
// keeping the token in the SDK's Express cookie store, and prints the
// cookie as Express would send it (res.cookie encodes the value with
// encodeURIComponent). Run by backlot's sharetribe authenticator tests with
// BASE_URL, CLIENT_ID, EMAIL and PASSWORD in the environment.
const sharetribeSdk = require('sharetribe-flex-sdk');

const { BASE_URL, CLIENT_ID, EMAIL, PASSWORD } = process.env;

const main = async () => {
  const jar = {};
  const req = { cookies: {} };
  const res = {
    cookie: (name, value) => {
      jar[name] = encodeURIComponent(value);
    },
    clearCookie: name => {
      delete jar[name];
    },
  };
  const sdk = sharetribeSdk.createInstance({
    clientId: CLIENT_ID,
    baseUrl: BASE_URL,
    tokenStore: sharetribeSdk.tokenStore.expressCookieStore({ clientId: CLIENT_ID, req, res }),
  });
  await sdk.login({ username: EMAIL, password: PASSWORD });
  return { cookies: jar };
};

main().then(
  out => process.stdout.write(JSON.stringify(out) + '\n'),
  err => {
    process.stderr.write(`cookie.js failed: ${err && err.stack}\n`);
    process.exit(1);
  }
);
