//! Session records as rows of PostgreSQL's `sessions` table, on one worker's pool. A key
//! rotation is one statement: a data-modifying `WITH` supersedes the old row (marks it, and
//! empties it without a grace period), deletes the row it superseded and inserts the new one,
//! only if the old one was live and current.

use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::queries;
use crate::backends::pool::on_pool;
use crate::backends::pool::AsyncPool;
use crate::backends::sql::{record_of, NewSession};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};

/// The rotation with a grace period: `$1` the old id, `$2` now, then the new row's columns
/// (`$3` its id); the old row is kept, marked superseded by `$3` at `$2`, expiring at `$9`.
/// Every part of a `WITH` sees the table as it was before the statement, so `before` deletes
/// the row the old one had superseded, not the old one.
pub const ROTATE_KEEPING_OLD: &str = "WITH old AS (\
     UPDATE sessions SET successor = $3, superseded_at = $2, expires_at = $9 \
     WHERE id = $1 AND expires_at > $2 AND successor IS NULL RETURNING id), \
     before AS (DELETE FROM sessions WHERE successor = $1 AND EXISTS (SELECT 1 FROM old)) \
     INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) \
     SELECT $3, $4, $5, $6, $7, $8 FROM old";

/// The rotation without a grace period: as [`ROTATE_KEEPING_OLD`], but the old row keeps only
/// its link (a tombstone: an empty state, no file) until `$9`, so that a key still has one
/// successor and a retry of this rotation is still told from another upload.
pub const ROTATE: &str = "WITH old AS (\
     UPDATE sessions SET successor = $3, superseded_at = $2, expires_at = $9, \
     state = '{}', file = NULL, file_bytes = 0 \
     WHERE id = $1 AND expires_at > $2 AND successor IS NULL RETURNING id), \
     before AS (DELETE FROM sessions WHERE successor = $1 AND EXISTS (SELECT 1 FROM old)) \
     INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) \
     SELECT $3, $4, $5, $6, $7, $8 FROM old";

/// The `sessions` table, through one worker's connections.
pub(crate) struct PgRecords {
    pool: AsyncPool<AsyncPgConnection>,
    /// A connection of its own for readiness checks: they say whether the database answers,
    /// not how long visitors' requests wait for a connection.
    probe: AsyncPool<AsyncPgConnection>,
}

impl PgRecords {
    pub(crate) fn new(
        pool: AsyncPool<AsyncPgConnection>,
        probe: AsyncPool<AsyncPgConnection>,
    ) -> Self {
        Self { pool, probe }
    }
}

impl Records for PgRecords {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let row = on_pool!(self.pool, conn => queries::find_live(&mut conn, id, fetch).await)?;
            Ok(row.map(record_of))
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let row = NewSession::of(id, &record);
            on_pool!(self.pool, conn => queries::insert(&mut conn, &row).await)?;
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
        Box::pin(async move {
            let row = NewSession::of(new_id, &record);
            let sql = if rotation.keep_data {
                ROTATE_KEEPING_OLD
            } else {
                ROTATE
            };
            let until = rotation.keep_until;
            let inserted = on_pool!(self.pool, conn => diesel::sql_query(sql)
                            .bind::<Text, _>(old_id)
                            .bind::<Timestamp, _>(rotation.now)
                            .bind::<Text, _>(row.id)
                            .bind::<Text, _>(row.state)
                            .bind::<Timestamp, _>(row.expires_at)
                            .bind::<Timestamp, _>(row.created_at)
                            .bind::<Nullable<Text>, _>(row.file)
                            .bind::<BigInt, _>(row.file_bytes)
                            .bind::<Timestamp, _>(until)
                            .execute(&mut conn).await)?;
            Ok(if inserted == 1 { Ok(()) } else { Err(record) })
        })
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let updated =
                on_pool!(self.pool, conn => queries::update_state(&mut conn, id, &with).await)?;
            Ok(updated > 0)
        })
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            on_pool!(self.pool, conn => queries::extend_if_due(&mut conn, id, &extension).await)?;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            on_pool!(self.pool, conn => queries::delete(&mut conn, id).await)?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { on_pool!(self.probe, conn => conn.batch_execute("SELECT 1").await) })
    }
}
