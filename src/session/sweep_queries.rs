//! The sweeper's SQL: a batch of expired rows through the `expires_at` index, a step of a table
//! walk (PostgreSQL), both under the sweeper lock, and giving SQLite's freed pages back. Raw
//! SQL as named constants, so tests EXPLAIN exactly what is sent. These functions block.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use crate::db::{named_lock, DbConnection};
use crate::session::lease;

/// How long a lease is taken for, in the app's clock.
pub type Duration = chrono::Duration;

/// Key of the transaction-scoped advisory lock that lets one sweeper at a time delete on a
/// shared PostgreSQL database.
pub const SWEEPER_LOCK_KEY: i64 = 0x7464_7377_6565_7072; // "tdsweepr"

diesel::define_sql_function! {
    /// PostgreSQL: take a transaction-scoped advisory lock if free, without waiting.
    fn pg_try_advisory_xact_lock(key: BigInt) -> Bool;
}

/// PostgreSQL: one index batch. `$1` = now, `$2` = the batch size.
pub const PG_DELETE_BATCH: &str = "DELETE FROM sessions WHERE ctid = ANY(ARRAY(SELECT ctid \
     FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))";

/// SQLite: one index batch. Parameters: now, then the batch size.
pub const SQLITE_DELETE_BATCH: &str = "DELETE FROM sessions WHERE rowid IN (SELECT rowid \
     FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)";

/// PostgreSQL: one step of a table walk. `$1..$2` = heap blocks, `$3` = now.
pub const PG_DELETE_BLOCK_RANGE: &str = "DELETE FROM sessions \
     WHERE ctid >= ('(' || $1 || ',0)')::tid AND ctid < ('(' || $2 || ',0)')::tid \
     AND expires_at <= $3";

/// Settings for a walk step's transaction. The planner would pick the `expires_at` index
/// whenever its statistics say few rows expired, and then walk the whole expired part of the
/// index for every range.
pub const PG_BLOCK_RANGE_SETTINGS: &str =
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off";

/// MySQL: one index batch (MySQL has `DELETE … ORDER BY … LIMIT`). Parameters: now, then the
/// batch size.
pub const MYSQL_DELETE_BATCH: &str =
    "DELETE FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?";

/// MySQL: the named lock ([`named_lock`]) that elects one sweeper at a time.
pub const MYSQL_SWEEPER_LOCK: &str = "textdrop_sweeper";

/// Portable mode: one index batch by primary key, no ctid. `$1` = now, `$2` = the batch size.
pub const PORTABLE_DELETE_BATCH: &str = "DELETE FROM sessions WHERE id IN (SELECT id \
     FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";

/// Deletes at most `limit` rows that expired at or before `now`, in one short transaction.
/// Returns `None` when another sweeper holds the lock (PostgreSQL) or the lease (portable
/// mode, when `lease` says how long this batch takes it for): the caller skips or stops.
///
/// Neither backend has `DELETE … LIMIT`, so the batch is chosen by a subquery that walks the
/// `expires_at` index: on the ctid on PostgreSQL, under a transaction-scoped advisory lock so
/// several instances never sweep at once; on the rowid on SQLite, where the database allows one
/// writer anyway. Raw SQL, since the placeholders differ.
pub fn delete_expired_batch(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
    lease: Option<(lease::Holder, Duration)>,
) -> QueryResult<Option<usize>> {
    match (conn, lease) {
        (DbConnection::Postgres(pg), Some((holder, lease_for))) => {
            let until = now + lease_for;
            pg.transaction(|pg| {
                if !lease::take(pg, lease::SWEEPER, holder, now, until)? {
                    return Ok(None);
                }
                diesel::sql_query(PORTABLE_DELETE_BATCH)
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(limit)
                    .execute(pg)
                    .map(Some)
            })
        }
        // `= ANY(ARRAY(…))` of ctids makes a TID scan: with `id IN (…)` the planner may pick a
        // hash join over a sequential scan of the whole table, once per batch. No row lock is
        // needed: the advisory lock keeps other sweepers out, and a row the app updates
        // meanwhile gets a new ctid, so the re-check skips it and it stays.
        (DbConnection::Postgres(pg), None) => sweeper_transaction(pg, "", |pg| {
            diesel::sql_query(PG_DELETE_BATCH)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .execute(pg)
        }),
        (DbConnection::Mysql(mysql), _) => mysql_batch(mysql, now, limit),
        (DbConnection::Sqlite(sqlite), _) => diesel::sql_query(SQLITE_DELETE_BATCH)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .execute(sqlite)
            .map(Some),
    }
}

