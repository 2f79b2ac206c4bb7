#!/usr/bin/env bash
# textdrop against its peers and its ceilings, in one run on one machine (docs/benchmarks.md).
#
# Systems (each one process serving the same pages; see bench/peers/README.md):
#   textdrop on SQLite, PostgreSQL, MySQL/MariaDB, Redis, and a Redis Cluster of 3 masters (the
#     script starts it on 7301-7306 and stops it);
#   cookie: textdrop with actix-session's CookieSessionStore (the whole state, file included, in
#     the cookie; DATABASE_URL=cookie://, accepted only by a binary built with the bench-only
#     feature `bench-cookie-store`): the web layer's ceiling without a server store;
#   tower-pg: axum + tower-sessions + tower-sessions-sqlx-store on PostgreSQL (bench/peers);
#   actix-redis: actix-web + actix-session's RedisSessionStore (bench/peers).
# Workloads (wrk -t2 -c32, DURATION a cell after a WARMUP, ROUNDS rounds interleaved):
#   R   GET /action of one live 2.5 KB / 40-line session
#   RM  GET /action rotating over 64 live sessions
#   WM  POST / of a file whose content changes on every request, over 64 sessions: each wrk
#       thread keeps 32 cookies, sends a free one and puts back the cookie the answer sets
#       (textdrop rotates the key on every upload; the peers keep it)
#   N   POST / without a cookie (every request creates a session)
# Ceilings, the statements one textdrop request runs without the web server, 32 clients:
#   pgbench -M prepared (PostgreSQL), mysqlslap (MariaDB), bench/ceilings/sqlite-loop (SQLite,
#   one connection per core: SQLite has one writer, more threads only wait on its lock).
# BENCH_PG_PARAMS is appended to textdrop's PostgreSQL URL (e.g. ?sslmode=disable: libpq negotiates
# TLS on loopback when the server offers it, the sqlx peer is built without TLS).
# Subsets for quick comparisons: BENCH_SYSTEMS, BENCH_LOADS, BENCH_CEILINGS (space-separated
# names as above, ceilings pgbench mysqlslap sqlite_loop), BENCH_BIN (another textdrop binary).
# Prints a markdown report. Needs wrk, psql, pgbench, mariadb, mysqlslap, redis-cli, curl, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/3}
PEER_REDIS=${BENCH_PEER_REDIS:-redis://127.0.0.1:6379/4}
BIN=${BENCH_BIN:-target/release/textdrop}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  bash scripts/redis-cluster.sh stop "$WORK/cluster"
  # Redis's memory counts against every other user's cap: leave nothing behind.
  redis-cli -u "$REDIS" FLUSHDB >/dev/null 2>&1 || true
  redis-cli -u "$PEER_REDIS" FLUSHDB >/dev/null 2>&1 || true
  for db in textdrop_bench textdrop_bench_tower textdrop_pgbench; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_bench; DROP DATABASE IF EXISTS textdrop_slap" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for tool in wrk psql pgbench mariadb mysqlslap redis-cli curl cargo; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release --quiet --locked --features bench-cookie-store
for project in bench/peers/tower-pg bench/peers/actix-redis bench/ceilings/sqlite-loop; do
  (cd "$project" && cargo build --release --quiet --locked)
done
TOWER=bench/peers/tower-pg/target/release/peer-tower-pg
ACTIX_REDIS=bench/peers/actix-redis/target/release/peer-actix-redis
SQLITE_LOOP=bench/ceilings/sqlite-loop/target/release/sqlite-loop

# ---------------------------------------------------------------- fixtures
printf 'line %02d of the benchmark file: the quick brown fox jumps over\n' $(seq 1 40) > "$WORK/file.txt"
{
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="textfile"; filename="bench.txt"\r\n'
  printf 'Content-Type: text/plain\r\n\r\n'
  cat "$WORK/file.txt"
  printf -- '\r\n--XyZ--\r\n'
} > "$WORK/body.bin"

cat > "$WORK/common.lua" <<'EOF'
threads = {}
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
function shows_the_file(status, body)
  return status == 200 and string.find(body, "line 40 of the benchmark file", 1, true) ~= nil
end
EOF
cat > "$WORK/R.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
wrk.headers["Cookie"] = "id=" .. os.getenv("TD_COOKIE")
function response(status, headers, body)
  if not shows_the_file(status, body) then wrong = wrong + 1 end
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
  if not shows_the_file(status, body) then wrong = wrong + 1 end
end
EOF
# WM: thread t of 2 takes cookies t, t+2, t+4, ... of the 64 into its free list.
cat > "$WORK/WM.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
local f = io.open(os.getenv("TD_WORK") .. "/file.txt", "rb")
local file = f:read("*a")
f:close()
local counter = 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads - 1)
end
function init(args)
  wrong = 0
  free = {}
  local n = 0
  for c in io.lines(os.getenv("TD_COOKIES")) do
    if n % 2 == index then table.insert(free, c) end
    n = n + 1
  end
