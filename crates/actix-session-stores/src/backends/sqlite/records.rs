//! Session records as rows of SQLite's `sessions` table.

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::pool::SqlitePool;
use super::queries;
use crate::backends::sql::{record_of, NewSession};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};

/// The `sessions` table of one SQLite database.
pub(crate) struct SqliteRecords {
    pool: SqlitePool,
}

impl SqliteRecords {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A stored attachment up to this size is read on the worker's thread, with its record, like
/// the seal opens it there (`seal::OFF_WORKER_FROM`); a longer one is read again, whole, on the
/// blocking pool. Reading a row with 16 KiB from SQLite's page cache takes microseconds
/// (`python3 bench/sqlite-read.py`: 9.4 µs median, 21 µs p99, Python's own cost included; 3.7 µs
/// with 100 bytes), less than the two thread switches of a blocking-pool hop.
const READ_HERE_BYTES: i64 = crate::seal::OFF_WORKER_FROM as i64;

/// The live row `id` as `fetch` describes it, with its attachment only if that is stored in
/// at most [`READ_HERE_BYTES`]; and whether it has a longer one (left out).
fn find_live_unless_long(
    conn: &mut diesel::SqliteConnection,
    id: &str,
    fetch: Fetch,
) -> diesel::QueryResult<Option<(crate::backends::sql::LiveRow, bool)>> {
    use crate::schema::sessions;
    use diesel::dsl::case_when;
    use diesel::prelude::*;
    type Row = (
        String,
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        Option<String>,
        Option<String>,
        i64,
    );
    let row: Option<Row> = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::expires_at.gt(fetch.now))
        .filter(sessions::created_at.gt(fetch.created_after))
        .select((
            sessions::state,
            sessions::expires_at,
            sessions::created_at,
            sessions::superseded_at,
            sessions::successor,
            case_when(sessions::file_bytes.le(READ_HERE_BYTES), sessions::file),
            sessions::file_bytes,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(state, expires_at, created_at, superseded_at, successor, file, bytes)| {
            let long = bytes > READ_HERE_BYTES;
            (
                (
                    state,
                    expires_at,
                    created_at,
                    superseded_at,
                    successor,
                    file,
                ),
                long,
            )
        },
    ))
}

impl Records for SqliteRecords {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let row = if fetch.with_attachment {
                let here = self
                    .pool
                    .read(|conn| find_live_unless_long(conn, id, fetch))
                    .await?;
                match here {
                    Some((_, true)) => {
                        let id = id.to_owned();
                        self.pool
                            .read_off_thread(move |conn| queries::find_live(conn, &id, fetch))
                            .await?
                    }
                    other => other.map(|(row, _)| row),
                }
            } else {
                self.pool
                    .read(|conn| queries::find_live(conn, id, fetch))
                    .await?
            };
            Ok(row.map(record_of))
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::insert(conn, &NewSession::of(&id, &record)))
                .await?;
            Ok(())
        })
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated> {
        let (old, new) = (old_id.to_owned(), new_id.to_owned());
        Box::pin(self.pool.write(move |conn| {
            conn.transaction(|conn| {
                if queries::supersede(conn, &old, &new, rotation)? == 0 {
                    return Ok(Err(record));
                }
                queries::insert(conn, &NewSession::of(&new, &record).superseding(&old))?;
                Ok(Ok(()))
            })
        }))
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        let id = id.to_owned();
        Box::pin(async move {
            let updated = self
                .pool
                .write(move |conn| queries::update_state(conn, &id, &with))
                .await?;
            Ok(updated > 0)
        })
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::extend_if_due(conn, &id, &extension))
                .await?;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::delete(conn, &id))
                .await?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.pool.read(|conn| conn.batch_execute("SELECT 1")))
    }
}
