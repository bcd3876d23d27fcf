// Prints an HS256 JWT signed by jose, as a partner's backend would mint one.
//   node jose_hs256.mjs <secret> <iss> <aud> <sub> <ttl seconds>
import * as jose from 'jose';

const [secret, iss, aud, sub, ttl] = process.argv.slice(2);
const tok = await new jose.SignJWT({ tenant: 'T1', scope: 'orders:read orders:write', email: 'u@example.com' })
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setSubject(sub).setIssuer(iss).setAudience(aud)
  .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + Number(ttl))
  .sign(new TextEncoder().encode(secret));
process.stdout.write(tok);
