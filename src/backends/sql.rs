//! What the three SQL backends share: the `sessions` table's rows, and its statements written
//! once in Diesel's query builder ([`session_queries!`]) and expanded in each backend's module
//! for its own connection (sync Diesel for SQLite, diesel-async for PostgreSQL and MySQL).
//!
//! "Now" is always a parameter: times are written and compared with the application's UTC
//! clock, never the database's `now()`, so a server in another time zone behaves the same and
//! tests control time.

use chrono::NaiveDateTime;

use crate::schema::sessions;
use crate::session::records::{Loaded, NewRecord, Record};

/// A new row, as an insert writes it.
#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub state: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<&'a str>,
    pub file_bytes: i64,
}

impl<'a> NewSession<'a> {
    /// The row that stores `record` under `id`.
    pub fn of(id: &'a str, record: &'a NewRecord) -> Self {
        Self {
            id,
            state: &record.state,
            expires_at: record.expires_at,
            created_at: record.created_at,
            file: record.file.as_deref(),
            file_bytes: record.file_bytes(),
        }
    }
}

/// A live row as `fetch` reads it: state, expiry, creation, when it was superseded, and the
/// file when asked for.
pub type LiveRow = (
    String,
    NaiveDateTime,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<String>,
);

/// The record a live row holds.
pub fn record_of((state, expires_at, created_at, superseded_at, file): LiveRow) -> Record {
    Record {
        state,
        loaded: Loaded {
            expires_at,
            created_at,
            superseded_at,
        },
        file,
    }
}

