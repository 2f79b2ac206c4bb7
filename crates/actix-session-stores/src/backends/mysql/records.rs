//! Session records as rows of MySQL's `sessions` table, on one worker's pool. A key rotation
//! is one transaction: supersede the old row if it is live and current (mark it, or delete it
//! without a grace period), delete the row it superseded, insert the new one.

use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

use super::queries;
use crate::backends::pool::on_pool;
use crate::backends::pool::AsyncPool;
use crate::backends::sql::{record_of, NewSession};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};

/// The `sessions` table, through one worker's connections.
pub(crate) struct MysqlRecords {
    pool: AsyncPool<AsyncMysqlConnection>,
    /// A connection of its own for readiness checks: they say whether the database answers,
    /// not how long visitors' requests wait for a connection.
    probe: AsyncPool<AsyncMysqlConnection>,
}

impl MysqlRecords {
    pub(crate) fn new(
        pool: AsyncPool<AsyncMysqlConnection>,
        probe: AsyncPool<AsyncMysqlConnection>,
    ) -> Self {
        Self { pool, probe }
    }
}

impl Records for MysqlRecords {
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
            let row = &NewSession::of(new_id, &record);
            let rotated = on_pool!(self.pool, conn => conn.transaction(async |tx| {
                        if queries::supersede(tx, old_id, new_id, rotation).await? == 0 {
                            return Ok(false);
                        }
                        queries::insert(tx, row).await?;
                        Ok(true)
                    }).await)?;
            Ok(if rotated { Ok(()) } else { Err(record) })
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
