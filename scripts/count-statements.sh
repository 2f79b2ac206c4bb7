#!/usr/bin/env bash
# The statements (PostgreSQL, MySQL/MariaDB) and commands (Redis) one textdrop request sends to
# its storage: a new visitor's upload (a new session), a read of /action, and an upload by a
# visitor who has a session (a key rotation). Prints a markdown table (docs/benchmarks.md).
#
# PostgreSQL: `log_statement = all` set on a database of the script's own, counted in the
# server log (each `statement:` or `execute` line of that database). MySQL: the general log in a
# table (`Query` and `Execute` rows; `Prepare` rows counted apart). Redis: `MONITOR` (a script's
# inner commands counted apart). Background work is off: CLEANUP_INTERVAL_SECS=0 and
# MAX_STORED_BYTES=0 (no storage-cap measurement). Run as a user that can read the PostgreSQL
# log and set MySQL's global log (root here).
#
# Usage: scripts/count-statements.sh [BINARY ...]   (default target/release/textdrop)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
PG_LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log | tail -n 1)}
REDIS_DB=${COUNT_REDIS_DB:-6}
PORT=${COUNT_PORT:-18231}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_count WITH (FORCE)" >/dev/null 2>&1 || true
  mariadb -h 127.0.0.1 -u root -e "SET GLOBAL general_log = 0; DROP DATABASE IF EXISTS textdrop_count" >/dev/null 2>&1 || true
  redis-cli -n "$REDIS_DB" FLUSHDB >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf 'line %02d of the file\n' $(seq 1 40) > "$WORK/file.txt"

# A counter for each storage: `begin` marks the start of a step, `count` prints what the
# step sent.
pg_begin() { wc -l < "$PG_LOG" > "$WORK/mark"; }
pg_count() {
  sleep 0.3
  tail -n +"$(( $(cat "$WORK/mark") + 1 ))" "$PG_LOG" \
    | grep -E '@textdrop_count (LOG|ERROR):  (statement|execute)' \
    | grep -vEc ':  (statement|execute [^:]*): (SELECT 1|SET .*)$' || true
}
my_begin() { mariadb -h 127.0.0.1 -u root -e "TRUNCATE mysql.general_log"; }
my_count() {
  sleep 0.3
  # Not counted: this script's own queries, readiness pings, a new connection's settings.
  mariadb -h 127.0.0.1 -u root -N -e "SELECT
      COALESCE(SUM(command_type IN ('Query', 'Execute')), 0), COALESCE(SUM(command_type = 'Prepare'), 0)
    FROM mysql.general_log
    WHERE argument NOT LIKE '%general_log%' AND argument NOT LIKE '%@@%'
      AND argument NOT LIKE 'SELECT 1%' AND argument NOT LIKE 'SET %' AND argument NOT LIKE 'SHOW %'" \
    | awk '{ printf "%d (+%d prepared)", $1, $2 }'
}
redis_begin() {
  redis-cli MONITOR > "$WORK/monitor" &
  echo $! > "$WORK/monitor.pid"
  sleep 0.3
}
redis_count() {
  sleep 0.3
  kill "$(cat "$WORK/monitor.pid")"
  wait "$(cat "$WORK/monitor.pid")" 2>/dev/null || true
  # Commands sent by the app on its database, apart from readiness pings; a script's own
  # commands are listed with "lua" in place of the client address.
  local sent inner
  sent=$(grep -E "^[0-9.]+ \[$REDIS_DB [0-9.:]+\]" "$WORK/monitor" | grep -vc '"PING"' || true)
  inner=$(grep -cE "^[0-9.]+ \[$REDIS_DB lua\]" "$WORK/monitor" || true)
  printf '%d (+%d in scripts)' "$sent" "$inner"
}

# Runs the three steps against the server on $PORT with counter $1; prints "| a | b | c |".
steps() {
  local counter=$1 jar="$WORK/jar" row="|"
  rm -f "$jar"
  "${counter}_begin"
  curl -s -o /dev/null -c "$jar" -F "textfile=@$WORK/file.txt" "http://127.0.0.1:$PORT/"
  row+=" $("${counter}_count") |"
  "${counter}_begin"
  curl -s -o /dev/null -b "$jar" "http://127.0.0.1:$PORT/action"
  row+=" $("${counter}_count") |"
  "${counter}_begin"
  curl -s -o /dev/null -b "$jar" -c "$jar" -F "textfile=@$WORK/file.txt" "http://127.0.0.1:$PORT/"
  row+=" $("${counter}_count") |"
  echo "$row"
}

serve() { # $1 binary, $2 DATABASE_URL
  env SECRET_KEY=$BENCH_SECRET CLEANUP_INTERVAL_SECS=0 MAX_STORED_BYTES=0 UPLOADS_PER_MINUTE=0 \
    DATABASE_POOL_SIZE=2 PORT=$PORT DATABASE_URL="$2" RUST_LOG=warn "$1" serve > "$WORK/serve.log" 2>&1 &
  SERVER=$!
  wait_ready "$PORT" "$SERVER" "$WORK/serve.log"
  # A connection per worker opened before anything is counted (one readiness check each).
  for _ in 1 2 3 4 5 6; do curl -s -o /dev/null "http://127.0.0.1:$PORT/readyz"; done
}

echo "| binary | storage | new session (first upload) | read of /action | upload with a session (rotation) |"
echo "| --- | --- | --- | --- | --- |"
for bin in "${@:-target/release/textdrop}"; do
  name=$bin

  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_count WITH (FORCE)" -c "CREATE DATABASE textdrop_count" \
    -c "ALTER DATABASE textdrop_count SET log_statement = 'all'"
  serve "$bin" "$PG/textdrop_count?sslmode=disable"
  echo "| $name | PostgreSQL $(steps pg)"
  stop_pid "$SERVER"

  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS textdrop_count; CREATE DATABASE textdrop_count;
    SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1"
  serve "$bin" "mysql://root@127.0.0.1:3306/textdrop_count"
  echo "| $name | MariaDB (statements) $(steps my)"
  stop_pid "$SERVER"
  mariadb -h 127.0.0.1 -u root -e "SET GLOBAL general_log = 0"

  redis-cli -n "$REDIS_DB" FLUSHDB >/dev/null
  serve "$bin" "redis://127.0.0.1:6379/$REDIS_DB"
  echo "| $name | Redis (commands) $(steps redis)"
  stop_pid "$SERVER"
done
