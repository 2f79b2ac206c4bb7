#!/usr/bin/env bash
# An abuse benchmark (see docs/benchmarks.md): one client uploads 1 MiB files as fast as it can
# for DURATION while 32 readers read a 40-line file, against the release binary with its
# default limits (UPLOADS_PER_MINUTE=30, MAX_STORED_BYTES=1 GiB). Each round measures the
# readers alone, then with the flood, on SQLite and on PostgreSQL; a last run lifts the rate
# limit (UPLOADS_PER_MINUTE=0) with a 256 MiB cap to show the cap holding alone.
# Reports, per cell: the readers' requests/s and p99, the flooder's answers (303 stored,
# 429 limited, 507 full), the bytes stored against the cap, the database on disk and the
# server's peak RSS.
# Then the connection attacks (bench/attacks/connections.py, from 127.0.0.2) on SQLite, against
# this binary and, with BENCH_BASELINE=path, another one: a slowloris that sends one whole
# request and half of a second head on 1,024 connections, and 64 connections pipelining
# requests without ever reading; each measures the readers alone and under the attack (their
# requests/s, p99 and socket errors), the connections the attacker held and the server's peak
# RSS. Then the viewer attack, on SQLite and PostgreSQL, against this binary and the baseline:
# one client (127.0.0.1) keeps 64 connections asking `/action?line=9999999` of its 1 MiB file of
# 524,288 short lines (wrk -t2 -c64), while another visitor (127.0.0.2, bench/attacks/visitor.py)
# reads its own 10-line page back to back and asks /readyz every 500 ms; the visitor is measured
# on the idle server first. ABUSE_PARTS picks the parts ("flood connections viewer", the
# default, or some of them).
# Needs wrk, psql, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30s}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BIN=target/release/textdrop
BASELINE=${BENCH_BASELINE:-}
PARTS=${ABUSE_PARTS:-flood connections viewer}
VIEW_DURATION=${VIEW_DURATION:-15s}
CONN_DURATION=${CONN_DURATION:-15s}
WORK=$(mktemp -d)
PORT=18201
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
for tool in wrk psql curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release --quiet

printf 'line %02d of the benchmark file: the quick brown fox jumps over\n' $(seq 1 40) > "$WORK/small.txt"
python3 -c "import sys; sys.stdout.write(('flood line of 32 bytes of text.\n') * 32768)" > "$WORK/big.txt"
{
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="textfile"; filename="flood.txt"\r\n'
  printf 'Content-Type: text/plain\r\n\r\n'
  cat "$WORK/big.txt"
  printf -- '\r\n--XyZ--\r\n'
} > "$WORK/flood.bin"

cat > "$WORK/read.lua" <<'LUA'
wrk.headers["Cookie"] = os.getenv("TD_COOKIE")
local threads = {}
function setup(t) table.insert(threads, t) end
function init(args) wrong = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "line 40 of the benchmark file", 1, true) then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do w = w + t:get("wrong") end
  local e = summary.errors
  io.write(string.format("READERS rps=%.1f p99=%.3f wrong=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, w,
    e.connect + e.read + e.write + e.timeout))
