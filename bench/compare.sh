#!/usr/bin/env bash
# Side-by-side benchmark of backlot against the Express + BullMQ + jose peer
# in ../shared/bench: same machine, same load generator, same run, alternating.
# Prints each measurement and the ratios (the only figures worth quoting on a
# shared, noisy machine).
#
#   bench/compare.sh                 # defaults: N=40000 requests, C=64 connections, ROUNDS=2
#   N=20000 ROUNDS=1 bench/compare.sh
#
# What it measures:
#   ingest   signed Standard Webhooks deliveries acknowledged per second and p99, at C connections
#            (backlot: SQLite with synchronous=FULL, then PostgreSQL; the peer: BullMQ on Redis without persistence)
#   e2e      jobs completed per second from the first delivery to the last completion (no-op worker)
#   auth GET GET with an RS256 JWT from the jose issuer: backlot /auth/whoami vs the peer's /api/ext/me,
#            and a bare net/http handler as the ceiling
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$root/../shared}
N=${N:-40000}
C=${C:-64}
ROUNDS=${ROUNDS:-2}
work=$(mktemp -d /tmp/backlot-bench.XXXXXX)
chmod 755 "$work"
pids=()
pgdir=""

# The peer's fixed ports. peer.sh stop does not always end the node
# processes (it records the pid of setsid, which forks), so cleanup also
# ends whatever holds these ports; and a run refuses to start over stale
# peers, which would be measured instead of fresh ones.
peer_ports="8081 8099 6390"
stop_peers() {
  "$shared/bench/peer.sh" stop >/dev/null 2>&1 || true
  for port in $peer_ports; do fuser -k -n tcp "$port" >/dev/null 2>&1 || true; done
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$pgdir" ]; then pgctl stop >/dev/null 2>&1 || true; fi
  stop_peers
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

log "building loadgen, backlot-bench, bare"
(cd "$shared/bench/loadgen" && go build -o "$work/loadgen" .)
(cd "$root" && CGO_ENABLED=0 go build -o "$work/backlot-bench" ./bench/backlot-bench && go build -o "$work/bare" ./bench/bare)

for port in $peer_ports 18080 18090 55432; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    log "port $port is already in use (stale peers or backlot from an earlier run?); stop them first"; exit 1
  fi
done
"$shared/bench/peer.sh" start >&2

# A throwaway PostgreSQL with its default durability (fsync on, synchronous_commit on).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
pgctl() { runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p 55432 -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w "$@"; }
if [ -n "$pgbin" ]; then
  pgdir="$work/pg"; mkdir -p "$pgdir"; chown postgres "$pgdir"
  runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
  pgctl start >/dev/null
  runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p 55432 -U postgres -qc 'create database bench' >/dev/null
fi

write_config() { # $1 store url
  cat >"$work/backlot.yaml" <<EOF
server: { listen: "127.0.0.1:18080", max_body_bytes: 1048576 }
store: { url: "$1" }
authenticators:
  ext: { type: jwks, jwks_url: "http://127.0.0.1:8099/.well-known/jwks.json", issuer: "http://127.0.0.1:8099",
         audience: backlot, algorithms: [RS256, ES256], claims: { subject: sub, tenant: tenant, email: name } }
webhooks:
  - path: /webhooks/bench
    verify: { scheme: standard, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
    job: bench.noop
jobs:
  queues: { default: { concurrency: 50 } }
EOF
}

start_backlot() { # $1 store url
  write_config "$1"
  (cd "$work" && exec ./backlot-bench -config backlot.yaml 2>>"$work/backlot.log") &
  bpid=$!
  pids+=("$bpid")
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "backlot did not start:"; tail -20 "$work/backlot.log" >&2; exit 1
}
stop_backlot() { kill "$bpid"; wait "$bpid" 2>/dev/null || true; }

completed_backlot() {
  curl -s http://127.0.0.1:18080/metrics | awk '/^backlot_jobs_total\{.*kind="bench.noop".*state="completed"/ {s+=$2} END {printf "%d\n", s}'
}
completed_peer() { curl -s http://127.0.0.1:8081/stats | sed -E 's/.*"processed":([0-9]+).*/\1/'; }

field() { sed -E "s/.*$1=([0-9.]+).*/\1/"; }

# ingest + e2e: prints "rps p99 e2e_per_s"
run_ingest() { # $1 url, $2 completed-counter function
  local before start out end done_at now
  before=$($2)
  start=$(date +%s.%N)
  out=$("$work/loadgen" -mode webhook -url "$1" -n "$N" -c "$C" 2>/dev/null | tail -1)
  local ok; ok=$(echo "$out" | field ok)
  # wait for the workers to finish what was acknowledged (at most 120 s)
  done_at=""
  for _ in $(seq 1 1200); do
    now=$($2)
    if [ "$((now - before))" -ge "$ok" ]; then done_at=$(date +%s.%N); break; fi
    sleep 0.1
  done
  local e2e=0
  [ -n "$done_at" ] && e2e=$(echo "$ok / ($done_at - $start)" | bc -l)
  printf '%s %s %.0f\n' "$(echo "$out" | field rps)" "$(echo "$out" | field p99_ms)" "$e2e"
}

run_get() { # $1 url $2 token -> rps
  "$work/loadgen" -mode get -url "$1" -bearer "$2" -n "$N" -c "$C" 2>/dev/null | tail -1 | field rps
}

"$work/bare" -listen 127.0.0.1:18090 &
pids+=($!)

declare -A sum
add() { sum[$1]=$(echo "${sum[$1]:-0} + $2" | bc -l); }

for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  b=$("$work/loadgen" -mode webhook -url http://127.0.0.1:18090/webhooks/bench -n "$N" -c "$C" 2>/dev/null | tail -1 | field rps)
  log "  bare     POST (read body, 202) rps=$b"; add bare_post "$b"
  read -r rps p99 e2e < <(run_ingest http://127.0.0.1:8081/webhooks/bench completed_peer)
  log "  peer     ingest rps=$rps p99_ms=$p99 e2e=$e2e/s"; add peer_rps "$rps"; add peer_p99 "$p99"; add peer_e2e "$e2e"

  start_backlot "sqlite://$work/bench-$round.db"
  read -r rps p99 e2e < <(run_ingest http://127.0.0.1:18080/webhooks/bench completed_backlot)
  log "  sqlite   ingest rps=$rps p99_ms=$p99 e2e=$e2e/s"; add sq_rps "$rps"; add sq_p99 "$p99"; add sq_e2e "$e2e"

  TOKEN=$(curl -s 'http://127.0.0.1:8099/token?ttl=3600')
  g=$(run_get http://127.0.0.1:8081/api/ext/me "$TOKEN"); log "  peer     GET /api/ext/me rps=$g"; add peer_get "$g"
  g=$(run_get http://127.0.0.1:18080/auth/whoami "$TOKEN"); log "  backlot  GET /auth/whoami rps=$g"; add bl_get "$g"
  g=$(run_get http://127.0.0.1:18090/me "$TOKEN"); log "  bare     GET /me rps=$g"; add bare_get "$g"
  stop_backlot

  if [ -n "$pgdir" ]; then
    runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p 55432 -U postgres -qc "drop database if exists bench" -c "create database bench" >/dev/null
    start_backlot "postgres://postgres@127.0.0.1:55432/bench?sslmode=disable"
    read -r rps p99 e2e < <(run_ingest http://127.0.0.1:18080/webhooks/bench completed_backlot)
    log "  postgres ingest rps=$rps p99_ms=$p99 e2e=$e2e/s"; add pg_rps "$rps"; add pg_p99 "$p99"; add pg_e2e "$e2e"
    stop_backlot
  fi
done

avg() { echo "${sum[$1]:-0} / $ROUNDS" | bc -l; }
ratio() { local d; d=$(avg "$2"); if [ "$(echo "$d > 0" | bc)" = 1 ]; then printf '%.2f' "$(echo "$(avg "$1") / $d" | bc -l)"; else echo n/a; fi; }

printf '\n## bench/compare.sh  N=%s C=%s ROUNDS=%s  (%s, %s cores)\n\n' "$N" "$C" "$ROUNDS" "$(date -u +%Y-%m-%d)" "$(nproc)"
printf '| measurement | peer | backlot SQLite | backlot PostgreSQL | ratio SQLite/peer | ratio PostgreSQL/peer |\n|---|---|---|---|---|---|\n'
printf '| webhook ingest, acknowledged/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_rps)" "$(avg sq_rps)" "$(avg pg_rps)" "$(ratio sq_rps peer_rps)" "$(ratio pg_rps peer_rps)"
printf '| webhook ingest p99, ms | %.1f | %.1f | %.1f | | |\n' "$(avg peer_p99)" "$(avg sq_p99)" "$(avg pg_p99)"
printf '| ceiling: bare handler reading the POST, req/s | %.0f | | | | |\n' "$(avg bare_post)"
printf '| backlot SQLite / bare POST ceiling | | %s | %s | | |\n' "$(ratio sq_rps bare_post)" "$(ratio pg_rps bare_post)"
printf '| end to end, completed jobs/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_e2e)" "$(avg sq_e2e)" "$(avg pg_e2e)" "$(ratio sq_e2e peer_e2e)" "$(ratio pg_e2e peer_e2e)"
printf '\n| authenticated GET (RS256 via JWKS) | req/s | backlot ratio |\n|---|---|---|\n'
printf '| peer GET /api/ext/me (jose) | %.0f | %s (backlot / peer) |\n' "$(avg peer_get)" "$(ratio bl_get peer_get)"
printf '| backlot GET /auth/whoami | %.0f | |\n' "$(avg bl_get)"
printf '| bare net/http handler | %.0f | %s (backlot / bare) |\n' "$(avg bare_get)" "$(ratio bl_get bare_get)"
