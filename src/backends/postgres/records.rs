//! Session records as rows of PostgreSQL's `sessions` table, on one worker's pool. A key
//! rotation is one statement: a data-modifying `WITH` deletes the old row and inserts the new
//! one only if the old one was live.

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::queries;
use crate::backends::pool::on_pool;
use crate::backends::pool::AsyncPool;
use crate::backends::sql::{record_of, NewSession};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, StoreFuture,
};

/// The rotation: `$1` the old id, `$2` now, then the new row's columns.
pub const ROTATE: &str = "WITH gone AS (\
     DELETE FROM sessions WHERE id = $1 AND expires_at > $2 RETURNING id) \
     INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) \
     SELECT $3, $4, $5, $6, $7, $8 FROM gone";

/// The `sessions` table, through one worker's connections.
pub(crate) struct PgRecords {
    pool: AsyncPool<AsyncPgConnection>,
}

impl PgRecords {
    pub(crate) fn new(pool: AsyncPool<AsyncPgConnection>) -> Self {
        Self { pool }
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
        now: NaiveDateTime,
    ) -> StoreFuture<'a, Rotated> {
        Box::pin(async move {
            let row = NewSession::of(new_id, &record);
            let inserted = on_pool!(self.pool, conn => diesel::sql_query(ROTATE)
                            .bind::<Text, _>(old_id)
                            .bind::<Timestamp, _>(now)
                            .bind::<Text, _>(row.id)
                            .bind::<Text, _>(row.state)
                            .bind::<Timestamp, _>(row.expires_at)
                            .bind::<Timestamp, _>(row.created_at)
                            .bind::<Nullable<Text>, _>(row.file)
                            .bind::<BigInt, _>(row.file_bytes)
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
        Box::pin(async move { on_pool!(self.pool, conn => conn.batch_execute("SELECT 1").await) })
    }
}