end
function request()
  counter = counter + 1
  local cookie = table.remove(free, 1) or "none"
  local body = "--XyZ\r\nContent-Disposition: form-data; name=\"textfile\"; filename=\"bench.txt\"\r\n" ..
    "Content-Type: text/plain\r\n\r\nupload " .. index .. "-" .. counter .. "\n" .. file .. "\r\n--XyZ--\r\n"
  return wrk.format("POST", "/", { ["Cookie"] = "id=" .. cookie,
    ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body)
end
function response(status, headers, body)
  local set = nil
  for name, value in pairs(headers) do
    if string.lower(name) == "set-cookie" then set = string.match(value, "^id=([^;]+)") end
  end
  if status ~= 303 or set == nil then wrong = wrong + 1 end
  if set ~= nil then table.insert(free, set) end
end
EOF
cat > "$WORK/N.lua" <<'EOF'
dofile(os.getenv("TD_WORK") .. "/common.lua")
local f = io.open(os.getenv("TD_WORK") .. "/body.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=XyZ"
function response(status, headers, body)
  if status ~= 303 then wrong = wrong + 1 end
end
EOF

# ---------------------------------------------------------------- servers
declare -A URL PORT PID
URL[sqlite]="sqlite://$WORK/bench.db"
URL[postgres]="$PG/textdrop_bench${BENCH_PG_PARAMS:-}"
URL[mysql]="$MYSQL/textdrop_bench"
URL[redis]="$REDIS"
URL[cookie]="cookie://"
URL[tower]="$PG/textdrop_bench_tower"
URL[actix_redis]="$PEER_REDIS"
bash scripts/redis-cluster.sh start "$WORK/cluster" 7300 >/dev/null
URL[cluster]=$(bash scripts/redis-cluster.sh url 7300)
PORT[sqlite]=18101; PORT[postgres]=18102; PORT[redis]=18103; PORT[cookie]=18104; PORT[cluster]=18105
PORT[mysql]=18106; PORT[tower]=18107; PORT[actix_redis]=18108
read -r -a SYSTEMS <<< "${BENCH_SYSTEMS:-sqlite postgres mysql redis cluster cookie tower actix_redis}"
read -r -a LOADS <<< "${BENCH_LOADS:-R RM WM N}"
read -r -a CEILINGS <<< "${BENCH_CEILINGS-pgbench mysqlslap sqlite_loop}"

reset_stores() {
  rm -f "$WORK"/bench.db*
  for db in textdrop_bench textdrop_bench_tower; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
  done
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_bench; CREATE DATABASE textdrop_bench"
  redis-cli -u "$REDIS" FLUSHDB >/dev/null
  redis-cli -u "$PEER_REDIS" FLUSHDB >/dev/null
  for p in 7301 7302 7303 7304 7305 7306; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done
}
start() { # $1 system
  local sys=$1
  case $sys in
    tower) DATABASE_URL=${URL[tower]} PORT=${PORT[tower]} $TOWER > "$WORK/$sys.log" 2>&1 & ;;
    actix_redis) REDIS_URL=${URL[actix_redis]} PORT=${PORT[actix_redis]} $ACTIX_REDIS > "$WORK/$sys.log" 2>&1 & ;;
    # The public-internet limits are off: one load generator on one address is not an abuser.
    *) DATABASE_URL=${URL[$sys]} PORT=${PORT[$sys]} SECRET_KEY=bench-secret-key-material-0123456789abcdef \
         CLEANUP_INTERVAL_SECS=0 UPLOADS_PER_MINUTE=0 MAX_UPLOADS_IN_FLIGHT=256 MAX_STORED_BYTES=0 \
         $BIN serve > "$WORK/$sys.log" 2>&1 & ;;
  esac
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
rows() { # $1 system -> rows in its sessions table, or "-"
  case $1 in
    postgres) psql -qAt "${URL[postgres]}" -c "SELECT count(*) FROM sessions" ;;
    mysql) mariadb -h 127.0.0.1 -u root -N -e "SELECT count(*) FROM textdrop_bench.sessions" ;;
    sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from sessions').fetchone()[0])" "$WORK/bench.db" ;;
    *) echo "-" ;;
  esac
}

