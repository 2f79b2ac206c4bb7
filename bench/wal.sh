#!/usr/bin/env bash
# What one upload into an existing session writes to the database's log, in one run
# (docs/benchmarks.md "What an upload writes"):
#   PostgreSQL: WAL bytes (pg_current_wal_lsn before and after), records and full-page images
#     by resource manager (pg_walinspect), and the rows inserted, updated (HOT or not) and
#     deleted (pg_stat_user_tables);
#   MariaDB/MySQL: InnoDB redo bytes (Innodb_lsn_current) and rows (Handler_write, _update,
#     _delete: the server's row operations).
# Systems: textdrop on PostgreSQL and on MariaDB, tower-sessions-sqlx-store's upsert on
# PostgreSQL (bench/peers/tower-pg), and with BENCH_BASELINE=path/to/another/textdrop that
# binary on both, for before/after figures in one run.
# BENCH_SYSTEMS picks some of them (space-separated: postgres base_postgres tower mysql
# base_mysql). Each system: SESSIONS sessions, a warm-up of UPLOADS uploads (after a CHECKPOINT, so the
# measured ones pay no first-touch full-page images), then UPLOADS measured uploads, each into
# the next session in turn with a 2.5 KB / 40-line file whose first line differs
# (bench/uploads.py, one keep-alive connection). Run it on an otherwise idle server: the WAL and
# redo positions are the whole server's.
# Needs psql, mariadb, curl, python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

UPLOADS=${UPLOADS:-1000}
SESSIONS=${SESSIONS:-32}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
BIN=${BENCH_BIN:-target/release/textdrop}
BASELINE=${BENCH_BASELINE:-}
TOWER=bench/peers/tower-pg/target/release/peer-tower-pg
WORK=$(mktemp -d)
PGDBS="textdrop_wal textdrop_wal_base textdrop_wal_tower"
MYDBS="textdrop_wal textdrop_wal_base"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for db in $PGDBS; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  for db in $MYDBS; do mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet --locked
(cd bench/peers/tower-pg && cargo build --release --quiet --locked)
printf 'line %02d of the benchmark file: the quick brown fox jumps over\n' $(seq 1 40) > "$WORK/file.txt"

DEFAULT_SYSTEMS="postgres tower mysql"
[[ -n $BASELINE ]] && DEFAULT_SYSTEMS="postgres base_postgres tower mysql base_mysql"
read -r -a SYSTEMS <<< "${BENCH_SYSTEMS:-$DEFAULT_SYSTEMS}"

psql_at() { psql -qAt "$PG/$1" -c "$2"; }
my_status() { mariadb -h 127.0.0.1 -u root -N -e "SHOW GLOBAL STATUS LIKE '$1'" | awk '{ print $2 }'; }
pg_rows() { # $1 database -> "inserted updated hot deleted" of its sessions table (tower's: tower_sessions.session)
  psql_at "$1" "SELECT coalesce(sum(n_tup_ins), 0) || ' ' || coalesce(sum(n_tup_upd), 0) || ' ' || coalesce(sum(n_tup_hot_upd), 0) || ' ' || coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables WHERE relname IN ('sessions', 'session')"
}
my_rows() { echo "$(my_status Handler_write) $(my_status Handler_update) - $(my_status Handler_delete)"; }

