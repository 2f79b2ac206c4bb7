//! The sweeper on MySQL: each batch takes the named sweeper lock without waiting
//! (`GET_LOCK(…, 0)`), deletes through the `expires_at` index with `DELETE … ORDER BY … LIMIT`
//! (which commits on its own) and gives the lock back, so a pooled connection never keeps it.

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use super::{named_lock, queries};
use crate::backends::pool::on_pool;
use crate::backends::pool::AsyncPool;
use crate::sweeper::{Dialect, DialectFuture, SessionCounts};

/// One index batch. Parameters: now, then the batch size.
pub const DELETE_BATCH: &str =
    "DELETE FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?";

/// The sweeper's statements on one MySQL database, on the main thread's pool.
pub(crate) struct MysqlDialect {
    pool: AsyncPool<AsyncMysqlConnection>,
    /// The named lock that elects one sweeper at a time.
    lock: String,
}

impl MysqlDialect {
    pub(crate) fn new(pool: AsyncPool<AsyncMysqlConnection>, lock: String) -> Self {
        Self { pool, lock }
    }
}

impl Dialect for MysqlDialect {
    fn delete_batch(&self, now: NaiveDateTime, rows: i64) -> DialectFuture<'_, Option<usize>> {
        Box::pin(async move {
            let deleted = on_pool!(self.pool, conn => async {
                        if !named_lock::try_lock(&mut conn, &self.lock).await? {
                            return Ok(None);
                        }
                        let deleted = diesel::sql_query(DELETE_BATCH)
                            .bind::<Timestamp, _>(now)
                            .bind::<BigInt, _>(rows)
                            .execute(&mut conn)
                            .await;
                        let released = named_lock::release(&mut conn, &self.lock).await;
                        let deleted = deleted?;
                        released?;
                        Ok(Some(deleted))
                    }.await)?;
            Ok(deleted)
        })
    }

    fn delete_plain(&self) -> DialectFuture<'_, usize> {
        Box::pin(
            async move { Ok(on_pool!(self.pool, conn => queries::delete_plain(&mut conn).await)?) },
        )
    }

    fn counts(&self, now: NaiveDateTime) -> DialectFuture<'_, SessionCounts> {
        Box::pin(
            async move { Ok(on_pool!(self.pool, conn => queries::counts(&mut conn, now).await)?) },
        )
    }
}
