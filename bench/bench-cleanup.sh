#!/usr/bin/env bash
# Cleanup at scale on PostgreSQL: 1,000,000 expired rows and 10,000 live ones.
#   (a) one plain DELETE in psql, (b) `textdrop cleanup` (batched), each ROUNDS times;
#   (c) the sweeper inside a running server while wrk reads a live session (GET /action),
#       against the same load with cleanup disabled, ROUNDS times interleaved.
# Prints a markdown report on stdout (results go to docs/benchmarks.md). Needs psql and wrk.
# Usage: bench/bench-cleanup.sh   (env: BENCH_PG=postgres://postgres@127.0.0.1:5432, ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
ROUNDS=${ROUNDS:-3}
DB=textdrop_bench_cleanup
URL="$PG/$DB"
PORT=${BENCH_PORT:-18090}
BIN=target/release/textdrop
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
DATABASE_URL=$URL RUST_LOG=warn $BIN migrate >/dev/null

ms() { date +%s%3N; }
q() { psql -qAt "$URL" -c "$1"; }

seed() {
  q "TRUNCATE sessions" >/dev/null
  q "INSERT INTO sessions (id, state, expires_at, created_at)
     SELECT 'expired-' || g, '{\"file_contents\":\"[]\"}',
            (now() AT TIME ZONE 'utc') - interval '1 hour' - g * interval '1 millisecond',
            (now() AT TIME ZONE 'utc') - interval '2 days'
     FROM generate_series(1, 1000000) g" >/dev/null
  q "INSERT INTO sessions (id, state, expires_at, created_at)
     SELECT 'live-' || g, '{}', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc'
     FROM generate_series(1, 10000) g" >/dev/null
  q "VACUUM ANALYZE sessions" >/dev/null
  # Start every measurement from a clean checkpoint, so one triggered by the seed's WAL does
  # not land in some rounds' measurement and not others.
  q "CHECKPOINT" >/dev/null
}

live_rows() { q "SELECT count(*) FROM sessions WHERE id LIKE 'live-%'"; }
expired_rows() { q "SELECT count(*) FROM sessions WHERE expires_at <= now() AT TIME ZONE 'utc'"; }

echo "## Cleanup of 1,000,000 expired rows (PostgreSQL)"
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB;" \
     "$(psql -qAt "$PG/postgres" -c 'SHOW server_version') PostgreSQL; rounds: $ROUNDS (medians)."
echo
seed
echo "Plans after VACUUM ANALYZE on the seeded table. The first batch of a run walks the expires_at index:"
echo
echo '```'
q "EXPLAIN (COSTS OFF) DELETE FROM sessions WHERE ctid = ANY(ARRAY(SELECT ctid FROM sessions
   WHERE expires_at <= now() AT TIME ZONE 'utc' ORDER BY expires_at LIMIT 5000))"
echo '```'
echo
echo "It came back full and the planner expects most of the table expired, so the rest of the run walks"
echo "the table in block ranges (the statement as textdrop sends it, with its settings):"
echo
echo '```'
psql -qAt "$URL" <<'SQL'
BEGIN;
SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
PREPARE walk(bigint, bigint, timestamp) AS DELETE FROM sessions
  WHERE ctid >= ('(' || $1 || ',0)')::tid AND ctid < ('(' || $2 || ',0)')::tid AND expires_at <= $3;
EXPLAIN (COSTS OFF) EXECUTE walk(0, 51, now() AT TIME ZONE 'utc');
ROLLBACK;
SQL
echo '```'
echo

plain=(); batched=(); lost=0
for round in $(seq 1 "$ROUNDS"); do
  seed
  t0=$(ms); q "DELETE FROM sessions WHERE expires_at < now() AT TIME ZONE 'utc'" >/dev/null; t1=$(ms)
  plain+=($((t1 - t0)))
  [[ $(live_rows) == 10000 ]] || lost=1
  seed
  t0=$(ms); DATABASE_URL=$URL RUST_LOG=warn $BIN cleanup > "$WORK/cleanup.out"; t1=$(ms)
  batched+=($((t1 - t0)))
  [[ $(live_rows) == 10000 && $(expired_rows) == 0 ]] || lost=1