run_cell() { # $1 system, $2 workload -> appends a result line
  local sys=$1 load=$2 cookie="" cookies=""
  case $load in
    R) cookie=${SESSION[$sys]} ;;
    RM|WM) cookies=${SESSIONS[$sys]} ;;
  esac
  local url="http://127.0.0.1:${PORT[$sys]}/"
  [[ $load == R || $load == RM ]] && url="${url}action"
  local before after
  before=$(rows "$sys")
  TD_WORK=$WORK TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$WARMUP" -s "$WORK/$load.lua" "$url" >/dev/null
  # WM's cookies have moved on during the warm-up: start the cell from fresh ones.
  if [[ $load == WM ]]; then fresh_sessions "$sys"; cookies=${SESSIONS[$sys]}; fi
  TD_WORK=$WORK TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$DURATION" -s "$WORK/$load.lua" "$url" > "$WORK/wrk.out"
  after=$(rows "$sys")
  local non23
  non23=$(awk '/Non-2xx or 3xx/ { print $NF }' "$WORK/wrk.out"); non23=${non23:-0}
  echo "$ROUND $load $sys $(grep RESULT "$WORK/wrk.out" | cut -d' ' -f2-) non23=$non23 rss=$(peak_rss_mib "$sys") rows=$before/$after" >> "$WORK/results"
}
fresh_sessions() { # $1 system: 64 cookies in a file (cookie-store cookies are too long for env)
  : > "$WORK/cookies.$1"
  for _ in $(seq 1 64); do new_session "$1" >> "$WORK/cookies.$1"; done
  SESSIONS[$1]="$WORK/cookies.$1"
}

