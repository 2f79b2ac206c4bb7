#!/usr/bin/env bash
# `textdrop sessions copy` with 100,000 live sessions (each with a 400-byte file) and 1,000
# expired rows, on the release binary, ROUNDS times each path into an empty destination:
#   SQLite -> PostgreSQL, PostgreSQL -> MySQL, PostgreSQL -> Redis Cluster, Redis -> SQLite,
# and the same SQLite -> PostgreSQL copy run again (everything already there).
# The source is seeded once in PostgreSQL (generate_series) and copied into SQLite and a private
# Redis untimed. Prints a markdown table of medians on stdout (results go to
# docs/benchmarks.md). Needs psql and mariadb clients; starts its own Redis and Redis Cluster.
# Usage: bench/bench-copy.sh   (env: BENCH_PG=postgres://postgres@127.0.0.1:5432,
#                                 BENCH_MYSQL=mysql://root@127.0.0.1:3306, ROUNDS=3, SESSIONS=100000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
ROUNDS=${ROUNDS:-3}
SESSIONS=${SESSIONS:-100000}
BIN=target/release/textdrop
WORK=$(mktemp -d)
REDIS_PORT=${BENCH_REDIS_PORT:-18379}
CLUSTER_BASE=${BENCH_CLUSTER_BASE:-18400}
cleanup() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  bash scripts/redis-cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_copy_src WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS bench_copy_dst WITH (FORCE)" >/dev/null 2>&1 || true
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS bench_copy_dst" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet
redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$WORK" >/dev/null
bash scripts/redis-cluster.sh start "$WORK/cluster" "$CLUSTER_BASE" >/dev/null
CLUSTER=$(bash scripts/redis-cluster.sh url "$CLUSTER_BASE")
REDIS="redis://127.0.0.1:$REDIS_PORT/0"

export RUST_LOG=warn
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_copy_src WITH (FORCE)" \
  -c "CREATE DATABASE bench_copy_src" >/dev/null
SRC="$PG/bench_copy_src"
DATABASE_URL=$SRC $BIN migrate >/dev/null
psql -qAt "$SRC" -c "INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes)
  SELECT encode(sha256(g::text::bytea), 'hex'), '{\"file\":{\"name\":\"seed.txt\",\"bytes\":400}}',
         (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc',
         repeat(lpad(g::text, 9, '0'), 40), 400
  FROM generate_series(1, $SESSIONS) g" >/dev/null
psql -qAt "$SRC" -c "INSERT INTO sessions (id, state, expires_at, created_at)
  SELECT 'expired-' || g, '{}', (now() AT TIME ZONE 'utc') - interval '1 hour',
         (now() AT TIME ZONE 'utc') - interval '1 day'
  FROM generate_series(1, 1000) g" >/dev/null
$BIN sessions copy --from "$SRC" --to "sqlite://$WORK/source.db" >/dev/null
$BIN sessions copy --from "$SRC" --to "$REDIS" >/dev/null

# Runs one copy; prints its seconds as the copy measured them ("took:"), checking its counts.
timed_copy() { # from to expected-copied
  local out
  out=$($BIN sessions copy --from "$1" --to "$2")
  grep -q "^copied: *$3\$" <<<"$out" || { echo "unexpected counts:" >&2; echo "$out" >&2; exit 1; }
  grep -q "0 missing" <<<"$out" || { echo "$out" >&2; exit 1; }
  awk '/^took:/ { print $2 }' <<<"$out"
}

fresh_pg() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_copy_dst WITH (FORCE)" \
  -c "CREATE DATABASE bench_copy_dst" >/dev/null; }
fresh_mysql() { mariadb -h 127.0.0.1 -u root -e \
  "DROP DATABASE IF EXISTS bench_copy_dst; CREATE DATABASE bench_copy_dst"; }
flush_cluster() { for i in 1 2 3 4 5 6; do
  redis-cli -p $((CLUSTER_BASE + i)) flushall >/dev/null 2>&1 || true; done; }

declare -A took
for round in $(seq 1 "$ROUNDS"); do
  fresh_pg
  took[sqlite_pg]+="$(timed_copy "sqlite://$WORK/source.db" "$PG/bench_copy_dst" "$SESSIONS") "
  took[rerun]+="$(timed_copy "sqlite://$WORK/source.db" "$PG/bench_copy_dst" 0) "
  fresh_mysql
  took[pg_mysql]+="$(timed_copy "$SRC" "$MYSQL/bench_copy_dst" "$SESSIONS") "
  flush_cluster
  took[pg_cluster]+="$(timed_copy "$SRC" "$CLUSTER" "$SESSIONS") "
  rm -f "$WORK"/dest.db*
  took[redis_sqlite]+="$(timed_copy "$REDIS" "sqlite://$WORK/dest.db" "$SESSIONS") "
  echo "round $round done" >&2
done

med() { tr ' ' '\n' <<<"${took[$1]}" | grep . | median; }
rate() { awk -v s="$1" -v n="$SESSIONS" 'BEGIN { printf "%.0f", n / s }'; }
echo "| copy ($SESSIONS live sessions, 400-byte files; $ROUNDS rounds) | median s | sessions/s | runs (s) |"
echo "| --- | ---: | ---: | --- |"
for path in sqlite_pg pg_mysql pg_cluster redis_sqlite rerun; do
  case $path in
    sqlite_pg) label="SQLite → PostgreSQL" ;;
    pg_mysql) label="PostgreSQL → MariaDB 10.11" ;;
    pg_cluster) label="PostgreSQL → Redis Cluster (3 masters)" ;;
    redis_sqlite) label="Redis → SQLite" ;;
    rerun) label="SQLite → PostgreSQL again (all already there)" ;;
  esac
  m=$(med $path)
  echo "| $label | $m | $(rate "$m") | ${took[$path]}|"
done
