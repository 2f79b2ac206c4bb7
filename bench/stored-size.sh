#!/usr/bin/env bash
# What a file takes as stored (docs/benchmarks.md, "Sealed records"): 1 MiB each of prose,
# source code and an access log (bench/texts.sh), uploaded to textdrop on SQLite; the bytes its
# row's file and state take. BENCH_BASELINE=path/to/another/textdrop adds that binary's row.
# Prints a markdown table. Needs curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source bench/texts.sh
BIN=${BENCH_BIN:-target/release/textdrop}
BASELINE=${BENCH_BASELINE:-}
PORT=${BENCH_PORT:-18931}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
make_texts "$WORK"
for kind in prose source log; do
  head -c 1048576 "$WORK/$kind.all" > "$WORK/$kind.txt"
done

# Uploads the three files to binary $1 on a fresh SQLite database; prints a row per file.
measure() {
  local bin=$1 label=$2 db="$WORK/$2.db"
  DATABASE_URL="sqlite://$db" SECRET_KEY=$BENCH_SECRET PORT=$PORT RUST_LOG=warn \
    "$bin" serve > "$WORK/$label.log" 2>&1 &
  local pid=$!
  wait_ready "$PORT" "$pid" "$WORK/$label.log"
  for kind in prose source log; do
    curl -sf -o /dev/null -F "textfile=@$WORK/$kind.txt" "http://127.0.0.1:$PORT/"
  done
  stop_pid "$pid"
  python3 - "$db" "$label" <<'PY'
import sqlite3, sys
db, label = sys.argv[1], sys.argv[2]
rows = sqlite3.connect(db).execute(
    "SELECT file_bytes, length(CAST(state AS BLOB)) FROM sessions ORDER BY created_at, rowid").fetchall()
for kind, (file_bytes, state) in zip(["prose", "source", "log"], rows):
    print(f"| {label} | {kind} | 1,048,576 | {file_bytes:,} | {file_bytes / 1048576:.3f} | {state} |")
PY
}

echo "| binary | 1 MiB of | file | stored | fraction | state bytes |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
measure "$BIN" "this"
if [[ -n "$BASELINE" ]]; then
  measure "$BASELINE" "baseline"
fi
