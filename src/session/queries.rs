//! The store's and the counts' SQL statements on the `sessions` table, as small synchronous
//! Diesel functions (the sweeper's are in `sweep_queries`).
//!
//! "Now" is always a parameter: times are written and compared with the application's UTC clock,
//! never the database's `now()`, so a PostgreSQL server in another time zone behaves the same and
//! tests control time. These functions block; callers run them off the async executor.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use crate::db::DbConnection;
use crate::schema::sessions;
use crate::session::store::{Extension, Replacement};

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

/// Replaces the state of a live row (and its file, when given) and moves its expiry. Returns 0
/// when the row has expired or is gone: an expired session is never brought back.
pub fn update_state(conn: &mut DbConnection, id: &str, with: &Replacement) -> QueryResult<usize> {
    let live = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::expires_at.gt(with.now));
    let state = (
        sessions::state.eq(&with.state),
        sessions::expires_at.eq(with.expires_at),
    );
    match &with.file {
        Some(file) => diesel::update(live)
            .set((
                state,
                sessions::file.eq(file),
                sessions::file_bytes.eq(file.len() as i64),
            ))
            .execute(conn),
        None => diesel::update(live).set(state).execute(conn),
    }
}

/// Moves the expiry of a live row as `extension` says: only if it would otherwise expire
/// before `due` and the move is forward, so a fresh row, or one already at its absolute bound,
/// is left alone and a read never rewrites it. Returns the rows moved.
pub fn extend_if_due(
    conn: &mut DbConnection,
    id: &str,
    extension: &Extension,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::expires_at.gt(extension.now))
            .filter(sessions::expires_at.lt(extension.due))
            .filter(sessions::expires_at.lt(extension.expires_at)),
    )
    .set(sessions::expires_at.eq(extension.expires_at))
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
        // MySQL casts to SIGNED (a BIGINT), not BIGINT.
        DbConnection::Mysql(mysql) => diesel::sql_query(
            "SELECT CAST(COALESCE(SUM(file_bytes), 0) AS SIGNED) AS total FROM sessions \
             WHERE expires_at > ?",
        )
        .bind::<Timestamp, _>(now)
        .get_result(mysql)?,
    };
    Ok(total)
}

/// Deletes the row `id`, live or not.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::id.eq(id))).execute(conn)
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