end
LUA
cat > "$WORK/flood.lua" <<'LUA'
local f = io.open(os.getenv("TD_WORK") .. "/flood.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=XyZ"
local threads = {}
function setup(t) table.insert(threads, t) end
function init(args) s303 = 0; s429 = 0; s507 = 0; other = 0 end
function response(status, headers, body)
  if status == 303 then s303 = s303 + 1 elseif status == 429 then s429 = s429 + 1
  elseif status == 507 then s507 = s507 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("s303"); b = b + t:get("s429"); c = c + t:get("s507"); d = d + t:get("other") end
  io.write(string.format("FLOOD requests=%d s303=%d s429=%d s507=%d other=%d\n", summary.requests, a, b, c, d))
end
LUA

declare -A URL
start() { # $1 system, then extra VAR=value settings
  local sys=$1; shift
  case $sys in
    sqlite) rm -f "$WORK"/abuse.db*; URL[$sys]="sqlite://$WORK/abuse.db" ;;
    postgres)
      psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS textdrop_abuse WITH (FORCE)" -c "CREATE DATABASE textdrop_abuse" >/dev/null 2>&1
      URL[$sys]="$PG/textdrop_abuse" ;;
  esac
  env DATABASE_URL="${URL[$sys]}" PORT=$PORT SECRET_KEY=$BENCH_SECRET \
    RUST_LOG=warn "$@" "${CELL_BIN:-$BIN}" serve > "$WORK/server.log" 2>&1 &
  PID=$!
  wait_ready "$PORT" "$PID" "$WORK/server.log"
}
stop() { stop_pid "$PID"; }
reader_cookie() {
  local jar="$WORK/jar"
  curl -s -c "$jar" -o /dev/null -F "textfile=@$WORK/small.txt" "http://127.0.0.1:$PORT/"
  awk '$6 == "id" { print "id=" $7 }' "$jar"
}
stored_bytes() { # $1 system
  case $1 in
    sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select coalesce(sum(file_bytes),0) from sessions').fetchone()[0])" "$WORK/abuse.db" ;;
    postgres) psql -qAt "${URL[postgres]}" -c "SELECT coalesce(sum(file_bytes), 0) FROM sessions" ;;
  esac
}
on_disk() { # $1 system
  case $1 in
    sqlite) du -cb "$WORK"/abuse.db* | awk 'END { print $1 }' ;;
    postgres) psql -qAt "${URL[postgres]}" -c "SELECT pg_total_relation_size('sessions')" ;;
  esac
}
cell() { # $1 round, $2 system, $3 label, then extra settings
  local round=$1 sys=$2 label=$3; shift 3
  start "$sys" "$@"
  local cookie; cookie=$(reader_cookie)
  TD_COOKIE=$cookie wrk -t2 -c32 -d3s -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" >/dev/null
  TD_COOKIE=$cookie wrk -t2 -c32 -d"$DURATION" -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" > "$WORK/alone.out"
  TD_WORK=$WORK wrk -t1 -c1 -d"$DURATION" -s "$WORK/flood.lua" "http://127.0.0.1:$PORT/" > "$WORK/flood.out" &
  local flooder=$!
  TD_COOKIE=$cookie wrk -t2 -c32 -d"$DURATION" -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" > "$WORK/flooded.out"
  wait "$flooder"
  sleep 3 # one cap measurement later
  local rss; rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
  echo "$round $sys $label alone $(grep READERS "$WORK/alone.out" | cut -d' ' -f2-)" >> "$WORK/results"
  echo "$round $sys $label flooded $(grep READERS "$WORK/flooded.out" | cut -d' ' -f2-) $(grep FLOOD "$WORK/flood.out" | cut -d' ' -f2-) stored=$(stored_bytes "$sys") disk=$(on_disk "$sys") rss=$rss" >> "$WORK/results"
  stop
}

: > "$WORK/results"
if [[ " $PARTS " == *" flood "* ]]; then
for round in $(seq 1 "$ROUNDS"); do
  for sys in sqlite postgres; do cell "$round" "$sys" defaults; done
done
cell 1 sqlite "no rate limit, 256 MiB cap" UPLOADS_PER_MINUTE=0 MAX_STORED_BYTES=268435456
fi

# One connection attack against one binary on SQLite, with its default limits.
conn_cell() { # $1 attack, $2 label, $3 binary
  local attack=$1 label=$2
  CELL_BIN=$3 start sqlite
  local cookie; cookie=$(reader_cookie)
  TD_COOKIE=$cookie wrk -t2 -c32 -d3s -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" >/dev/null
  TD_COOKIE=$cookie wrk -t2 -c32 -d"$CONN_DURATION" --timeout 5s -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" > "$WORK/alone.out"
  python3 bench/attacks/connections.py "$attack" "$PORT" "$(( ${CONN_DURATION%s} + 3 ))" > "$WORK/attack.out" &
  local attacker=$!
  sleep 2
  TD_COOKIE=$cookie wrk -t2 -c32 -d"$CONN_DURATION" --timeout 5s -s "$WORK/read.lua" "http://127.0.0.1:$PORT/action" > "$WORK/attacked.out"
  wait "$attacker"
  local rss; rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
  echo "$attack $label alone $(grep READERS "$WORK/alone.out" | cut -d' ' -f2-)" >> "$WORK/conn_results"
  echo "$attack $label attacked $(grep READERS "$WORK/attacked.out" | cut -d' ' -f2-) $(grep ATTACK "$WORK/attack.out" | cut -d' ' -f2-) rss=$rss" >> "$WORK/conn_results"
  stop
}
: > "$WORK/conn_results"
if [[ " $PARTS " == *" connections "* ]]; then
  for attack in slowloris pipeline; do
    conn_cell "$attack" this "$BIN"
    [[ -n $BASELINE ]] && conn_cell "$attack" baseline "$BASELINE"
  done
