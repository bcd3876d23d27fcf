// The demo page of `backlot dev`: plain JavaScript, no framework. Each
// section's result element gets a data-state once its step has ended, so a
// test (or a curious reader of the DOM) can tell where the walk-through is.
"use strict";

const $ = (id) => document.getElementById(id);

function show(id, value, state) {
  const el = $(id);
  el.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  if (state !== undefined) el.dataset.state = state;
}

async function call(method, path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method, headers, body, credentials: opts.credentials || "same-origin" });
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* not JSON: keep the text */ }
  return { status: res.status, data };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1. Stripe App connect.
async function connectCheck() {
  const r = await call("GET", "/_dev/api/stripe/userinfo");
  const ok = r.data && r.data.status === 200;
  show("connect-result", { "GET /connect/acme/userinfo": r.data }, ok ? "connected" : "not-connected");
}

async function connectLogout() {
  const r = await call("POST", "/_dev/api/stripe/logout");
  show("connect-result", { "POST /connect/acme/logout": r.data }, "logged-out");
}

// 2. ID verification: the recipe's routes, as the marketplace user of
// the SDK cookie. The statuses seen are kept across the trip to the
// vendor's page, so the result can show pending → verified.
function idvHistory(add) {
  const h = JSON.parse(sessionStorage.getItem("idv-history") || "[]");
  if (add && h[h.length - 1] !== add) h.push(add);
  sessionStorage.setItem("idv-history", JSON.stringify(h));
  return h;
}

async function idvSignin() {
  const sel = $("idv-user");
  const login = await call("POST", "/_dev/api/marketplace-login", { json: { email: sel.value, password: sel.dataset.password } });
  if (!login.data || login.data.status !== 200) { show("idv-result", { login: login.data }, "error"); return; }
  // What the Sharetribe SDK keeps in the browser: the token response as
  // JSON, URL-encoded, in st-<client id>-token.
  const name = $("idv").dataset.cookie;
  document.cookie = name + "=" + encodeURIComponent(JSON.stringify(login.data.body)) + "; path=/; SameSite=Lax";
  sessionStorage.removeItem("idv-history");
  const st = await call("GET", "/_dev/api/idv/status");
  show("idv-result", { signed_in: sel.value, cookie: name, "GET /_dev/api/idv/status": st.data }, st.status === 200 ? "signed-in" : "error");
}

async function idvStart() {
  show("idv-result", "Starting…");
  const r = await call("POST", "/_dev/api/idv/start");
  if (r.status !== 200) { show("idv-result", { "POST /_dev/api/idv/start": r }, "error"); return; }
  sessionStorage.setItem("idv-ref", r.data.transaction_reference);
  const st = await call("GET", "/_dev/api/idv/status");
  const status = st.data && st.data.status;
  const h = idvHistory(status);
  const link = $("idv-open");
  link.href = r.data.redirect_url;
  link.hidden = false;
  show("idv-result", { "POST /_dev/api/idv/start": r.data, "privateData.idVerification": st.data, history: h.join(" → "),
    next: "open the vendor's page" }, status || "error");
}

async function idvStatus() {
  const st = await call("GET", "/_dev/api/idv/status");
  if (st.status !== 200) { show("idv-result", { "GET /_dev/api/idv/status": st }, "error"); return; }
  const h = idvHistory(st.data.status);
  show("idv-result", { "privateData.idVerification": st.data, history: h.join(" → ") }, st.data.status);
}

async function idvWatch(ref) {
  show("idv-result", "Waiting for the vendor's callback for " + ref + "…", "waiting");
  for (let i = 0; i < 240; i++) {
    const st = await call("GET", "/_dev/api/idv/status");
    if (st.status !== 200) { show("idv-result", { "GET /_dev/api/idv/status": st }, "error"); return; }
    const h = idvHistory(st.data.status);
    const r = await call("GET", "/_dev/api/jobs?kind=idv.callback");
    const job = (r.data.jobs || []).find((j) => j.payload && j.payload.jumioIdScanReference === ref);
    const view = { "privateData.idVerification": st.data, history: h.join(" → ") };
    if (job) view.job = { id: job.id, state: job.state, attempt: job.attempt, log: job.log, last_error: job.last_error };
    const done = st.data.status !== "pending" && st.data.status !== "none";
    show("idv-result", view, done ? st.data.status : "waiting");
    if (done) { refreshJobs(); return; }
    await sleep(500);
  }
  show("idv-result", "The status did not leave pending for " + ref + " within two minutes.", "timeout");
}

// 3. Payments dashboard.
let csrf = "";

async function payLogin() {
  const t = await call("POST", "/_dev/api/staff-token");
  if (t.status !== 200) { show("pay-result", t.data, "error"); return; }
  const r = await call("POST", "/auth/session", { headers: { Authorization: "Bearer " + t.data.token } });
  if (r.status !== 200) { show("pay-result", { "POST /auth/session": r }, "error"); return; }
  csrf = r.data.csrf_token;
  show("pay-result", { "POST /auth/session": { status: r.status, principal: r.data.principal, expires_at: r.data.expires_at } }, "signed-in");
}

