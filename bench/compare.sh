#!/usr/bin/env bash
# Side-by-side benchmark of backlot against the Express + BullMQ + jose peer
# in ../shared/bench: same machine, same load generator, same run, alternating.
# Prints each measurement and the ratios (the only figures worth quoting on a
# shared, noisy machine).
#
#   bench/compare.sh                 # defaults: N=40000 requests, C=64 connections, ROUNDS=2
#   N=20000 ROUNDS=1 bench/compare.sh
#   bench/compare.sh --per-core      # the per-core form (below)
#   BASELINE=<git rev> bench/compare.sh --per-core   # also backlot at that revision, same rounds (SQLite, PostgreSQL, GET)
#
# What it measures:
#   ingest   signed Standard Webhooks deliveries acknowledged per second and p99, at C connections
#            (backlot: SQLite with synchronous=FULL, then PostgreSQL; the peer: BullMQ on Redis without persistence)
#   e2e      jobs completed per second from the first delivery to the last completion (no-op worker)
#   auth GET GET with an RS256 JWT from the jose issuer: backlot /auth/whoami vs the peer's /api/ext/me,
#            and a bare net/http handler as the ceiling
#   CPU      each server's CPU time per request (utime+stime from /proc/<pid>/stat, before and after the load,
#            ÷ requests): the peer counts its node process and Redis, backlot on PostgreSQL counts PostgreSQL too
#
# The per-core form (--per-core) is the fair one on a 2-core machine: every
# server runs on core 0 alone (backlot and the bare handler with GOMAXPROCS=1,
# the peer's node process and its Redis pinned there with taskset -a, the
# PostgreSQL behind backlot too) and the load generator on core 1, so the load
# generator no longer competes with the server it measures.
#
# Everything it starts is stopped by pid when it ends (never by port).
set -euo pipefail
percore=0
for a in "$@"; do
  case "$a" in
    --per-core) percore=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument $a (try --help)" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$root/../shared}
N=${N:-40000}
C=${C:-64}
ROUNDS=${ROUNDS:-2}
work=$(mktemp -d /tmp/backlot-bench.XXXXXX)
chmod 755 "$work"
export PEER_RUN_DIR="$work/peers" # peer.sh writes its pid files here, not in a shared directory
pids=()      # every process this script started (and the peer's, once known)
pgdir=""
clk_tck=$(getconf CLK_TCK)

# Pinning: SRV runs a server on core 0, LG the load generator on core 1.
if [ "$percore" = 1 ]; then
  SRV=(env GOMAXPROCS=1 taskset -c 0)
  LG=(env GOMAXPROCS=1 taskset -c 1)
else
  SRV=()
  LG=()
fi

log() { printf '%s\n' "$*" >&2; }

# session_pids SID...: every process in the sessions (setsid makes each peer
# process lead its own session, so this finds whatever node forked too).
session_pids() { for s in "$@"; do pgrep -s "$s" 2>/dev/null || true; done; }

peer_pids=()   # the peer's node processes and its Redis: measured and pinned
issuer_pids=()
stop_pids() { # TERM, wait up to 5 s, then KILL
  local p alive
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}
cleanup() {
  set +e
  # newly forked children of the peer's sessions, if any
  local extra=()
  [ "${#peer_sids[@]}" -gt 0 ] && extra=($(session_pids "${peer_sids[@]}"))
  [ "${#pids[@]}${#extra[@]}" != "00" ] && stop_pids "${pids[@]}" "${extra[@]}"
  if [ -n "$pgdir" ]; then pgctl stop -m fast >/dev/null 2>&1; fi
  rm -rf "$work"
}
peer_sids=()
trap cleanup EXIT

log "building loadgen, backlot-bench, bare"
(cd "$shared/bench/loadgen" && go build -o "$work/loadgen" .)
(cd "$root" && CGO_ENABLED=0 go build -o "$work/backlot-bench" ./bench/backlot-bench && go build -o "$work/bare" ./bench/bare)
# BASELINE=<git revision>: also measure backlot as of that revision in the
# same rounds (SQLite and PostgreSQL ingest, whoami), for before/after figures that
# share the run's conditions. Built from `git archive`, with today's
# bench/backlot-bench/main.go.
if [ -n "${BASELINE:-}" ]; then
  log "building backlot-bench at $BASELINE"
  mkdir -p "$work/baseline-src"
  (cd "$root" && git archive "$BASELINE") | tar -x -C "$work/baseline-src"
  cp "$root/bench/backlot-bench/main.go" "$work/baseline-src/bench/backlot-bench/main.go"
  (cd "$work/baseline-src" && CGO_ENABLED=0 go build -o "$work/backlot-bench-baseline" ./bench/backlot-bench)