fi

# The viewer attack against one binary on one storage, with its default limits.
python3 -c "import sys; sys.stdout.write('x\\n' * 524288)" > "$WORK/lines.txt"
printf 'visitor line %02d\n' $(seq 1 10) > "$WORK/visitor.txt"
view_cell() { # $1 system, $2 label, $3 binary
  local sys=$1 label=$2
  CELL_BIN=$3 start "$sys"
  local attacker visitor
  attacker=$(new_session_on "$PORT" "$WORK/lines.txt")
  visitor=$(new_session_on "$PORT" "$WORK/visitor.txt")
  python3 bench/attacks/visitor.py "$PORT" "id=$visitor" "${VIEW_DURATION%s}" > "$WORK/idle.out"
  wrk -t2 -c64 -d"$(( ${VIEW_DURATION%s} + 4 ))s" --timeout 10s -H "Cookie: id=$attacker" \
    "http://127.0.0.1:$PORT/action?line=9999999" > "$WORK/viewer_attack.out" &
  local wrk_pid=$!
  sleep 2
  python3 bench/attacks/visitor.py "$PORT" "id=$visitor" "${VIEW_DURATION%s}" > "$WORK/attacked_visitor.out"
  wait "$wrk_pid"
  local attack_rps; attack_rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/viewer_attack.out")
  local attack_non2xx; attack_non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/viewer_attack.out")
  kill -0 "$PID" 2>/dev/null || { echo "the $label server on $sys died:" >&2; tail -n 20 "$WORK/server.log" >&2; }
  echo "$sys $label idle $(grep VISITOR "$WORK/idle.out" | cut -d' ' -f2-)" >> "$WORK/view_results"
  echo "$sys $label attacked $(grep VISITOR "$WORK/attacked_visitor.out" | cut -d' ' -f2-) attack_rps=${attack_rps:-0} attack_non2xx=${attack_non2xx:-0} rss=$(peak_rss_mib "$PID")" >> "$WORK/view_results"
  stop
}
: > "$WORK/view_results"
if [[ " $PARTS " == *" viewer "* ]]; then
  for sys in sqlite postgres; do
    view_cell "$sys" this "$BIN"
    [[ -n $BASELINE ]] && view_cell "$sys" baseline "$BASELINE"
  done
fi

[[ -s "$WORK/results" ]] && python3 - "$WORK/results" "$ROUNDS" "$DURATION" <<'PY'
import collections, datetime, os, statistics, sys
path, rounds, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cells = collections.defaultdict(list)
for line in open(path):
    parts = line.split()
    rnd, system, rest = parts[0], parts[1], parts[2:]
    phase_at = rest.index("alone") if "alone" in rest else rest.index("flooded")
    label, phase = " ".join(rest[:phase_at]), rest[phase_at]
    cells[(system, label, phase)].append(dict(p.split("=", 1) for p in rest[phase_at + 1:]))
def med(key, runs):
    return statistics.median(float(r[key]) for r in runs)
print(f"## Abuse: one client flooding uploads while 32 readers read\n")
print(f"Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; release build. Readers: "
      f"wrk -t2 -c32 GET /action of a 40-line file; flooder: wrk -t1 -c1 POST / of a 1 MiB file, back to back; "
      f"{duration} each; medians of {rounds} rounds (1 round for the last row). Command: `bash bench/bench-abuse.sh`.\n")
