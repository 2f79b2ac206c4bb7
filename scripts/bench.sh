#!/usr/bin/env bash
# textdrop against its peers, in one run on one machine (see docs/benchmarks.md).
#
# Systems: textdrop on SQLite, on PostgreSQL, on Redis, on a Redis Cluster of 3 masters (the
# script starts it on 7301-7306 and stops it), and the web layer's ceiling: the same app with actix-session's CookieSessionStore (state in the
# cookie, no server store: DATABASE_URL=cookie://, which only a binary built with the bench-only
# cargo feature `bench-cookie-store` accepts; this script builds one).
# Workloads (wrk -t2 -c32, 15 s a cell after a 3 s warm-up, ROUNDS rounds interleaved):
#   R  GET /action of one live 2 KB / 40-line session
#   RM GET /action rotating over 64 live sessions
#   W  POST / of a 2 KB file with the same cookie (every upload rotates the key, so after the
#      first request each one writes a new session and deletes nothing: in effect N)
#   N  POST / without a cookie (every request creates a session)
# Database ceilings: pgbench -M prepared -c 32 -j 2 -T 15 running exactly the statements one
# request runs, on a 100,000-row sessions table.
# Prints a markdown report. Needs wrk, psql, pgbench, redis-cli, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/3}
BIN=target/release/textdrop
WORK=$(mktemp -d)
# On exit: the servers and the cluster stop, and the benchmark's Redis database and PostgreSQL
# database are emptied (Redis's memory counts against every other user's cap).
trap 'kill $(jobs -p) 2>/dev/null || true; bash scripts/redis-cluster.sh stop "$WORK/cluster"
      redis-cli -u "$REDIS" FLUSHDB >/dev/null 2>&1 || true
      psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_bench WITH (FORCE)" >/dev/null 2>&1 || true
      rm -rf "$WORK"' EXIT
for tool in wrk psql pgbench redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release --quiet --features bench-cookie-store

# ---------------------------------------------------------------- fixtures
printf 'line %02d of the benchmark file: the quick brown fox jumps over\n' $(seq 1 40) > "$WORK/file.txt"
{
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="textfile"; filename="bench.txt"\r\n'
  printf 'Content-Type: text/plain\r\n\r\n'
  cat "$WORK/file.txt"
  printf -- '\r\n--XyZ--\r\n'
} > "$WORK/body.bin"

cat > "$WORK/common.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0 end
function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do w = w + t:get("wrong") end
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f wrong=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, w, e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
cat > "$WORK/R.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
wrk.headers["Cookie"] = "id=" .. os.getenv("TD_COOKIE")
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "line 40 of the benchmark file", 1, true) then wrong = wrong + 1 end
end
EOF
cat > "$WORK/RM.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
local cookies = {}
for c in io.lines(os.getenv("TD_COOKIES")) do table.insert(cookies, c) end
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", "/action", { ["Cookie"] = "id=" .. cookies[(i % #cookies) + 1] })
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "line 40 of the benchmark file", 1, true) then wrong = wrong + 1 end
end
EOF
cat > "$WORK/W.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
local f = io.open(os.getenv("TD_WORK") .. "/body.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=XyZ"
if os.getenv("TD_COOKIE") ~= "" then wrk.headers["Cookie"] = "id=" .. os.getenv("TD_COOKIE") end
function response(status, headers, body)
  if status ~= 303 then wrong = wrong + 1 end
end
EOF

# ---------------------------------------------------------------- servers
declare -A URL PORT PID
URL[sqlite]="sqlite://$WORK/bench.db"
URL[postgres]="$PG/textdrop_bench"
URL[redis]="$REDIS"
URL[cookie]="cookie://"
# A Redis Cluster of the script's own (3 masters, 3 replicas on 7301-7306), one instance on it.
bash scripts/redis-cluster.sh start "$WORK/cluster" 7300 >/dev/null
URL[cluster]=$(bash scripts/redis-cluster.sh url 7300)
PORT[sqlite]=18101; PORT[postgres]=18102; PORT[redis]=18103; PORT[cookie]=18104; PORT[cluster]=18105
SYSTEMS=(sqlite postgres redis cluster cookie)

reset_stores() {
  rm -f "$WORK"/bench.db*
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_bench WITH (FORCE)" -c "CREATE DATABASE textdrop_bench" >/dev/null 2>&1
  redis-cli -u "$REDIS" FLUSHDB >/dev/null
  for p in 7301 7302 7303 7304 7305 7306; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done
}
start() { # $1 system
  local sys=$1
  # The public-internet limits are off: one load generator on one address is not an abuser.
  DATABASE_URL=${URL[$sys]} PORT=${PORT[$sys]} SECRET_KEY=bench-secret-key-material-0123456789abcdef \
    CLEANUP_INTERVAL_SECS=0 UPLOADS_PER_MINUTE=0 MAX_UPLOADS_IN_FLIGHT=256 MAX_STORED_BYTES=0 \
    $BIN serve > "$WORK/$sys.log" 2>&1 &
  PID[$sys]=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:${PORT[$sys]}/readyz" >/dev/null && return; sleep 0.1; done
  echo "$sys did not start" >&2; cat "$WORK/$sys.log" >&2; exit 1
}
stop() { kill -TERM "${PID[$1]}" 2>/dev/null || true; wait "${PID[$1]}" 2>/dev/null || true; }
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/${PID[$1]}/status"; }
new_session() { # $1 system -> cookie value of a fresh session holding the file
  local jar="$WORK/jar.$RANDOM"
  curl -s -c "$jar" -o /dev/null -F "textfile=@$WORK/file.txt" "http://127.0.0.1:${PORT[$1]}/"
  awk '$6 == "id" { print $7 }' "$jar"
  rm -f "$jar"
}
pg_rows() { psql -qAt "${URL[postgres]}" -c "SELECT count(*) FROM sessions"; }
sqlite_rows() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from sessions').fetchone()[0])" "$WORK/bench.db"; }

run_cell() { # $1 system, $2 workload -> appends a result line
  local sys=$1 load=$2 script cookie="" cookies=""
  case $load in
    R) script=R; cookie=${SESSION[$sys]} ;;
    RM) script=RM; cookies=${SESSIONS[$sys]} ;;
    W) script=W; cookie=${SESSION[$sys]} ;;
    N) script=W; cookie="" ;;
  esac
  local url="http://127.0.0.1:${PORT[$sys]}/"
  [[ $load == R || $load == RM ]] && url="${url}action"
  local before="-" after="-"
  [[ $load == N && $sys == postgres ]] && before=$(pg_rows)
  [[ $load == N && $sys == sqlite ]] && before=$(sqlite_rows)
  TD_WORK=$WORK TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$WARMUP" -s "$WORK/$script.lua" "$url" >/dev/null
  TD_WORK=$WORK TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$DURATION" -s "$WORK/$script.lua" "$url" > "$WORK/wrk.out"
  local non23
  non23=$(awk '/Non-2xx or 3xx/ { print $NF }' "$WORK/wrk.out"); non23=${non23:-0}
  [[ $load == N && $sys == postgres ]] && after=$(pg_rows)
  [[ $load == N && $sys == sqlite ]] && after=$(sqlite_rows)
  echo "$ROUND $load $sys $(grep RESULT "$WORK/wrk.out" | cut -d' ' -f2-) non23=$non23 rss=$(peak_rss_mib "$sys") rows=$before/$after" >> "$WORK/results"
}