done
a=$(printf '%s\n' "${plain[@]}" | median)
b=$(printf '%s\n' "${batched[@]}" | median)
echo "| run | rounds (ms) | median (ms) |"
echo "| --- | --- | --- |"
echo "| (a) plain \`DELETE … WHERE expires_at < now\` in psql | ${plain[*]} | $a |"
echo "| (b) \`textdrop cleanup\` (batches of about 5,000 rows, whole process) | ${batched[*]} | $b |"
echo
echo "Ratio (b)/(a): $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b/a}') (target ≤ 1.5). Live rows lost: $([[ $lost == 0 ]] && echo none || echo SOME)."
echo
echo "\`textdrop cleanup\` printed (last round): \`$(cat "$WORK/cleanup.out")\`"
echo

[[ ${BENCH_PARTS:-abc} == *c* ]] || exit 0

# (c) read load during a sweep, against the same load without one.
start_server() { # $1 = CLEANUP_INTERVAL_SECS
  DATABASE_URL=$URL PORT=$PORT SECRET_KEY=$BENCH_SECRET \
    CLEANUP_INTERVAL_SECS=$1 RUST_LOG=info,actix_web=warn,actix_server=warn $BIN serve > "$WORK/server.log" 2>&1 &
  SERVER=$!
  wait_ready "$PORT" "$SERVER" "$WORK/server.log" /healthz
}
stop_server() { stop_pid "$SERVER"; }
p99_ms() { # wrk --latency output on stdin -> p99 in ms
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }'
}
rps() { awk '/Requests\/sec/ { print $2 }'; }
printf 'line %s of the benchmark file\n' $(seq 1 40) > "$WORK/file.txt"
read_load() { # one 15 s wrk run on GET /action with a live session cookie
  curl -s -c "$WORK/jar" -o /dev/null -F "textfile=@$WORK/file.txt" "http://127.0.0.1:$PORT/"
  cookie=$(awk '$6 == "id" { print $7 }' "$WORK/jar")
  wrk -t2 -c32 -d15s --latency -H "Cookie: id=$cookie" "http://127.0.0.1:$PORT/action" > "$WORK/wrk.out"
}

base_p99=(); sweep_p99=(); base_rps=(); sweep_rps=(); sweeps=()
for round in $(seq 1 "$ROUNDS"); do
  seed; start_server 0; read_load; stop_server
  base_p99+=($(p99_ms < "$WORK/wrk.out")); base_rps+=($(rps < "$WORK/wrk.out"))
  # A 20 s interval: the first sweep starts within 2 s of startup, inside the 15 s load.
  seed; start_server 20; read_load; stop_server
  sweep_p99+=($(p99_ms < "$WORK/wrk.out")); sweep_rps+=($(rps < "$WORK/wrk.out"))
  sweeps+=("$(grep -oE 'deleted [0-9]+ expired session\(s\) in [0-9]+ batch\(es\)( \(table walk\))?, [0-9]+ ms' "$WORK/server.log" | head -n 1)")
  [[ $(live_rows) == 10000 ]] || lost=1
done
bp=$(printf '%s\n' "${base_p99[@]}" | median); sp=$(printf '%s\n' "${sweep_p99[@]}" | median)
echo "(c) \`wrk -t2 -c32 -d15s --latency\` on GET /action (one live 40-line session), server with and without a sweep of the 1,000,000 rows during the load:"
echo
echo "| load | p99 per round (ms) | median p99 (ms) | requests/s per round |"
echo "| --- | --- | --- | --- |"
echo "| no cleanup (CLEANUP_INTERVAL_SECS=0) | ${base_p99[*]} | $bp | ${base_rps[*]} |"
echo "| sweeper running | ${sweep_p99[*]} | $sp | ${sweep_rps[*]} |"
echo
echo "Ratio of median p99s: $(awk -v a="$bp" -v b="$sp" 'BEGIN {printf "%.2f", b/a}') (target ≤ 2). Live rows lost: $([[ $lost == 0 ]] && echo none || echo SOME)."
echo
echo "Sweeps logged by the server: "
printf -- '- %s\n' "${sweeps[@]}"
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