fi

for port in 8081 8099 6390 18080 18090 55432; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    log "port $port is already in use (stale peers or backlot from an earlier run?); stop them first"; exit 1
  fi
done

"$shared/bench/peer.sh" start >&2
# The pid files hold the node processes (sh execs node) and Redis.
for f in peer issuer redis; do
  [ -f "$PEER_RUN_DIR/$f.pid" ] || { log "peer.sh wrote no $f.pid"; exit 1; }
done
redis_pid=$(cat "$PEER_RUN_DIR/redis.pid")
peer_sids=("$(cat "$PEER_RUN_DIR/peer.pid")" "$(cat "$PEER_RUN_DIR/issuer.pid")")
peer_pids=("$redis_pid" $(session_pids "$(cat "$PEER_RUN_DIR/peer.pid")"))
issuer_pids=($(session_pids "$(cat "$PEER_RUN_DIR/issuer.pid")"))
pids+=("${peer_pids[@]}" "${issuer_pids[@]}")
if [ "$percore" = 1 ]; then
  for p in "${peer_pids[@]}"; do taskset -a -p -c 0 "$p" >/dev/null; done
  for p in "${issuer_pids[@]}"; do taskset -a -p -c 1 "$p" >/dev/null; done # not measured; keep it off core 0
fi
log "peer pids (node + redis): ${peer_pids[*]}; issuer: ${issuer_pids[*]}"

# A throwaway PostgreSQL with its default durability (fsync on, synchronous_commit on).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
pgctl() { runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p 55432 -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w "$@"; }
pg_pids() { # the postmaster and its children
  local pm; pm=$(head -1 "$pgdir/data/postmaster.pid" 2>/dev/null) || return 0
  echo "$pm"; pgrep -P "$pm" 2>/dev/null || true
}
if [ -n "$pgbin" ]; then
  pgdir="$work/pg"; mkdir -p "$pgdir"; chown postgres "$pgdir"
  runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
  pgctl start >/dev/null
  if [ "$percore" = 1 ]; then # backends forked later inherit the postmaster's affinity
    for p in $(pg_pids); do taskset -a -p -c 0 "$p" >/dev/null; done
  fi
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

bpid=""
start_backlot() { # $1 store url, $2 binary (default backlot-bench)
  write_config "$1"
  local bin=${2:-backlot-bench}
  (cd "$work" && exec "${SRV[@]}" "./$bin" -config backlot.yaml 2>>"$work/backlot.log") &
  bpid=$!
  pids+=("$bpid")
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "backlot did not start:"; tail -20 "$work/backlot.log" >&2; exit 1
}
stop_backlot() { stop_pids "$bpid"; wait "$bpid" 2>/dev/null || true; }

