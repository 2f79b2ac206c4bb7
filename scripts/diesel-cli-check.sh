#!/usr/bin/env bash
# The operator's path: `diesel migration run` with the repo's diesel.toml on a fresh PostgreSQL
# database, then textdrop on it finds nothing pending and serves. Also proves src/schema.rs is
# what diesel_cli generates (diesel_cli rewrites it on every run).
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${DIESEL_CHECK_PG:-postgres://postgres@127.0.0.1:5432}
DB=textdrop_diesel_cli_check
URL="$PG/$DB"
BIN=${TEXTDROP_BIN:-target/debug/textdrop}

if ! command -v diesel >/dev/null; then
  echo "installing diesel_cli (a few minutes, once per machine)"
  cargo install diesel_cli --no-default-features --features postgres,sqlite --locked --quiet
fi
diesel --version
[[ -x $BIN ]] || cargo build --quiet

psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
trap 'kill $(jobs -p) 2>/dev/null || true; psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT

DATABASE_URL=$URL diesel migration run
git diff --exit-code src/schema.rs || { echo "src/schema.rs differs from diesel print-schema" >&2; exit 1; }
pending=$(DATABASE_URL=$URL diesel migration pending)
echo "diesel migration pending: $pending"
[[ $pending == *false* ]]

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
DATABASE_URL=$URL PORT=$port RUST_LOG=info $BIN serve > "$log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null
if grep -q 'applied migration' "$log"; then
  echo "textdrop applied migrations that diesel_cli had already run:" >&2; cat "$log" >&2; exit 1
fi
curl -sf -o /dev/null -F "textfile=@README.md" "http://127.0.0.1:$port/"
kill -TERM "$server"; wait "$server"
echo "diesel migration run: OK (nothing pending for textdrop, schema.rs unchanged, app serves)"
