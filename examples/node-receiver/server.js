// node-receiver: an Express app that receives backlot's `forward`
// deliveries and processes each one once.
//
// backlot's forward worker POSTs a job's payload here, signed with Standard
// Webhooks headers (webhook-id = the job id, webhook-timestamp,
// webhook-signature) and carrying Backlot-Delivery-Id, the id of the
// delivery that made the job (the vendor's webhook-id, say). A 2xx
// completes the job; anything else makes backlot retry it later. Delivery
// is at least once: a retry after a lost answer or after backlot restarts
// brings the same delivery again, so this app remembers what it processed.
//
//   FORWARD_WHSEC  the forward.secret of backlot's webhook (whsec_…), required
//   PORT, HOST     where to listen (default 127.0.0.1:9000)
//   DATA_DIR       where receiver.db and processed.log live (default ./data)
//
// What it answers:
//   400 missing_signature  a Standard Webhooks header is missing
//   401 invalid_signature  no signature matches FORWARD_WHSEC (forged, tampered)
//   401 stale_signature    the timestamp is more than 5 minutes off: an old
//                          captured delivery sent again is refused here
//   400 invalid_body       the signed body is not JSON
//   200 {"status":"processed"}  first time this delivery is seen
//   200 {"status":"duplicate"}  seen before (a retry, or a copy of a signed
//                          request within the 5 minutes): not processed again
//   500                    processing failed; nothing recorded, backlot retries
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const express = require('express');
const Database = require('better-sqlite3');
const { Webhook, WebhookVerificationError } = require('standardwebhooks');

// The standardwebhooks package refuses timestamps more than 5 minutes off;
// a signed request is remembered twice that long, so a copy of it is a
// duplicate until it is too old to verify at all.
const TOLERANCE_SECONDS = 5 * 60;
const REPLAY_WINDOW_SECONDS = 2 * TOLERANCE_SECONDS;

/** Opens the store: the deliveries processed, the signed requests seen, and
 * what processing produced (the events table). */
