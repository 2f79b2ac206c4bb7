#!/usr/bin/env bash
# The operator's path: `diesel migration run` on a fresh database, then textdrop on it finds
# nothing pending and serves. PostgreSQL with the repo's diesel.toml (which also proves
# crates/actix-session-stores/src/schema.rs is what diesel_cli generates: it rewrites it on every run), then MySQL/MariaDB
# with diesel.mysql.toml (the migrations_mysql/ folder; it leaves crates/actix-session-stores/src/schema.rs alone).
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${DIESEL_CHECK_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${DIESEL_CHECK_MYSQL:-mysql://root@127.0.0.1:3306}
DB=textdrop_diesel_cli_check
BIN=${TEXTDROP_BIN:-target/debug/textdrop}

# diesel_cli with its PostgreSQL, MySQL and SQLite client libraries built from source (the
# `*-bundled` features: cmake and a C++ compiler, no libpq-dev or libmariadb-dev), like
# textdrop itself needs no C client (cargo records an installed crate's features).
if ! command -v diesel >/dev/null || ! grep -q '"mysql-bundled"' "${CARGO_HOME:-$HOME/.cargo}/.crates2.json" 2>/dev/null; then
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
  echo "installing diesel_cli (about 7 minutes on 2 cores, once per machine)"
  # The README's one install line (with --quiet --force).
  cargo install diesel_cli --version 2.3.14 --locked --no-default-features --features postgres-bundled,mysql-bundled,sqlite-bundled --quiet --force
fi
diesel --version
[[ -x $BIN ]] || cargo build --quiet

drop_all() {
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $DB" || true
}
trap 'kill $(jobs -p) 2>/dev/null || true; drop_all' EXIT
drop_all
psql -q "$PG/postgres" -c "CREATE DATABASE $DB"
mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE $DB"

# textdrop on URL finds nothing pending and serves an upload.
serve_without_migrating() { # $1 label, $2 URL
  local port log server
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp)
  DATABASE_URL=$2 PORT=$port RUST_LOG=info $BIN serve > "$log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$log" >&2; exit 1; }
  if grep -q 'applied migration' "$log"; then
    echo "$1: textdrop applied migrations that diesel_cli had already run:" >&2; cat "$log" >&2; exit 1
  fi
  curl -sf -o /dev/null -F "textfile=@README.md" "http://127.0.0.1:$port/"
  kill -TERM "$server"; wait "$server"
  echo "$1: diesel migration run: OK (nothing pending for textdrop, app serves)"
}

URL="$PG/$DB"
DATABASE_URL=$URL diesel migration run
git diff --exit-code crates/actix-session-stores/src/schema.rs || { echo "crates/actix-session-stores/src/schema.rs differs from diesel print-schema" >&2; exit 1; }
pending=$(DATABASE_URL=$URL diesel migration pending)
echo "PostgreSQL: diesel migration pending: $pending"
[[ $pending == *false* ]]
serve_without_migrating PostgreSQL "$URL"

URL="$MYSQL/$DB"
DATABASE_URL=$URL diesel --config-file diesel.mysql.toml migration run
git diff --exit-code crates/actix-session-stores/src/schema.rs || { echo "diesel.mysql.toml rewrote crates/actix-session-stores/src/schema.rs" >&2; exit 1; }
pending=$(DATABASE_URL=$URL diesel --config-file diesel.mysql.toml migration pending)
echo "MySQL: diesel migration pending: $pending"
[[ $pending == *false* ]]
serve_without_migrating MySQL "$URL"