# ---------------------------------------------------------------- database ceilings
STATE='{"file":"{\"name\":\"bench.txt\",\"size\":2520,\"lines\":40}"}'
FILE_SQL=$(sed "s/'/''/g" "$WORK/file.txt")
seed_pgbench() {
  local db="$PG/textdrop_pgbench"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_pgbench WITH (FORCE)" -c "CREATE DATABASE textdrop_pgbench" >/dev/null 2>&1
  DATABASE_URL=$db RUST_LOG=warn $BIN migrate >/dev/null
  psql -q "$db" -c "INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes)
    SELECT encode(sha256(g::text::bytea), 'hex'), '$STATE', (now() AT TIME ZONE 'utc') + interval '1 day',
      now() AT TIME ZONE 'utc', '$FILE_SQL', 2520 FROM generate_series(1, 100000) g" -c "VACUUM ANALYZE sessions" >/dev/null
  # The statements one request runs, as Diesel sends them (bound parameters, prepared).
  local live="expires_at > (now() AT TIME ZONE 'utc') AND created_at > (now() AT TIME ZONE 'utc') - interval '7 days'"
  cat > "$WORK/pg_R.sql" <<EOF
\set n random(1, 64)
SELECT state, expires_at, created_at, file FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex') AND $live;
EOF
  # WM: each client rewrites its own two rows (so no two clients race for one key, as no two
  # visitors share a cookie): the upload's load, then the rotation's DELETE and INSERT in one
  # transaction.
  cat > "$WORK/pg_WM.sql" <<EOF
\set n 200000 + :client_id * 2 + random(0, 1)
SELECT state, expires_at, created_at FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex') AND $live;
BEGIN;
DELETE FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex');
INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (encode(sha256(:n::text::bytea), 'hex'), '$STATE', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc', 'upload ' || :n || random() || '$FILE_SQL', 2520);
COMMIT;
EOF
  cat > "$WORK/pg_N.sql" <<EOF
INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (md5(random()::text || clock_timestamp()::text) || md5(random()::text), '$STATE', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc', '$FILE_SQL', 2520);
EOF
}
run_pgbench() { # $1 workload
  local tps
  tps=$(pgbench -n -M prepared -c 32 -j 2 -T "${DURATION%s}" -f "$WORK/pg_$1.sql" "$PG/textdrop_pgbench" 2>/dev/null \
    | awk '/^tps/ { print $3; exit }')
  echo "$ROUND $1 pgbench rps=$tps" >> "$WORK/results"
}
seed_mysqlslap() {
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_slap; CREATE DATABASE textdrop_slap"
  DATABASE_URL="$MYSQL/textdrop_slap" RUST_LOG=warn $BIN migrate >/dev/null
  mariadb -h 127.0.0.1 -u root textdrop_slap -e "SET SESSION max_recursive_iterations = 200000;
    INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes)
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000)
    SELECT SHA2(n, 256), '$(printf %s "$STATE" | sed 's/\\/\\\\/g')', UTC_TIMESTAMP(6) + INTERVAL 1 DAY, UTC_TIMESTAMP(6), '$FILE_SQL', 2520 FROM g;
    ANALYZE TABLE sessions;" >/dev/null
  # Ids are ASCII, as textdrop's bound parameters are converted to (a computed utf8mb4 string
  # would not be compared with the ascii_bin key at all), and computed from CONNECTION_ID(),
  # constant in a statement: an id computed from RAND() is evaluated per row (a table scan).
  local live="expires_at > UTC_TIMESTAMP(6) AND created_at > UTC_TIMESTAMP(6) - INTERVAL 7 DAY"
  local state_sql
  state_sql=$(printf %s "$STATE" | sed 's/\\/\\\\/g')
  echo "SELECT state, expires_at, created_at, file FROM sessions WHERE id = CONVERT(SHA2(1 + CONNECTION_ID() % 64, 256) USING ascii) AND $live" > "$WORK/my_R.sql"
  # WM: each client its own row (CONNECTION_ID()), as in pgbench.
  cat > "$WORK/my_WM.sql" <<EOF
SELECT state, expires_at, created_at FROM sessions WHERE id = CONVERT(SHA2(CONCAT('wm', CONNECTION_ID()), 256) USING ascii) AND $live;
BEGIN;
DELETE FROM sessions WHERE id = CONVERT(SHA2(CONCAT('wm', CONNECTION_ID()), 256) USING ascii);
INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (SHA2(CONCAT('wm', CONNECTION_ID()), 256), '$state_sql', UTC_TIMESTAMP(6) + INTERVAL 1 DAY, UTC_TIMESTAMP(6), CONCAT('upload ', RAND(), '$FILE_SQL'), 2520);
COMMIT
EOF
  echo "INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (SHA2(CONCAT(RAND(), CONNECTION_ID(), SYSDATE(6)), 256), '$state_sql', UTC_TIMESTAMP(6) + INTERVAL 1 DAY, UTC_TIMESTAMP(6), '$FILE_SQL', 2520)" > "$WORK/my_N.sql"
}
run_mysqlslap() { # $1 workload: requests/s = requests run / seconds taken
  local statements=1 per_client out secs queries
  [[ $1 == WM ]] && statements=5
  per_client=${MYSQLSLAP_PER_CLIENT:-2000}
  [[ $1 == R ]] && per_client=$((per_client * 4))
  # utf8mb4 and READ COMMITTED, as textdrop's connections; --no-drop keeps the seeded schema.
  out=$(mysqlslap -h 127.0.0.1 -u root --create-schema=textdrop_slap --no-drop --concurrency=32 \
    --iterations=1 --number-of-queries=$((32 * per_client * statements)) --delimiter=";" \
    --init-command="SET NAMES utf8mb4, SESSION tx_isolation = 'READ-COMMITTED'" \
    --query="$(tr '\n' ' ' < "$WORK/my_$1.sql" | sed 's/;  */;/g')" 2>&1)
  secs=$(awk '/Average number of seconds to run all queries/ { print $(NF-1) }' <<< "$out")
  queries=$(awk '/Average number of queries per client/ { print $NF }' <<< "$out")
  [[ -n $secs && -n $queries ]] || { echo "mysqlslap $1 failed: $out" >&2; exit 1; }
  echo "$ROUND $1 mysqlslap rps=$(awk -v q="$queries" -v n="$statements" -v s="$secs" 'BEGIN { printf "%.1f", 32 * q / n / s }')" >> "$WORK/results"
}
run_sqlite_loop() { # $1 workload
  echo "$ROUND $1 sqlite_loop $($SQLITE_LOOP "$WORK/loop.db" "$1" "${DURATION%s}" 2)" >> "$WORK/results"
  rm -f "$WORK"/loop.db*
}

