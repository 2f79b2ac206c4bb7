#!/usr/bin/env bash
# What /action costs on big files, highlighted or not (docs/benchmarks.md, "The file viewer"):
# wrk's p50 and p99 for the first page of a 100,000-line Rust file and of a 10 MB file of one
# line (a minified script), each as the page shows it by default (past the highlighting budget:
# plain) and with ?lang= asking for highlighting; then a Rust file at the budget (64 KiB), its
# first and last page (a first view of the last costs every line before it; later ones resume
# at the page's start). The first view's time (one request, curl), then wrk with one connection
# (the service time) and four (two cores busy). Needs wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
BIN=${BENCH_BIN:-target/release/textdrop}
PORT=${BENCH_PORT:-18932}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"1 4"}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
with open(f"{work}/lines100k.rs", "w") as f:
    for n in range(100_000):
        f.write(f'    let value_{n} = compute({n}, "text {n}"); // step {n}\n')
with open(f"{work}/oneline.min.js", "w") as f:
    part = 'function f(a){return a.map(function(x){return x*2+"s"})};var o={k:"v",n:1};'
    f.write((part * (10_000_000 // len(part) + 1))[:10_000_000])
with open(f"{work}/budget.rs", "w") as f:
    source = open("src/routes/paging.rs").read()
    f.write((source * (65_536 // len(source) + 1))[:65_000].rsplit("\n", 1)[0] + "\n")
PY

DATABASE_URL="sqlite://$WORK/viewer.db" SECRET_KEY=$BENCH_SECRET PORT=$PORT RUST_LOG=warn \
  MAX_UPLOAD_BYTES=16777216 UPLOAD_BUFFER_BYTES=33554432 UPLOADS_PER_MINUTE=0 VIEW_BYTES_PER_MINUTE=0 MAX_STORED_BYTES=0 \
  CLEANUP_INTERVAL_SECS=0 "$BIN" serve > "$WORK/server.log" 2>&1 &
pid=$!
wait_ready "$PORT" "$pid" "$WORK/server.log"

# wrk's p50 and p99 (ms) and requests/s for path $2 with cookie $1 over $3 connections.
measure() {
  local out
  out=$(wrk -t1 -c"$3" -d"$DURATION" --latency -H "Cookie: id=$1" "http://127.0.0.1:$PORT$2")
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{ms('50'):.2f} | {ms('99'):.2f} | {float(rate):,.0f} | {bad.group(1) if bad else 0}")
PY
}

echo "| file | page | first view ms | connections | p50 ms | p99 ms | req/s | non-2xx |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for file in lines100k.rs oneline.min.js budget.rs; do
  cookie=$(new_session_on "$PORT" "$WORK/$file")
  case $file in
    lines100k.rs) pages=("/action" "/action?lang=Rust") ;;
    oneline.min.js) pages=("/action" "/action?lang=JavaScript") ;;
    budget.rs)
      last=$(curl -s -H "Cookie: id=$cookie" "http://127.0.0.1:$PORT/action" |
        sed -n 's/.*page 1 of \([0-9]*\)\..*/\1/p' | head -n 1)
      pages=("/action" "/action?page=${last:-1}" "/action?lang=plain&page=${last:-1}") ;;
  esac
  for page in "${pages[@]}"; do
    # One request first, as a visitor's first view: it builds and caches the page index (and
    # the grammar's states at page starts); its time is the first view's.
    first=$(curl -s -o /dev/null -w '%{time_total}' -H "Cookie: id=$cookie" \
      "http://127.0.0.1:$PORT$page" | awk '{ printf "%.1f", $1 * 1000 }')
    for c in $CONNECTIONS; do
      echo "| $file | \`$page\` | $first | $c | $(measure "$cookie" "$page" "$c") |"
    done
  done
done
stop_pid "$pid"
