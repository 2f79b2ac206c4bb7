//! Every SQL statement on the `sessions` table, as small synchronous Diesel functions.
//!
//! "Now" is always a parameter: times are written and compared with the application's UTC clock,
//! never the database's `now()`, so a PostgreSQL server in another time zone behaves the same and
//! tests control time. These functions block; callers run them off the async executor.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use crate::db::DbConnection;
use crate::schema::sessions;

/// A new row, as `save` writes it.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub state: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<&'a str>,
    pub file_bytes: i64,
}

/// What `load` needs of a live row: the file only when the page shows it.
#[derive(Debug)]
pub struct LiveSession {
    pub state: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<String>,
}

/// The row `id` if it has not expired at `now` and was created after `created_after` (the
/// absolute lifetime), with its file when `with_file`.
pub fn find_live(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    created_after: NaiveDateTime,
    with_file: bool,
) -> QueryResult<Option<LiveSession>> {
    let live = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::created_at.gt(created_after));
    if with_file {
        let row = live
            .select((
                sessions::state,
                sessions::expires_at,
                sessions::created_at,
                sessions::file,
            ))
            .first::<(String, NaiveDateTime, NaiveDateTime, Option<String>)>(conn)
            .optional()?;
        Ok(
            row.map(|(state, expires_at, created_at, file)| LiveSession {
                state,
                expires_at,
                created_at,
                file,
            }),
        )
    } else {
        let row = live
            .select((sessions::state, sessions::expires_at, sessions::created_at))
            .first::<(String, NaiveDateTime, NaiveDateTime)>(conn)
            .optional()?;
        Ok(row.map(|(state, expires_at, created_at)| LiveSession {
            state,
            expires_at,
            created_at,
            file: None,
        }))
    }
}

/// Inserts a new row (fails on a duplicate id), and deletes the row `replaces` in the same
/// transaction when given: a key rotation either happens whole or not at all.
pub fn insert(
    conn: &mut DbConnection,
    row: &NewSession<'_>,
    replaces: Option<&str>,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let inserted = diesel::insert_into(sessions::table)
            .values(row)
            .execute(conn)?;
        if let Some(old) = replaces {
            delete(conn, old)?;
        }
        Ok(inserted)
    })
}

/// Replaces the state of a live row (and its file, when `file` is given) and moves its expiry.
/// Returns 0 when the row has expired or is gone: an expired session is never brought back.
pub fn update_state(
    conn: &mut DbConnection,
    id: &str,
    state: &str,
    file: Option<&str>,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let live = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::expires_at.gt(now));
    match file {
        Some(file) => diesel::update(live)
            .set((
                sessions::state.eq(state),
                sessions::expires_at.eq(expires_at),
                sessions::file.eq(file),
                sessions::file_bytes.eq(file.len() as i64),
            ))
            .execute(conn),
        None => diesel::update(live)
            .set((
                sessions::state.eq(state),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn),
    }
}

/// Moves the expiry of a live row to `expires_at`, but only if it would otherwise expire
/// before `due` and the move is forward: a fresh row, or one already at its absolute bound, is
/// left alone, so a read never rewrites it. Returns the rows moved.
pub fn extend_if_due(
    conn: &mut DbConnection,
    id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
    due: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::expires_at.lt(due))
            .filter(sessions::expires_at.lt(expires_at)),
    )
    .set(sessions::expires_at.eq(expires_at))
    .execute(conn)
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// The bytes of all live rows' files, for the storage cap (a sum over the table: the cap's
/// task calls it every few seconds, never per upload).
pub fn stored_bytes(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<i64> {
    const SUM: &str = "CAST(COALESCE(SUM(file_bytes), 0) AS BIGINT) AS total FROM sessions";
    let Total { total } = match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query(format!("SELECT {SUM} WHERE expires_at > $1"))
                .bind::<Timestamp, _>(now)
                .get_result(pg)?
        }
        DbConnection::Sqlite(sqlite) => {
            diesel::sql_query(format!("SELECT {SUM} WHERE expires_at > ?"))
                .bind::<Timestamp, _>(now)
                .get_result(sqlite)?
        }
    };
    Ok(total)
}

/// Deletes the row `id`, live or not.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::id.eq(id))).execute(conn)
}

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

/// Deletes at most `limit` rows that expired at or before `now`, in one short transaction.
/// Returns `None` when another sweeper holds the lock (PostgreSQL): the caller skips.
///
/// Neither backend has `DELETE … LIMIT`, so the batch is chosen by a subquery that walks the
/// `expires_at` index: on the ctid on PostgreSQL, under a transaction-scoped advisory lock so
/// several instances never sweep at once; on the rowid on SQLite, where the database allows one
/// writer anyway. Raw SQL, since the placeholders differ.
pub fn delete_expired_batch(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Option<usize>> {
    match conn {
        // `= ANY(ARRAY(…))` of ctids makes a TID scan: with `id IN (…)` the planner may pick a
        // hash join over a sequential scan of the whole table, once per batch. No row lock is
        // needed: the advisory lock keeps other sweepers out, and a row the app updates
        // meanwhile gets a new ctid, so the re-check skips it and it stays.
        DbConnection::Postgres(pg) => sweeper_transaction(pg, "", |pg| {
            diesel::sql_query(PG_DELETE_BATCH)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .execute(pg)
        }),
        DbConnection::Sqlite(sqlite) => diesel::sql_query(SQLITE_DELETE_BATCH)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .execute(sqlite)
            .map(Some),
    }
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

/// Live and expired row counts and the oldest expiry, for `textdrop stats` and the gauge.
#[derive(Debug, Clone, Copy)]
pub struct SessionCounts {
    pub live: i64,
    pub expired: i64,
    pub oldest_expiry: Option<NaiveDateTime>,
}

/// Counts the rows on either side of `now`.
pub fn count_sessions(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<SessionCounts> {
    Ok(SessionCounts {
        live: count_live(conn, now)?,
        expired: count_expired(conn, now)?,
        oldest_expiry: oldest_expiry(conn)?,
    })
}

/// The earliest expiry of any row, live or not.
pub fn oldest_expiry(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    sessions::table
        .select(diesel::dsl::min(sessions::expires_at))
        .get_result(conn)
}

/// Rows still live at `now`.
pub fn count_live(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)
}

/// Rows that expired at or before `now` and wait for cleanup.
pub fn count_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::expires_at.le(now))
        .count()
        .get_result(conn)
}