# ---------------------------------------------------------------- the run
declare -A SESSION SESSIONS
: > "$WORK/results"
[[ " ${CEILINGS[*]} " == *" pgbench "* ]] && seed_pgbench
[[ " ${CEILINGS[*]} " == *" mysqlslap "* ]] && seed_mysqlslap
XMIN_NOTE=""
for ROUND in $(seq 1 "$ROUNDS"); do
  reset_stores
  for sys in "${SYSTEMS[@]}"; do
    start "$sys"
    SESSION[$sys]=$(new_session "$sys")
    fresh_sessions "$sys"
  done
  if [[ $ROUND == 1 && " ${SYSTEMS[*]} " == *" postgres "* ]]; then
    XMIN_BEFORE=$(psql -qAt "${URL[postgres]}" -c "SELECT string_agg(xmin::text || ':' || expires_at::text, ',' ORDER BY id) FROM sessions")
  fi
  for load in R RM; do
    [[ " ${LOADS[*]} " == *" $load "* ]] || continue
    for sys in "${SYSTEMS[@]}"; do run_cell "$sys" "$load"; done
  done
  if [[ $ROUND == 1 && " ${SYSTEMS[*]} " == *" postgres "* ]]; then
    XMIN_AFTER=$(psql -qAt "${URL[postgres]}" -c "SELECT string_agg(xmin::text || ':' || expires_at::text, ',' ORDER BY id) FROM sessions")
    if [[ $XMIN_BEFORE == "$XMIN_AFTER" ]]; then
      XMIN_NOTE="unchanged: no row was written by the read workloads (R and RM, round 1)"
    else
      XMIN_NOTE="CHANGED: some read wrote a row"
    fi
  fi
  for load in WM N; do
    [[ " ${LOADS[*]} " == *" $load "* ]] || continue
    for sys in "${SYSTEMS[@]}"; do run_cell "$sys" "$load"; done
  done
  for sys in "${SYSTEMS[@]}"; do stop "$sys"; done
  for load in R WM N; do
    [[ " ${LOADS[*]} " == *" $load "* ]] || continue
    for ceiling in "${CEILINGS[@]}"; do "run_$ceiling" "$load"; done
  done
done

# ---------------------------------------------------------------- report
python3 - "$WORK/results" "$ROUNDS" "$XMIN_NOTE" "$DURATION" <<'EOF'
import statistics, sys, collections, datetime, os
path, rounds, xmin_note, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cells = collections.defaultdict(list)
for line in open(path):
    parts = line.split()
    load, system = parts[1], parts[2]
    fields = dict(p.split("=", 1) for p in parts[3:])
    cells[(load, system)].append(fields)