function openStore(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, 'receiver.db'));
  // WAL with synchronous=FULL: once a delivery is answered 200, its record
  // survives a crash of this process or of the machine.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS deliveries (
      delivery_id  TEXT PRIMARY KEY,
      job_id       TEXT NOT NULL,
      processed_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS signed_requests (
      digest  TEXT PRIMARY KEY,
      seen_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS signed_requests_seen_at ON signed_requests (seen_at);
    CREATE TABLE IF NOT EXISTS events (
      delivery_id TEXT PRIMARY KEY,
      type        TEXT,
      payload     TEXT NOT NULL,
      created_at  INTEGER NOT NULL
    );
  `);
  return db;
}

/** Your business logic. It runs inside the transaction that records the
 * delivery, so the effect and the record commit together: either both
 * happen or neither does, and a retry finds the record. Write your effect
 * to this database through `db`; for an effect elsewhere (an API call),
 * pass delivery.id as that API's idempotency key. Throw to answer 500 and
 * have backlot retry. */
function handleEvent(db, delivery) {
  db.prepare('INSERT INTO events (delivery_id, type, payload, created_at) VALUES (?, ?, ?, ?)')
    .run(delivery.id, typeof delivery.event.type === 'string' ? delivery.event.type : null,
      delivery.raw, Date.now());
}

/** Builds the Express app. Returns {app, db}. */
function createApp({ secret, dataDir, logFile }) {
  const wh = new Webhook(secret); // throws on a malformed secret: fail at start
  const db = openStore(dataDir);
  const st = {
    forget: db.prepare('DELETE FROM signed_requests WHERE seen_at < ?'),
    seen: db.prepare('INSERT OR IGNORE INTO signed_requests (digest, seen_at) VALUES (?, ?)'),
    record: db.prepare('INSERT OR IGNORE INTO deliveries (delivery_id, job_id, processed_at) VALUES (?, ?, ?)'),
  };

  // One transaction per delivery (better-sqlite3 runs it synchronously,
  // so requests never interleave inside it).
  const receive = db.transaction((delivery) => {
    const now = Math.floor(Date.now() / 1000);
    st.forget.run(now - REPLAY_WINDOW_SECONDS);
    // The same signed request again (same webhook-id, timestamp and body):
    // a copy, whatever its unsigned Backlot-Delivery-Id says. backlot's own
    // retries are signed anew with a fresh timestamp, so they pass here and
    // are caught by the delivery id below.
    if (st.seen.run(delivery.digest, now).changes === 0) return 'duplicate';
    if (st.record.run(delivery.id, delivery.jobId, now).changes === 0) return 'duplicate';
    handleEvent(db, delivery);
    return 'processed';
  });

  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (req, res) => res.json({ status: 'ok' }));

  // The raw body, as signed: verification must see the exact bytes, so no
  // JSON parser runs before it.
  app.post('/jobs/vendor', express.raw({ type: () => true, limit: '1mb' }), (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let event;
    try {
      event = wh.verify(raw, req.headers);
    } catch (err) {
      return refuse(res, err);
    }
    if (event === null || typeof event !== 'object') {
      return res.status(400).json({ error: 'invalid_body', error_description: 'the body is not a JSON object' });
    }
    const jobId = req.get('webhook-id');
    const delivery = {
      // Without Backlot-Delivery-Id (an endpoint with dedupe: none) the job
      // id is the best key there is: backlot's retries of a job reuse it.
      id: req.get('backlot-delivery-id') || `job:${jobId}`,
      jobId,
      digest: crypto.createHash('sha256')
        .update(`${jobId}.${req.get('webhook-timestamp')}.`).update(raw).digest('hex'),
      event,
      raw: raw.toString('utf8'),
    };
    let status;
    try {
      status = receive(delivery);
    } catch (err) {
      console.error(`delivery ${delivery.id} (job ${jobId}) failed: ${err.message}`);
      return res.status(500).json({ error: 'processing_failed' });
    }
    // After the commit, one line per answer: what processing did, for people
    // (and the tests) to read. A crash between the commit and this line loses
    // the line, never the record.
    fs.appendFileSync(logFile, JSON.stringify({ status, delivery_id: delivery.id, job_id: jobId }) + '\n');
    return res.status(200).json({ status });
  });

  // Anything express.raw or a handler threw (a body over 1mb, say).
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    const code = err.status || err.statusCode || 500;
    res.status(code).json({ error: code === 413 ? 'body_too_large' : 'error' });
  });

  return { app, db };
}

/** Answers a delivery that did not verify. Nothing is recorded: a forged
 * or stale request must not mark a real delivery as processed. */
function refuse(res, err) {
  if (!(err instanceof WebhookVerificationError)) {
    // The signature matched but the body is not JSON.
    return res.status(400).json({ error: 'invalid_body', error_description: 'the body is not JSON' });
  }
  if (err.message === 'Missing required headers') {
    return res.status(400).json({ error: 'missing_signature', error_description: err.message });
  }
  if (/timestamp too (old|new)/.test(err.message)) {
    return res.status(401).json({ error: 'stale_signature', error_description: err.message });
  }
  return res.status(401).json({ error: 'invalid_signature', error_description: err.message });
}

function main() {
  const secret = process.env.FORWARD_WHSEC;
  if (!secret) {
    console.error('FORWARD_WHSEC is required: the forward.secret of the backlot webhook (whsec_…)');
    process.exit(2);
  }
  const dataDir = process.env.DATA_DIR || path.join(__dirname, 'data');
  const host = process.env.HOST || '127.0.0.1';
  const port = Number(process.env.PORT || 9000);
  const { app, db } = createApp({ secret, dataDir, logFile: path.join(dataDir, 'processed.log') });
  const server = app.listen(port, host, () => {
    console.log(`node-receiver listening on http://${host}:${port}/jobs/vendor (data in ${dataDir})`);
  });
  server.on('error', (err) => {
    console.error(`listen ${host}:${port}: ${err.message}`);
    process.exit(1);
  });
  // Finish the requests in flight, then close the store. Idle keep-alive
  // connections are closed at once; one still busy after 5 s is cut (a
  // request cut before its commit is retried by backlot).
  const stop = () => {
    console.log('node-receiver stopping');
    server.close(() => { db.close(); process.exit(0); });
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();

module.exports = { createApp };