/// The statements every SQL backend runs on the `sessions` table, in Diesel's query builder,
/// expanded in a backend's module for its connection type. `$($run)*` is `.await` for the
/// async connections and empty for SQLite's; the caller brings the matching `RunQueryDsl`
/// into scope.
macro_rules! session_queries {
    ($conn:ty $(, $async:ident)? ; $($run:tt)*) => {
        use chrono::NaiveDateTime;
        use diesel::prelude::*;

        use crate::backends::sql::{LiveRow, NewSession};
        use crate::schema::sessions;
        use crate::session::records::{Extension, Fetch, Replacement, Rotation};

        /// The row `id` if it is live at `fetch.now` and was created after
        /// `fetch.created_after` (the absolute lifetime), with its file when asked for.
        pub(super) $($async)? fn find_live(
            conn: &mut $conn,
            id: &str,
            fetch: Fetch,
        ) -> QueryResult<Option<LiveRow>> {
            let live = sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::expires_at.gt(fetch.now))
                .filter(sessions::created_at.gt(fetch.created_after));
            if fetch.with_file {
                live.select((
                    sessions::state,
                    sessions::expires_at,
                    sessions::created_at,
                    sessions::superseded_at,
                    sessions::file,
                ))
                .first::<LiveRow>(conn)
                $($run)*
                .optional()
            } else {
                let row = live
                    .select((
                        sessions::state,
                        sessions::expires_at,
                        sessions::created_at,
                        sessions::superseded_at,
                    ))
                    .first::<(String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>)>(conn)
                    $($run)*
                    .optional()?;
                Ok(row.map(|(state, expires_at, created_at, superseded_at)| {
                    (state, expires_at, created_at, superseded_at, None)
                }))
            }
        }

        /// Inserts a new row (fails on a duplicate id).
        pub(super) $($async)? fn insert(conn: &mut $conn, row: &NewSession<'_>) -> QueryResult<usize> {
            diesel::insert_into(sessions::table).values(row).execute(conn) $($run)*
        }

        /// The old side of a rotation from `old` to `new`, if `old` is live and current: the
        /// row is deleted (`rotation.keep_until` is `None`) or marked superseded by `new` and
        /// set to expire at `keep_until`, and the row `old` had superseded goes. How many rows
        /// `old` was (0 or 1): 0 means nothing changed.
        #[allow(dead_code, reason = "PostgreSQL rotates a key in one statement of its own")]
        pub(super) $($async)? fn supersede(
            conn: &mut $conn,
            old: &str,
            new: &str,
            rotation: Rotation,
        ) -> QueryResult<usize> {
            let current = sessions::table
                .filter(sessions::id.eq(old))
                .filter(sessions::expires_at.gt(rotation.now))
                .filter(sessions::successor.is_null());
            let changed = match rotation.keep_until {
                None => diesel::delete(current).execute(conn) $($run)* ?,
                Some(until) => diesel::update(current)
                    .set((
                        sessions::successor.eq(new),
                        sessions::superseded_at.eq(rotation.now),
                        sessions::expires_at.eq(until),
                    ))
                    .execute(conn)
                    $($run)* ?,
            };
            if changed > 0 {
                diesel::delete(sessions::table.filter(sessions::successor.eq(old)))
                    .execute(conn)
                    $($run)* ?;
            }
            Ok(changed)
        }

        /// Replaces the state of a live row (and its file, when given) and moves its expiry.
        /// Returns 0 when the row has expired or is gone: an expired session is never brought
        /// back.
        pub(super) $($async)? fn update_state(
            conn: &mut $conn,
            id: &str,
            with: &Replacement,
        ) -> QueryResult<usize> {
            let live = sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::expires_at.gt(with.now))
                .filter(sessions::successor.is_null());
            let state = (
                sessions::state.eq(&with.state),
                sessions::expires_at.eq(with.expires_at),
            );
            match &with.file {
                Some(file) => {
                    diesel::update(live)
                        .set((
                            state,
                            sessions::file.eq(file),
                            sessions::file_bytes.eq(file.len() as i64),
                        ))
                        .execute(conn)
                        $($run)*
                }
                None => diesel::update(live).set(state).execute(conn) $($run)*,
            }
        }

        /// Moves the expiry of a live row as `extension` says: only if it would otherwise
        /// expire before `due` and the move is forward, so a fresh row, or one already at its
        /// absolute bound, is left alone and a read never rewrites it. Returns the rows moved.
        pub(super) $($async)? fn extend_if_due(
            conn: &mut $conn,
            id: &str,
            extension: &Extension,
        ) -> QueryResult<usize> {
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id))
                    .filter(sessions::expires_at.gt(extension.now))
                    .filter(sessions::successor.is_null())
                    .filter(sessions::expires_at.lt(extension.due))
                    .filter(sessions::expires_at.lt(extension.expires_at)),
            )
            .set(sessions::expires_at.eq(extension.expires_at))
            .execute(conn)
            $($run)*
        }

        /// Deletes the row `id`, live or not, and the row it superseded.
        pub(super) $($async)? fn delete(conn: &mut $conn, id: &str) -> QueryResult<usize> {
            diesel::delete(
                sessions::table.filter(sessions::id.eq(id).or(sessions::successor.eq(id))),
            )
            .execute(conn)
            $($run)*
        }

        /// Rows still live at `now`.
        pub(super) $($async)? fn count_live(conn: &mut $conn, now: NaiveDateTime) -> QueryResult<i64> {
            sessions::table
                .filter(sessions::expires_at.gt(now))
                .count()
                .get_result(conn)
                $($run)*
        }

        /// Live and expired rows at `now`, and the earliest expiry of any row.
        pub(super) $($async)? fn counts(
            conn: &mut $conn,
            now: NaiveDateTime,
        ) -> QueryResult<crate::sweeper::SessionCounts> {
            let live = count_live(conn, now) $($run)* ?;
            let expired = sessions::table
                .filter(sessions::expires_at.le(now))
                .count()
                .get_result(conn)
                $($run)*
                ?;
            let oldest_expiry = sessions::table
                .select(diesel::dsl::min(sessions::expires_at))
                .get_result(conn)
                $($run)*
                ?;
            Ok(crate::sweeper::SessionCounts {
                live,
                expired,
                oldest_expiry,
            })
        }
    };
}

pub(crate) use session_queries;
