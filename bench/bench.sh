#!/usr/bin/env bash
# textdrop against its peers and its ceilings, in one run on one machine (docs/benchmarks.md).
#
# Systems (each one process serving the same pages; see bench/peers/README.md):
#   textdrop on SQLite, PostgreSQL, MySQL/MariaDB, Redis, and a Redis Cluster of 3 masters (the
#     script starts it on 7301-7306 and stops it);
#   memory: textdrop's web layer with its records in the process's memory
#     (bench/ceilings/memory-store, built on the library): the ceiling without a database;
#   base_*: with BENCH_BASELINE=path/to/another/textdrop, that binary on the same storages
#     (its own databases), cell by cell beside this one, for before/after figures in one run;
#   cached_*: this binary with its read cache on (READ_CACHE=on, 64 MiB) on the same storages
#     (its own databases); the plain textdrop systems run with READ_CACHE=off (the storage's
#     own path, comparable with baselines built before the cache);
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
# BENCH_PG_PARAMS is appended to textdrop's PostgreSQL URL (e.g. ?sslmode=disable: textdrop, like
# libpq, negotiates TLS on loopback when the server offers it; the sqlx peer is built without TLS).
# The workloads' Lua (bench/load/), the ceilings' SQL (bench/sql/) and the report
# (bench/report.py) are files of their own; bench/lib.sh is shared with the other bench scripts.
# Subsets for quick comparisons: BENCH_SYSTEMS, BENCH_LOADS, BENCH_CEILINGS (space-separated
# names as above, ceilings pgbench mysqlslap sqlite_loop), BENCH_BIN (another textdrop binary).
# Prints a markdown report. Needs wrk, psql, pgbench, mariadb, mysqlslap, redis-cli, curl, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/3}
PEER_REDIS=${BENCH_PEER_REDIS:-redis://127.0.0.1:6379/4}
BASE_REDIS=${BENCH_BASE_REDIS:-redis://127.0.0.1:6379/5}
BIN=${BENCH_BIN:-target/release/textdrop}
BASELINE=${BENCH_BASELINE:-}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  bash scripts/redis-cluster.sh stop "$WORK/cluster"
  # Redis's memory counts against every other user's cap: leave nothing behind.
  redis-cli -u "$REDIS" FLUSHDB >/dev/null 2>&1 || true
  redis-cli -u "$PEER_REDIS" FLUSHDB >/dev/null 2>&1 || true
  redis-cli -u "$BASE_REDIS" FLUSHDB >/dev/null 2>&1 || true
  for db in textdrop_bench textdrop_bench_base textdrop_bench_cached textdrop_bench_tower textdrop_pgbench; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_bench; DROP DATABASE IF EXISTS textdrop_bench_base; DROP DATABASE IF EXISTS textdrop_bench_cached; DROP DATABASE IF EXISTS textdrop_slap" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for tool in wrk psql pgbench mariadb mysqlslap redis-cli curl cargo; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
TOWER=bench/peers/tower-pg/target/release/peer-tower-pg
ACTIX_REDIS=bench/peers/actix-redis/target/release/peer-actix-redis
SQLITE_LOOP=bench/ceilings/sqlite-loop/target/release/sqlite-loop
MEMORY=bench/ceilings/memory-store/target/release/memory-store

# ---------------------------------------------------------------- fixtures
printf 'line %02d of the benchmark file: the quick brown fox jumps over\n' $(seq 1 40) > "$WORK/file.txt"
{
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="textfile"; filename="bench.txt"\r\n'
  printf 'Content-Type: text/plain\r\n\r\n'
  cat "$WORK/file.txt"
  printf -- '\r\n--XyZ--\r\n'
} > "$WORK/body.bin"

# ---------------------------------------------------------------- servers
declare -A URL PORT PID
URL[sqlite]="sqlite://$WORK/bench.db"
URL[postgres]="$PG/textdrop_bench${BENCH_PG_PARAMS:-}"
URL[mysql]="$MYSQL/textdrop_bench"
URL[redis]="$REDIS"
URL[base_sqlite]="sqlite://$WORK/base.db"
URL[base_postgres]="$PG/textdrop_bench_base${BENCH_PG_PARAMS:-}"
URL[base_mysql]="$MYSQL/textdrop_bench_base"
URL[cached_sqlite]="sqlite://$WORK/cached.db"
URL[cached_postgres]="$PG/textdrop_bench_cached${BENCH_PG_PARAMS:-}"
URL[cached_mysql]="$MYSQL/textdrop_bench_cached"
URL[base_redis]="$BASE_REDIS"
URL[tower]="$PG/textdrop_bench_tower"
URL[actix_redis]="$PEER_REDIS"
bash scripts/redis-cluster.sh start "$WORK/cluster" 7300 >/dev/null
URL[cluster]=$(bash scripts/redis-cluster.sh url 7300)
URL[base_cluster]=${URL[cluster]}
PORT[sqlite]=18101; PORT[postgres]=18102; PORT[redis]=18103; PORT[memory]=18104; PORT[cluster]=18105
PORT[mysql]=18106; PORT[tower]=18107; PORT[actix_redis]=18108
PORT[base_sqlite]=18111; PORT[base_postgres]=18112; PORT[base_redis]=18113; PORT[base_cluster]=18115
PORT[base_mysql]=18116
PORT[cached_sqlite]=18121; PORT[cached_postgres]=18122; PORT[cached_mysql]=18126
DEFAULT_SYSTEMS="sqlite postgres mysql redis cluster memory tower actix_redis"
[[ -n $BASELINE ]] && DEFAULT_SYSTEMS="sqlite base_sqlite postgres base_postgres mysql base_mysql redis base_redis cluster base_cluster memory tower actix_redis"
read -r -a SYSTEMS <<< "${BENCH_SYSTEMS:-$DEFAULT_SYSTEMS}"
read -r -a LOADS <<< "${BENCH_LOADS:-R RM WM N}"
read -r -a CEILINGS <<< "${BENCH_CEILINGS-pgbench mysqlslap sqlite_loop}"

# Build what this run uses, and only that (each peer is a workspace of its own).
cargo build --release --quiet --locked
wanted() { [[ " ${SYSTEMS[*]} ${CEILINGS[*]} " == *" $1 "* ]]; }
for pair in tower:bench/peers/tower-pg actix_redis:bench/peers/actix-redis \
    sqlite_loop:bench/ceilings/sqlite-loop memory:bench/ceilings/memory-store; do
  if wanted "${pair%%:*}"; then
    (cd "${pair#*:}" && cargo build --release --quiet --locked)
  fi
done

reset_stores() {
  rm -f "$WORK"/bench.db* "$WORK"/base.db* "$WORK"/cached.db*
  for db in textdrop_bench textdrop_bench_base textdrop_bench_cached textdrop_bench_tower; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
  done
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_bench; CREATE DATABASE textdrop_bench; DROP DATABASE IF EXISTS textdrop_bench_base; CREATE DATABASE textdrop_bench_base; DROP DATABASE IF EXISTS textdrop_bench_cached; CREATE DATABASE textdrop_bench_cached"
  redis-cli -u "$REDIS" FLUSHDB >/dev/null
  redis-cli -u "$PEER_REDIS" FLUSHDB >/dev/null
  redis-cli -u "$BASE_REDIS" FLUSHDB >/dev/null
  for p in 7301 7302 7303 7304 7305 7306; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done
}
start() { # $1 system
  local sys=$1
  # The public-internet limits are off: one load generator on one address is not an abuser.
  local limits=(SECRET_KEY=$BENCH_SECRET CLEANUP_INTERVAL_SECS=0 UPLOADS_PER_MINUTE=0
    MAX_UPLOADS_IN_FLIGHT=256 MAX_STORED_BYTES=0 PORT=${PORT[$sys]})
  # (MAX_UPLOADS_IN_FLIGHT is for a BENCH_BASELINE built before UPLOAD_BUFFER_BYTES.)
  case $sys in
    tower) DATABASE_URL=${URL[tower]} PORT=${PORT[tower]} $TOWER > "$WORK/$sys.log" 2>&1 & ;;
    actix_redis) REDIS_URL=${URL[actix_redis]} PORT=${PORT[actix_redis]} $ACTIX_REDIS > "$WORK/$sys.log" 2>&1 & ;;
    memory) env "${limits[@]}" $MEMORY > "$WORK/$sys.log" 2>&1 & ;;
    base_*) env "${limits[@]}" DATABASE_URL=${URL[$sys]} $BASELINE serve > "$WORK/$sys.log" 2>&1 & ;;
    cached_*) env "${limits[@]}" READ_CACHE=on READ_CACHE_BYTES=67108864 DATABASE_URL=${URL[$sys]} $BIN serve > "$WORK/$sys.log" 2>&1 & ;;
    *) env "${limits[@]}" READ_CACHE=off DATABASE_URL=${URL[$sys]} $BIN serve > "$WORK/$sys.log" 2>&1 & ;;
  esac
  PID[$sys]=$!
  wait_ready "${PORT[$sys]}" "${PID[$sys]}" "$WORK/$sys.log"
}
stop() { stop_pid "${PID[$1]}"; }
new_session() { new_session_on "${PORT[$1]}" "$WORK/file.txt"; } # $1 system -> a cookie value
rows() { # $1 system -> rows in its sessions table, or "-"
  case $1 in
    postgres|base_postgres|cached_postgres) psql -qAt "${URL[$1]%%\?*}" -c "SELECT count(*) FROM sessions" ;;
    mysql) mariadb -h 127.0.0.1 -u root -N -e "SELECT count(*) FROM textdrop_bench.sessions" ;;
    base_mysql) mariadb -h 127.0.0.1 -u root -N -e "SELECT count(*) FROM textdrop_bench_base.sessions" ;;
    cached_mysql) mariadb -h 127.0.0.1 -u root -N -e "SELECT count(*) FROM textdrop_bench_cached.sessions" ;;
    sqlite|base_sqlite|cached_sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from sessions').fetchone()[0])" "${URL[$1]#sqlite://}" ;;
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
  TD_WORK=$WORK TD_LOAD=bench/load TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$WARMUP" -s "bench/load/$load.lua" "$url" >/dev/null
  # WM's cookies have moved on during the warm-up: start the cell from fresh ones.
  if [[ $load == WM ]]; then fresh_sessions "$sys"; cookies=${SESSIONS[$sys]}; fi
  TD_WORK=$WORK TD_LOAD=bench/load TD_COOKIE=$cookie TD_COOKIES=$cookies \
    wrk -t2 -c32 -d"$DURATION" -s "bench/load/$load.lua" "$url" > "$WORK/wrk.out"
  after=$(rows "$sys")
  local non23
  non23=$(awk '/Non-2xx or 3xx/ { print $NF }' "$WORK/wrk.out"); non23=${non23:-0}
  echo "$ROUND $load $sys $(grep RESULT "$WORK/wrk.out" | cut -d' ' -f2-) non23=$non23 rss=$(peak_rss_mib "${PID[$sys]}") rows=$before/$after" >> "$WORK/results"
}
fresh_sessions() { # $1 system: 64 cookies in a file
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
  # Each client's own WM row (pgbench's client ids are 0..31).
  psql -q "$db" -c "INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes)
    SELECT encode(sha256((200000 + c * 2)::text::bytea), 'hex'), '$STATE', (now() AT TIME ZONE 'utc') + interval '1 day',
      now() AT TIME ZONE 'utc', '$FILE_SQL', 2520 FROM generate_series(0, 31) c" >/dev/null
  # The statements one request runs (bench/sql/pg_*.sql), sent prepared as Diesel does.
  local live="expires_at > (now() AT TIME ZONE 'utc') AND created_at > (now() AT TIME ZONE 'utc') - interval '7 days'"
  for load in R WM N; do fill_sql "bench/sql/pg_$load.sql" "$live" "$STATE" > "$WORK/pg_$load.sql"; done
}
# The ceiling statements of file $1 with @LIVE@, @STATE@ and @FILE@ filled in ($2, $3, the file).
fill_sql() {
  python3 - "$1" "$2" "$3" "$FILE_SQL" <<'PY'
import sys
path, live, state, file = sys.argv[1:]
text = "".join(l for l in open(path) if not l.startswith("-- "))
print(text.replace("@LIVE@", live).replace("@STATE@", state).replace("@FILE@", file), end="")
PY
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
  for load in R WM N; do fill_sql "bench/sql/my_$load.sql" "$live" "$state_sql" > "$WORK/my_$load.sql"; done
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
python3 bench/report.py "$WORK/results" "$ROUNDS" "$XMIN_NOTE" "$DURATION"