def med(load, system, key="rps"):
    vals = [float(f[key]) for f in cells[(load, system)] if key in f and f[key] not in ("", "-")]
    return statistics.median(vals) if vals else float("nan")
systems = ["sqlite", "postgres", "mysql", "redis", "cluster", "cookie", "tower", "actix_redis"]
ceilings = ["pgbench", "mysqlslap", "sqlite_loop"]
names = {"sqlite": "textdrop / SQLite", "postgres": "textdrop / PostgreSQL",
         "mysql": "textdrop / MariaDB", "redis": "textdrop / Redis",
         "cluster": "textdrop / Redis Cluster (3 masters)",
         "cookie": "textdrop / cookie store (web ceiling)",
         "tower": "tower-sessions + sqlx / PostgreSQL", "actix_redis": "actix-session RedisSessionStore",
         "pgbench": "pgbench, same statements", "mysqlslap": "mysqlslap, same statements",
         "sqlite_loop": "sqlite-loop, same statements"}
print("## Request throughput against peers\n")
print(f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; wrk -t2 -c32, "
      f"{duration} a cell, {rounds} rounds interleaved, medians of rounds. Command: `bash scripts/bench.sh`.\n")
print("| workload | system | requests/s | p50 ms | p99 ms | non-2xx/3xx | wrong | errors | peak RSS MiB | rows before/after |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for load in ["R", "RM", "WM", "N"]:
    for system in systems + ceilings:
        runs = cells.get((load, system))
        if not runs:
            continue
        if system in ceilings:
            print(f"| {load} | {names[system]} | {med(load, system):.0f} | | | | | | | |")
            continue
        wrong = sum(int(f.get("wrong", 0)) for f in runs)
        non23 = sum(int(f.get("non23", 0)) for f in runs)
        errors = sum(int(f.get("errors", 0)) for f in runs)
        rows = " ".join(f.get("rows", "-") for f in runs) if load in ("WM", "N") and system in ("sqlite", "postgres", "mysql") else ""
        print(f"| {load} | {names[system]} | {med(load, system):.0f} | {med(load, system, 'p50'):.2f} | "
              f"{med(load, system, 'p99'):.2f} | {non23} | {wrong} | {errors} | {max(float(f['rss']) for f in runs):.1f} | {rows} |")
def ratio(label, a, b, target):
    print(f"| {label} | {a / b:.2f} | {target} |")
print("\n### Ratios (medians, same run)\n")
print("| ratio | value | target |")
print("| --- | --- | --- |")
for load in ["R", "RM"]:
    ratio(f"{load}: PostgreSQL / tower-sessions", med(load, "postgres"), med(load, "tower"), "≥ 1.5")
ratio("N: PostgreSQL / tower-sessions", med("N", "postgres"), med("N", "tower"), "≥ 2")
ratio("R: SQLite / cookie store", med("R", "sqlite"), med("R", "cookie"), "≥ 0.9")
ratio("R: SQLite / actix-session Redis", med("R", "sqlite"), med("R", "actix_redis"), "≥ 0.6")
ratio("WM: PostgreSQL / pgbench", med("WM", "postgres"), med("WM", "pgbench"), "≥ 0.8")
ratio("WM: SQLite / sqlite-loop", med("WM", "sqlite"), med("WM", "sqlite_loop"), "≥ 0.8")
ratio("WM: MariaDB / mysqlslap", med("WM", "mysql"), med("WM", "mysqlslap"), "(context)")
for load in ["R", "N"]:
    ratio(f"{load}: MariaDB / mysqlslap", med(load, "mysql"), med(load, "mysqlslap"), "(context)")
    ratio(f"{load}: PostgreSQL / pgbench", med(load, "postgres"), med(load, "pgbench"), "(context)")
    ratio(f"{load}: Redis Cluster / single Redis", med(load, "cluster"), med(load, "redis"), "(context)")
    ratio(f"{load}: Redis / actix-session Redis", med(load, "redis"), med(load, "actix_redis"), "(context)")
print(f"\nPostgreSQL rows' xmin and expiry across the read workloads: {xmin_note}.")
EOF