print("| storage | limits | readers req/s alone | with flood | readers p99 ms alone | with flood | p99 ratio | flood answers (303 / 429 / 507 / other) | bytes stored (cap) | on disk | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (system, label, phase), runs in sorted(cells.items()):
    if phase != "flooded":
        continue
    alone = cells[(system, label, "alone")]
    cap = 268435456 if "256" in label else 1073741824
    answers = " / ".join(str(int(med(k, runs))) for k in ("s303", "s429", "s507", "other"))
    print(f"| {system} | {label} | {med('rps', alone):.0f} | {med('rps', runs):.0f} | {med('p99', alone):.2f} | "
          f"{med('p99', runs):.2f} | {med('p99', runs) / med('p99', alone):.2f}x | {answers} | "
          f"{med('stored', runs) / 2**20:.0f} MiB ({cap / 2**20:.0f} MiB) | {med('disk', runs) / 2**20:.0f} MiB | "
          f"{max(float(r['rss']) for r in runs):.1f} |")
wrong = sum(int(r.get("wrong", 0)) for runs in cells.values() for r in runs)
print(f"\nWrong reader bodies in all cells: {wrong}.")
PY

[[ -s "$WORK/conn_results" ]] && python3 - "$WORK/conn_results" "$CONN_DURATION" "$BASELINE" <<'PY'
import datetime, os, sys
path, duration, baseline = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    attack, label, phase, *rest = line.split()
    rows[(attack, label, phase)] = dict(p.split("=", 1) for p in rest)
print("\n## Abuse: hostile connections while 32 readers read\n")
print(f"Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; release builds on SQLite with their "
      f"default limits. Readers: wrk -t2 -c32 --timeout 5s GET /action of a 40-line file from 127.0.0.1, {duration} alone, "
      f"then {duration} under the attack (bench/attacks/connections.py from 127.0.0.2, started 2 s before). "
      f"Baseline: {baseline or 'none'}. Command: `bash bench/bench-abuse.sh` (ABUSE_PARTS=connections for this part).\n")
print("| attack | binary | readers req/s alone | under attack | p99 ms alone | under attack | reader errors under attack | attacker's connections held (most at once, at the end) | closed by the server | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (attack, label, phase), run in sorted(rows.items()):
    if phase != "attacked":
        continue
    alone = rows[(attack, label, "alone")]
    print(f"| {attack} | {label} | {float(alone['rps']):.0f} | {float(run['rps']):.0f} | {float(alone['p99']):.2f} | "
          f"{float(run['p99']):.2f} | {run['errors']} | {run['held_max']}, {run['held_end']} | {run['closed']} | {run['rss']} |")
PY

[[ -s "$WORK/view_results" ]] && python3 - "$WORK/view_results" "$VIEW_DURATION" "$BASELINE" <<'PY'
import datetime, os, sys
path, duration, baseline = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    system, label, phase, *rest = line.split()
    rows[(system, label, phase)] = dict(p.split("=", 1) for p in rest)
print("\n## Abuse: the viewer attack\n")
print(f"Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; release builds with their default "
      f"limits. Attacker: wrk -t2 -c64 GET `/action?line=9999999` of its 1 MiB file of 524,288 lines from 127.0.0.1. "
      f"Other visitor: bench/attacks/visitor.py from 127.0.0.2, its 10-line page back to back on one connection and "
      f"/readyz every 500 ms, {duration} on the idle server, then {duration} under the attack. Baseline: "
      f"{baseline or 'none'}. Command: `ABUSE_PARTS=viewer bash bench/bench-abuse.sh`.\n")
print("| storage | binary | visitor p50 ms idle | p99 idle | p50 under attack | p99 under attack | p99 ratio | visitor failures | /readyz 200 / not 200 under attack | attacker req/s (non-2xx) | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (system, label, phase), run in sorted(rows.items()):
    if phase != "attacked":
        continue
    idle = rows[(system, label, "idle")]
    ratio = float(run["p99"]) / max(float(idle["p99"]), 0.001)
    print(f"| {system} | {label} | {float(idle['p50']):.2f} | {float(idle['p99']):.2f} | {float(run['p50']):.2f} | "
          f"{float(run['p99']):.2f} | {ratio:.2f}x | {run['failed']} | {run['ready']} / {run['not_ready']} | "
          f"{float(run['attack_rps']):.0f} ({run['attack_non2xx']}) | {run['rss']} |")
PY
true