/// MySQL: one batch under the named sweeper lock, taken without waiting (`GET_LOCK(…, 0)`) and
/// given back after the batch, so the pooled connection never keeps it. The DELETE commits on
/// its own.
fn mysql_batch(
    mysql: &mut MysqlConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Option<usize>> {
    if !named_lock::try_lock(mysql, MYSQL_SWEEPER_LOCK, std::time::Duration::ZERO)? {
        return Ok(None);
    }
    let deleted = diesel::sql_query(MYSQL_DELETE_BATCH)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .execute(mysql);
    let released = named_lock::release(mysql, MYSQL_SWEEPER_LOCK);
    let deleted = deleted?;
    released?;
    Ok(Some(deleted))
}

#[derive(QueryableByName)]
struct FreePages {
    #[diesel(sql_type = BigInt)]
    freelist_count: i64,
}

/// SQLite: returns up to `pages` free pages to the file system (incremental auto-vacuum, one
/// short write) and says how many free pages are left.
pub fn sqlite_reclaim(conn: &mut DbConnection, pages: i64) -> QueryResult<i64> {
    conn.batch_execute(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let DbConnection::Sqlite(sqlite) = conn else {
        return Ok(0);
    };
    let FreePages { freelist_count } =
        diesel::sql_query("PRAGMA freelist_count").get_result(sqlite)?;
    Ok(freelist_count)
}

/// SQLite: writes the write-ahead log back into the database and truncates it to nothing.
pub fn sqlite_truncate_wal(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
}

/// PostgreSQL: deletes the rows that expired at or before `now` among those stored in heap
/// blocks `first..end`, in one short transaction (a TID range scan: one sequential pass over
/// those blocks, no index). Returns `None` when another sweeper holds the lock.
pub fn delete_expired_in_blocks(
    pg: &mut PgConnection,
    now: NaiveDateTime,
    first: i64,
    end: i64,
) -> QueryResult<Option<usize>> {
    sweeper_transaction(pg, PG_BLOCK_RANGE_SETTINGS, |pg| {
        diesel::sql_query(PG_DELETE_BLOCK_RANGE)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<Timestamp, _>(now)
            .execute(pg)
    })
}

/// Runs one sweeper batch in its own transaction, if this connection gets the sweeper lock.
fn sweeper_transaction(
    pg: &mut PgConnection,
    settings: &str,
    batch: impl FnOnce(&mut PgConnection) -> QueryResult<usize>,
) -> QueryResult<Option<usize>> {
    pg.transaction(|pg| {
        let locked: bool =
            diesel::select(pg_try_advisory_xact_lock(SWEEPER_LOCK_KEY)).get_result(pg)?;
        if !locked {
            return Ok(None);
        }
        // Losing this commit in a crash only means deleting the rows again next run, so it
        // need not wait for the WAL flush.
        pg.batch_execute(&format!("SET LOCAL synchronous_commit = off; {settings}"))?;
        batch(pg).map(Some)
    })
}

/// Portable mode: gives the sweeper lease up at the end of a run, so any instance may take
/// the next one.
pub fn release_sweeper_lease(
    conn: &mut DbConnection,
    holder: lease::Holder,
    now: NaiveDateTime,
) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => lease::release(pg, lease::SWEEPER, holder, now),
        DbConnection::Sqlite(_) | DbConnection::Mysql(_) => Ok(()),
    }
}