# ---------------------------------------------------------------- pgbench ceilings
seed_pgbench() {
  local db="$PG/textdrop_pgbench"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_pgbench WITH (FORCE)" -c "CREATE DATABASE textdrop_pgbench" >/dev/null 2>&1
  DATABASE_URL=$db RUST_LOG=warn $BIN migrate >/dev/null
  STATE=$(python3 -c "import json; print(json.dumps({'file_contents': json.dumps(open('$WORK/file.txt').read().splitlines()), 'file_name': '\"bench.txt\"', 'file_size': '2520'}).replace(\"'\", \"''\"))")
  psql -q "$db" -c "INSERT INTO sessions SELECT encode(sha256(g::text::bytea), 'hex'), '$STATE',
    (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc' FROM generate_series(1, 100000) g" -c "VACUUM ANALYZE sessions" >/dev/null
  # The statements one request runs (as Diesel sends them, with bound parameters):
  cat > "$WORK/pg_R.sql" <<EOF
\set n random(1, 100000)
SELECT state, expires_at FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex') AND expires_at > (now() AT TIME ZONE 'utc');
EOF
  # W rewrites one session again and again (wrk sends the same cookie), so the ceiling does too.
  cat > "$WORK/pg_W.sql" <<EOF
\set n 1
SELECT state, expires_at FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex') AND expires_at > (now() AT TIME ZONE 'utc');
UPDATE sessions SET state = '$STATE', expires_at = (now() AT TIME ZONE 'utc') + interval '1 day' WHERE id = encode(sha256(:n::text::bytea), 'hex') AND expires_at > (now() AT TIME ZONE 'utc');
EOF
  cat > "$WORK/pg_N.sql" <<EOF
INSERT INTO sessions (id, state, expires_at, created_at) VALUES (md5(random()::text || clock_timestamp()::text) || md5(random()::text), '$STATE', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc');
EOF
}
run_pgbench() { # $1 workload
  local tps
  tps=$(pgbench -n -M prepared -c 32 -j 2 -T "${DURATION%s}" -f "$WORK/pg_$1.sql" "$PG/textdrop_pgbench" 2>/dev/null \
    | awk '/^tps/ { print $3; exit }')
  echo "$ROUND $1 pgbench rps=$tps" >> "$WORK/results"
}

# ---------------------------------------------------------------- the run
declare -A SESSION SESSIONS
: > "$WORK/results"
seed_pgbench
XMIN_NOTE=""
for ROUND in $(seq 1 "$ROUNDS"); do
  reset_stores
  for sys in "${SYSTEMS[@]}"; do
    start "$sys"
    SESSION[$sys]=$(new_session "$sys")
    # 64 cookies in a file (cookie-store cookies hold the whole state: too long for env)
    : > "$WORK/cookies.$sys"
    for _ in $(seq 1 64); do new_session "$sys" >> "$WORK/cookies.$sys"; done
    SESSIONS[$sys]="$WORK/cookies.$sys"
  done
  if [[ $ROUND == 1 ]]; then
    XMIN_BEFORE=$(psql -qAt "${URL[postgres]}" -c "SELECT string_agg(xmin::text || ':' || expires_at::text, ',' ORDER BY id) FROM sessions")
  fi
  for load in R RM; do
    for sys in "${SYSTEMS[@]}"; do run_cell "$sys" "$load"; done
    [[ $load == R ]] && run_pgbench R
  done
  if [[ $ROUND == 1 ]]; then
    XMIN_AFTER=$(psql -qAt "${URL[postgres]}" -c "SELECT string_agg(xmin::text || ':' || expires_at::text, ',' ORDER BY id) FROM sessions")
    if [[ $XMIN_BEFORE == "$XMIN_AFTER" ]]; then
      XMIN_NOTE="unchanged: no row was written by the read workloads (R and RM, round 1)"
    else
      XMIN_NOTE="CHANGED: some read wrote a row"
    fi
  fi
  for load in W N; do
    for sys in "${SYSTEMS[@]}"; do run_cell "$sys" "$load"; done
    run_pgbench "$load"
  done
  for sys in "${SYSTEMS[@]}"; do stop "$sys"; done
done

# ---------------------------------------------------------------- report
python3 - "$WORK/results" "$ROUNDS" "$XMIN_NOTE" <<'EOF'
import statistics, sys, collections, subprocess, datetime, os
path, rounds, xmin_note = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cells = collections.defaultdict(list)
for line in open(path):
    parts = line.split()
    rnd, load, system = parts[0], parts[1], parts[2]
    fields = dict(p.split("=", 1) for p in parts[3:])
    cells[(load, system)].append(fields)
def med(load, system, key):
    vals = [float(f[key]) for f in cells[(load, system)] if key in f and f[key] not in ("", "-")]
    return statistics.median(vals) if vals else float("nan")
systems = ["sqlite", "postgres", "redis", "cluster", "cookie"]
names = {"sqlite": "textdrop / SQLite", "postgres": "textdrop / PostgreSQL", "redis": "textdrop / Redis",
         "cluster": "textdrop / Redis Cluster (3 masters)",
         "cookie": "cookie store (web ceiling)", "pgbench": "pgbench, same statements"}
print(f"## Request throughput against peers\n")
print(f"Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; wrk -t2 -c32, "
      f"{rounds} rounds interleaved, medians of rounds. Command: `bash scripts/bench.sh`.\n")
print("| workload | system | requests/s | p50 ms | p99 ms | non-2xx/3xx | wrong bodies | errors | peak RSS MiB | rows before/after |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for load in ["R", "RM", "W", "N"]:
    for system in systems + ["pgbench"]:
        runs = cells.get((load, system))
        if not runs:
            continue
        if system == "pgbench":
            print(f"| {load} | {names[system]} | {med(load, system, 'rps'):.0f} | | | | | | | |")
            continue
        wrong = sum(int(f.get("wrong", 0)) for f in runs)
        non23 = sum(int(f.get("non23", 0)) for f in runs)
        errors = sum(int(f.get("errors", 0)) for f in runs)
        rows = " ".join(f.get("rows", "-") for f in runs) if system in ("sqlite", "postgres") and load == "N" else ""
        print(f"| {load} | {names[system]} | {med(load, system, 'rps'):.0f} | {med(load, system, 'p50'):.2f} | "
              f"{med(load, system, 'p99'):.2f} | {non23} | {wrong} | {errors} | {max(float(f['rss']) for f in runs):.1f} | {rows} |")
print("\n### Ratios (medians, same run)\n")
print("| ratio | value | target |")
print("| --- | --- | --- |")
for load in ["R", "RM"]:
    print(f"| {load}: SQLite / Redis | {med(load,'sqlite','rps')/med(load,'redis','rps'):.2f} | ≥ 1.0 |")
    print(f"| {load}: PostgreSQL / Redis | {med(load,'postgres','rps')/med(load,'redis','rps'):.2f} | ≥ 0.6 |")
for load in ["W", "N"]:
    print(f"| {load}: PostgreSQL / pgbench ceiling | {med(load,'postgres','rps')/med(load,'pgbench','rps'):.2f} | ≥ 0.8 |")
print(f"| R: PostgreSQL / pgbench ceiling (reads) | {med('R','postgres','rps')/med('R','pgbench','rps'):.2f} | (context) |")
for load in ["R", "RM", "W", "N"]:
    print(f"| {load}: Redis / cookie store (web ceiling) | {med(load,'redis','rps')/med(load,'cookie','rps'):.2f} | (context) |")
for load in ["R", "N"]:
    print(f"| {load}: Redis Cluster / single Redis | {med(load,'cluster','rps')/med(load,'redis','rps'):.2f} | (context) |")
print(f"\nPostgreSQL rows' xmin and expiry across the read workloads: {xmin_note}.")
EOF