completed_backlot() {
  curl -s http://127.0.0.1:18080/metrics | awk '/^backlot_jobs_total\{.*kind="bench.noop".*state="completed"/ {s+=$2} END {printf "%d\n", s}'
}
completed_peer() { curl -s http://127.0.0.1:8081/stats | sed -E 's/.*"processed":([0-9]+).*/\1/'; }

field() { sed -E "s/.*$1=([0-9.]+).*/\1/"; }

# ticks PID...: "pid ticks" lines, utime+stime of each live process. The
# command name in /proc/<pid>/stat may hold spaces, so fields count from ")".
ticks() { for p in "$@"; do [ -r "/proc/$p/stat" ] && sed -E 's/^.*\) //' "/proc/$p/stat" | awk -v p="$p" '{print p, $12+$13}'; done; return 0; }
# cpu_us BEFORE AFTER REQUESTS: CPU µs per request over the processes in
# AFTER (a process absent from BEFORE started meanwhile, from zero).
cpu_us() {
  awk -v n="$3" -v hz="$clk_tck" 'NR==FNR {b[$1]=$2; next} {d += $2 - b[$1]} END {if (n > 0) printf "%.0f\n", d / hz * 1e6 / n; else print 0}' <(echo "$1") <(echo "$2")
}

# core0: "busy total" jiffies of core 0 (the servers' core in the per-core form).
core0() { awk '/^cpu0 / {b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# share T0 T1 C0 C1: "core 0 busy N%, the server M%" over a window: how much
# of its core the server had (other tenants of a shared machine take the rest).
share() {
  local s0 s1; s0=$(echo "$1" | awk '{s+=$2} END {print s+0}'); s1=$(echo "$2" | awk '{s+=$2} END {print s+0}')
  echo "$3 $4 $s0 $s1" | awk '{split($0,a," "); bt=a[3]-a[1]; tt=a[4]-a[2]; if (tt<=0) tt=1; printf "core0 busy %.0f%%, server %.0f%%", 100*bt/tt, 100*(a[6]-a[5])/tt}'
}

# ingest + e2e: prints "rps p99 e2e_per_s cpu_us_per_job"
run_ingest() { # $1 url, $2 completed-counter function, $3 function printing the measured pids
  local before start out done_at now t0 t1
  before=$($2)
  t0=$(ticks $($3))
  local c0; c0=$(core0)
  start=$(date +%s.%N)
  out=$("${LG[@]}" "$work/loadgen" -mode webhook -url "$1" -n "$N" -c "$C" 2>/dev/null | tail -1)
  [ "$percore" = 1 ] && log "    during the load: $(share "$t0" "$(ticks $($3))" "$c0" "$(core0)")"
  local ok; ok=$(echo "$out" | field ok)
  # wait for the workers to finish what was acknowledged (at most 120 s)
  done_at=""
  for _ in $(seq 1 1200); do
    now=$($2)
    if [ "$((now - before))" -ge "$ok" ]; then done_at=$(date +%s.%N); break; fi
    sleep 0.1
  done
  t1=$(ticks $($3))
  local e2e=0
  [ -n "$done_at" ] && e2e=$(echo "$ok / ($done_at - $start)" | bc -l)
  printf '%s %s %.0f %s\n' "$(echo "$out" | field rps)" "$(echo "$out" | field p99_ms)" "$e2e" "$(cpu_us "$t0" "$t1" "$ok")"
}

# GET: prints "rps p99 cpu_us_per_request"
run_get() { # $1 url $2 token $3 function printing the measured pids
  local t0 t1 out
  t0=$(ticks $($3))
  local c0; c0=$(core0)
  out=$("${LG[@]}" "$work/loadgen" -mode get -url "$1" -bearer "$2" -n "$N" -c "$C" 2>/dev/null | tail -1)
  t1=$(ticks $($3))
  [ "$percore" = 1 ] && log "    during the load: $(share "$t0" "$t1" "$c0" "$(core0)")"
  printf '%s %s %s\n' "$(echo "$out" | field rps)" "$(echo "$out" | field p99_ms)" "$(cpu_us "$t0" "$t1" "$(echo "$out" | field ok)")"
}

the_peer() { echo "${peer_pids[@]}"; }
the_backlot() { echo "$bpid"; }
the_backlot_pg() { echo "$bpid"; pg_pids; }
the_bare() { echo "$barepid"; }

"${SRV[@]}" "$work/bare" -listen 127.0.0.1:18090 &
barepid=$!
pids+=("$barepid")

declare -A sum
add() { sum[$1]=$(echo "${sum[$1]:-0} + $2" | bc -l); }

# measure_backlot BINARY KEY_PREFIX LABEL: one build's SQLite ingest, its
# GET /auth/whoami, then its PostgreSQL ingest, added to the sums under
# KEY_PREFIX (empty for this checkout, "b" for the baseline).
measure_backlot() {
  local bin=$1 k=$2 label=$3 rps p99 e2e cpu g
  start_backlot "sqlite://$work/bench-$bin-$round.db" "$bin"
  read -r rps p99 e2e cpu < <(run_ingest http://127.0.0.1:18080/webhooks/bench completed_backlot the_backlot)
  log "  ${label}sqlite   ingest rps=$rps p99_ms=$p99 e2e=$e2e/s cpu_us=$cpu"; add "${k}sq_rps" "$rps"; add "${k}sq_p99" "$p99"; add "${k}sq_e2e" "$e2e"; add "${k}sq_cpu" "$cpu"
  read -r g p99 cpu < <(run_get http://127.0.0.1:18080/auth/whoami "$TOKEN" the_backlot)
  log "  ${label}backlot  GET /auth/whoami rps=$g p99_ms=$p99 cpu_us=$cpu"; add "${k}bl_get" "$g"; add "${k}bl_get_p99" "$p99"; add "${k}bl_get_cpu" "$cpu"
  stop_backlot
  [ -n "$pgdir" ] || return 0
  runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p 55432 -U postgres -qc "drop database if exists bench" -c "create database bench" >/dev/null
  start_backlot "postgres://postgres@127.0.0.1:55432/bench?sslmode=disable" "$bin"
  read -r rps p99 e2e cpu < <(run_ingest http://127.0.0.1:18080/webhooks/bench completed_backlot the_backlot_pg)
  log "  ${label}postgres ingest rps=$rps p99_ms=$p99 e2e=$e2e/s cpu_us=$cpu (backlot + PostgreSQL)"; add "${k}pg_rps" "$rps"; add "${k}pg_p99" "$p99"; add "${k}pg_e2e" "$e2e"; add "${k}pg_cpu" "$cpu"
  stop_backlot
}

for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  t0=$(ticks "$barepid")
  out=$("${LG[@]}" "$work/loadgen" -mode webhook -url http://127.0.0.1:18090/webhooks/bench -n "$N" -c "$C" 2>/dev/null | tail -1)
  b=$(echo "$out" | field rps); bc_=$(cpu_us "$t0" "$(ticks "$barepid")" "$(echo "$out" | field ok)")
  log "  bare     POST (read body, 202) rps=$b cpu_us=$bc_"; add bare_post "$b"; add bare_post_cpu "$bc_"
  read -r rps p99 e2e cpu < <(run_ingest http://127.0.0.1:8081/webhooks/bench completed_peer the_peer)
  log "  peer     ingest rps=$rps p99_ms=$p99 e2e=$e2e/s cpu_us=$cpu"; add peer_rps "$rps"; add peer_p99 "$p99"; add peer_e2e "$e2e"; add peer_cpu "$cpu"

  TOKEN=$(curl -s 'http://127.0.0.1:8099/token?ttl=3600')
  read -r g p99 cpu < <(run_get http://127.0.0.1:8081/api/ext/me "$TOKEN" the_peer)
  log "  peer     GET /api/ext/me rps=$g p99_ms=$p99 cpu_us=$cpu"; add peer_get "$g"; add peer_get_p99 "$p99"; add peer_get_cpu "$cpu"
  read -r g p99 cpu < <(run_get http://127.0.0.1:18090/me "$TOKEN" the_bare)
  log "  bare     GET /me rps=$g p99_ms=$p99 cpu_us=$cpu"; add bare_get "$g"; add bare_get_p99 "$p99"; add bare_get_cpu "$cpu"

  measure_backlot backlot-bench "" ""
  if [ -n "${BASELINE:-}" ]; then measure_backlot backlot-bench-baseline b "baseline "; fi
done

avg() { echo "${sum[$1]:-0} / $ROUNDS" | bc -l; }
ratio() { local d; d=$(avg "$2"); if [ "$(echo "$d > 0" | bc)" = 1 ]; then printf '%.2f' "$(echo "$(avg "$1") / $d" | bc -l)"; else echo n/a; fi; }

form="two cores shared by the servers and the load generator"
[ "$percore" = 1 ] && form="per core: each server on core 0 (GOMAXPROCS=1; the peer's node and Redis, backlot's PostgreSQL pinned with it), the load generator on core 1"
printf '\n## bench/compare.sh%s  N=%s C=%s ROUNDS=%s  (%s, %s cores, load average at the end %s)\n\n%s\n\n' \
  "$([ "$percore" = 1 ] && echo ' --per-core')" "$N" "$C" "$ROUNDS" "$(date -u +%Y-%m-%d)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$form"
printf '| measurement | peer | backlot SQLite | backlot PostgreSQL | ratio SQLite/peer | ratio PostgreSQL/peer |\n|---|---|---|---|---|---|\n'
printf '| webhook ingest, acknowledged/s (jobs completed meanwhile) | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_rps)" "$(avg sq_rps)" "$(avg pg_rps)" "$(ratio sq_rps peer_rps)" "$(ratio pg_rps peer_rps)"
printf '| webhook ingest p99, ms | %.1f | %.1f | %.1f | | |\n' "$(avg peer_p99)" "$(avg sq_p99)" "$(avg pg_p99)"
printf '| end to end, completed jobs/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_e2e)" "$(avg sq_e2e)" "$(avg pg_e2e)" "$(ratio sq_e2e peer_e2e)" "$(ratio pg_e2e peer_e2e)"
printf '| CPU per delivery (ingest + completion), µs; ratio = peer ÷ backlot | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_cpu)" "$(avg sq_cpu)" "$(avg pg_cpu)" "$(ratio peer_cpu sq_cpu)" "$(ratio peer_cpu pg_cpu)"
printf '| ceiling: bare handler reading the POST, req/s (CPU µs/req) | %.0f (%.0f) | | | | |\n' "$(avg bare_post)" "$(avg bare_post_cpu)"
printf '| backlot / bare POST ceiling | | %s | %s | | |\n' "$(ratio sq_rps bare_post)" "$(ratio pg_rps bare_post)"
printf '\n| authenticated GET (RS256 via JWKS) | req/s | p99 ms | CPU µs/req | backlot ratio (req/s) |\n|---|---|---|---|---|\n'
printf '| peer GET /api/ext/me (jose) | %.0f | %.1f | %.0f | %s (backlot / peer) |\n' "$(avg peer_get)" "$(avg peer_get_p99)" "$(avg peer_get_cpu)" "$(ratio bl_get peer_get)"
printf '| backlot GET /auth/whoami | %.0f | %.1f | %.0f | |\n' "$(avg bl_get)" "$(avg bl_get_p99)" "$(avg bl_get_cpu)"
printf '| bare net/http handler | %.0f | %.1f | %.0f | %s (backlot / bare) |\n' "$(avg bare_get)" "$(avg bare_get_p99)" "$(avg bare_get_cpu)" "$(ratio bl_get bare_get)"
printf '| CPU per request: peer ÷ backlot, bare ÷ backlot | | | %s, %s | |\n' "$(ratio peer_get_cpu bl_get_cpu)" "$(ratio bare_get_cpu bl_get_cpu)"
if [ -n "${BASELINE:-}" ]; then
  printf '\n| baseline %s, same rounds | peer | baseline | now | baseline/peer | now/peer |\n|---|---|---|---|---|---|\n' "$BASELINE"
  printf '| SQLite ingest, acknowledged/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_rps)" "$(avg bsq_rps)" "$(avg sq_rps)" "$(ratio bsq_rps peer_rps)" "$(ratio sq_rps peer_rps)"
  printf '| SQLite ingest p99, ms | %.1f | %.1f | %.1f | | |\n' "$(avg peer_p99)" "$(avg bsq_p99)" "$(avg sq_p99)"
  printf '| SQLite end to end, jobs/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_e2e)" "$(avg bsq_e2e)" "$(avg sq_e2e)" "$(ratio bsq_e2e peer_e2e)" "$(ratio sq_e2e peer_e2e)"
  printf '| CPU µs per delivery (ratio peer ÷ backlot) | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_cpu)" "$(avg bsq_cpu)" "$(avg sq_cpu)" "$(ratio peer_cpu bsq_cpu)" "$(ratio peer_cpu sq_cpu)"
  if [ -n "$pgdir" ]; then
    printf '| PostgreSQL ingest, acknowledged/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_rps)" "$(avg bpg_rps)" "$(avg pg_rps)" "$(ratio bpg_rps peer_rps)" "$(ratio pg_rps peer_rps)"
    printf '| PostgreSQL ingest p99, ms | %.1f | %.1f | %.1f | | |\n' "$(avg peer_p99)" "$(avg bpg_p99)" "$(avg pg_p99)"
    printf '| PostgreSQL CPU µs per delivery, backlot + PostgreSQL (ratio peer ÷ backlot) | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_cpu)" "$(avg bpg_cpu)" "$(avg pg_cpu)" "$(ratio peer_cpu bpg_cpu)" "$(ratio peer_cpu pg_cpu)"
  fi
  printf '| GET whoami vs /api/ext/me, req/s | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_get)" "$(avg bbl_get)" "$(avg bl_get)" "$(ratio bbl_get peer_get)" "$(ratio bl_get peer_get)"
  printf '| GET CPU µs per request (ratio peer ÷ backlot) | %.0f | %.0f | %.0f | %s | %s |\n' "$(avg peer_get_cpu)" "$(avg bbl_get_cpu)" "$(avg bl_get_cpu)" "$(ratio peer_get_cpu bbl_get_cpu)" "$(ratio peer_get_cpu bl_get_cpu)"
  printf '| GET vs bare handler, req/s | bare %.0f | %s | %s | | |\n' "$(avg bare_get)" "$(ratio bbl_get bare_get)" "$(ratio bl_get bare_get)"
fi