async function payCSRF() {
  const r = await call("GET", "/auth/csrf");
  if (r.status === 200) csrf = r.data.csrf_token;
  show("pay-result", { "GET /auth/csrf": r }, r.status === 200 ? "csrf" : "error");
}

async function payCall() {
  const account = Number($("pay-account").value);
  const r = await call("POST", "/api/account", { json: { account_id: account }, headers: { "X-CSRF-Token": csrf } });
  show("pay-result", { "POST /api/account": r }, r.status === 200 ? "ok" : "error-" + r.status);
}

// The console: the dashboard's staff session (step 3) is the console's
// sign-in too.
async function consoleOpen() {
  await payLogin();
  if (!csrf) { $("console-status").textContent = "sign-in failed: see step 3"; return; }
  location.href = $("console-open").dataset.url + "jobs";
}

// 4. Who is calling.
// Without cookies: whoami answers the first authenticator that accepts the
// call, and the dashboard's session cookie (step 3) would win.
async function whoami(token) {
  return call("GET", "/auth/whoami", { headers: { Authorization: "Bearer " + token }, credentials: "omit" });
}

async function whoMarketplace() {
  const sel = $("who-user");
  const login = await call("POST", "/_dev/api/marketplace-login", { json: { email: sel.value, password: sel.dataset.password } });
  if (!login.data || login.data.status !== 200) { show("who-result", { login: login.data }, "error"); return; }
  const r = await whoami(login.data.body.access_token);
  show("who-result", { "GET /auth/whoami": r }, r.status === 200 ? r.data.authenticator : "error");
}

async function whoExtension() {
  const t = await call("POST", "/_dev/api/extension-token");
  if (t.status !== 200) { show("who-result", t.data, "error"); return; }
  const r = await whoami(t.data.token);
  show("who-result", { "GET /auth/whoami": r }, r.status === 200 ? r.data.authenticator : "error");
}

// 5. Jobs.
async function refreshJobs() {
  const r = await call("GET", "/_dev/api/jobs");
  const body = $("jobs-table").tBodies[0];
  body.replaceChildren();
  for (const j of r.data.jobs || []) {
    const tr = document.createElement("tr");
    tr.dataset.kind = j.kind;
    tr.dataset.state = j.state;
    for (const v of [j.id, j.kind, j.state, j.attempt, (j.log || []).join("\n") || j.last_error || ""]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    }
    tr.children[2].className = "state-" + j.state;
    body.appendChild(tr);
  }
  const d = await call("GET", "/_dev/api/deliveries");
  const ul = $("deliveries");
  ul.replaceChildren();
  for (const dl of d.data.deliveries || []) {
    const li = document.createElement("li");
    li.textContent = dl.at + " " + dl.backlot_delivery_id + (dl.verified ? " (signature verified) " : " ") + JSON.stringify(dl.body);
    ul.appendChild(li);
  }
  ul.dataset.count = String((d.data.deliveries || []).length);
}

async function queueSend() {
  const r = await call("POST", "/_dev/api/queue/send");
  show("queue-result", { "POST /webhooks/queue": r.data }, "sent");
  const id = r.data && r.data.body && r.data.body.job_id;
  if (!id) { show("queue-result", r.data, "error"); return; }
  for (let i = 0; i < 120; i++) {
    const j = await call("GET", "/_dev/api/jobs?kind=queue.event");
    const job = (j.data.jobs || []).find((x) => String(x.id) === String(id));
    if (job && (job.state === "completed" || job.state === "failed")) {
      show("queue-result", { "POST /webhooks/queue": r.data, job: { id: job.id, state: job.state } }, job.state);
      refreshJobs();
      return;
    }
    await sleep(250);
  }
  show("queue-result", { "POST /webhooks/queue": r.data, job: "not finished after 30 s" }, "timeout");
}

async function resetSims() {
  const r = await call("POST", "/_dev/api/reset-simulators");
  $("reset-status").textContent = r.status === 200 ? "simulators reset" : "reset failed";
}

function on(id, fn) {
  $(id).addEventListener("click", () => fn().catch((e) => { console.error(e); }));
}

document.addEventListener("DOMContentLoaded", () => {
  on("connect-check", connectCheck);
  on("connect-logout", connectLogout);
  on("idv-signin", idvSignin);
  on("idv-start", idvStart);
  on("idv-status-check", idvStatus);
  on("console-open", consoleOpen);
  on("pay-login", payLogin);
  on("pay-csrf", payCSRF);
  on("pay-call", payCall);
  on("who-marketplace", whoMarketplace);
  on("who-extension", whoExtension);
  on("queue-send", queueSend);
  on("jobs-refresh", refreshJobs);
  on("reset-sims", resetSims);
  const q = new URLSearchParams(location.search);
  const step = q.get("step");
  if (step && $(step)) $(step).scrollIntoView();
  if (q.get("step") === "connect") connectCheck();
  if (q.get("step") === "idv") {
    const ref = q.get("transactionReference") || sessionStorage.getItem("idv-ref");
    if (ref) idvWatch(ref);
  }
  refreshJobs();
  // Marketplace events arrive as jobs on their own: keep the table fresh.
  setInterval(() => { refreshJobs().catch((e) => console.error(e)); }, 3000);
  document.body.dataset.ready = "true";
});