measure() { # $1 system
  local sys=$1 db port=18140 url bin=$BIN pid
  case $sys in
    postgres) db=textdrop_wal; url="$PG/$db" ;;
    base_postgres) db=textdrop_wal_base; url="$PG/$db"; bin=$BASELINE ;;
    tower) db=textdrop_wal_tower; url="$PG/$db" ;;
    mysql) db=textdrop_wal; url="$MYSQL/$db" ;;
    base_mysql) db=textdrop_wal_base; url="$MYSQL/$db"; bin=$BASELINE ;;
  esac
  case $sys in
    *mysql) mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db" ;;
    *) psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null ;;
  esac
  start_server() {
    if [[ $sys == tower ]]; then
      DATABASE_URL=$url PORT=$port $TOWER >> "$WORK/$sys.log" 2>&1 &
    else
      env SECRET_KEY=$BENCH_SECRET CLEANUP_INTERVAL_SECS=0 UPLOADS_PER_MINUTE=0 MAX_STORED_BYTES=0 \
        DATABASE_URL=$url PORT=$port "$bin" serve >> "$WORK/$sys.log" 2>&1 &
    fi
    pid=$!
    wait_ready "$port" "$pid" "$WORK/$sys.log"
  }
  start_server
  : > "$WORK/cookies"
  for _ in $(seq 1 "$SESSIONS"); do new_session_on "$port" "$WORK/file.txt" >> "$WORK/cookies"; done
  case $sys in *mysql) ;; *) psql -q "$PG/postgres" -c "CHECKPOINT" ;; esac
  python3 bench/uploads.py "$port" "$WORK/cookies" "$UPLOADS" "$WORK/file.txt"
  # A stopped server's connections have flushed their row counts (PostgreSQL's statistics
  # are sent when a connection is idle or closes): count rows across a restart.
  stop_pid "$pid"
  local before after rows_before rows_after start_lsn end_lsn
  sleep 0.5
  case $sys in *mysql) rows_before=$(my_rows) ;; *) rows_before=$(pg_rows "$db") ;; esac
  start_server
  case $sys in
    *mysql)
      before=$(my_status Innodb_lsn_current)
      python3 bench/uploads.py "$port" "$WORK/cookies" "$UPLOADS" "$WORK/file.txt"
      after=$(my_status Innodb_lsn_current)
      stop_pid "$pid"; rows_after=$(my_rows)
      echo "$sys redo $(( (after - before) / UPLOADS )) rows $rows_before / $rows_after" >> "$WORK/results"
      ;;
    *)
      start_lsn=$(psql_at postgres "SELECT pg_current_wal_lsn()")
      python3 bench/uploads.py "$port" "$WORK/cookies" "$UPLOADS" "$WORK/file.txt"
      end_lsn=$(psql_at postgres "SELECT pg_current_wal_lsn()")
      stop_pid "$pid"; sleep 0.5; rows_after=$(pg_rows "$db")
      echo "$sys wal $(psql_at postgres "SELECT pg_wal_lsn_diff('$end_lsn', '$start_lsn')::bigint / $UPLOADS") rows $rows_before / $rows_after" >> "$WORK/results"
      psql_at postgres "SELECT '$sys', \"resource_manager/record_type\", count, record_size, fpi_size FROM pg_get_wal_stats('$start_lsn', '$end_lsn', true) WHERE count > 0" >> "$WORK/rmgr"
      ;;
  esac
}

psql -q "$PG/postgres" -c "CREATE EXTENSION IF NOT EXISTS pg_walinspect" >/dev/null
for sys in "${SYSTEMS[@]}"; do measure "$sys"; done

touch "$WORK/rmgr"
python3 - "$WORK/results" "$WORK/rmgr" "$UPLOADS" "$SESSIONS" <<'PY'
import sys
results, rmgr, n, sessions = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
print(f"{n} uploads over {sessions} sessions, after as many as a warm-up.\n")
print("| system | log bytes / upload | rows inserted / updated (HOT) / deleted per upload |")
print("|---|---:|---|")
for line in open(results):
    f = line.split()
    sys_, kind, per = f[0], f[1], int(f[2])
    before, after = f[4:8], f[9:13]
    def d(i):
        if before[i] == "-":
            return "-"
        return f"{(int(after[i]) - int(before[i])) / n:.2f}"
    log = "WAL" if kind == "wal" else "redo"
    print(f"| {sys_} | {per:,} ({log}) | {d(0)} / {d(1)} ({d(2)}) / {d(3)} |")
print("\nPostgreSQL WAL by resource manager, per upload (records, record bytes, full-page image bytes):\n")
print("| system | resource manager | records | bytes | FPI bytes |")
print("|---|---|---:|---:|---:|")
for line in open(rmgr):
    s, r, count, size, fpi = line.strip().split("|")
    print(f"| {s} | {r} | {int(count) / n:.2f} | {int(size) / n:,.0f} | {int(fpi) / n:,.0f} |")
PY
