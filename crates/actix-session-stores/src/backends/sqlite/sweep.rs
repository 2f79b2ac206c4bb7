//! The sweeper on SQLite: one writer at a time anyway, so no election; batches by rowid
//! through the `expires_at` index, sized by the time they hold the write lock; the space they
//! free is given back to the file system afterwards (incremental auto-vacuum), and the
//! write-ahead log truncated.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Timestamp};
use diesel::{QueryableByName, RunQueryDsl};

use super::pool::SqlitePool;
use super::queries;
use crate::sweeper::{Dialect, DialectFuture, Reclaimer, SessionCounts, Sizing};

/// One index batch. Parameters: now, then the batch size. (SQLite's bundled build has no
/// `DELETE … LIMIT`.)
pub const DELETE_BATCH: &str = "DELETE FROM sessions WHERE rowid IN (SELECT rowid \
     FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)";

/// The sweeper's statements on one SQLite database.
pub(crate) struct SqliteDialect {
    pool: SqlitePool,
}

impl SqliteDialect {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct FreePages {
    #[diesel(sql_type = BigInt)]
    freelist_count: i64,
}

impl Dialect for SqliteDialect {
    fn delete_batch(&self, now: NaiveDateTime, rows: i64) -> DialectFuture<'_, Option<usize>> {
        Box::pin(async move {
            let deleted = self
                .pool
                .write(move |conn| {
                    diesel::sql_query(DELETE_BATCH)
                        .bind::<Timestamp, _>(now)
                        .bind::<BigInt, _>(rows)
                        .execute(conn)
                })
                .await?;
            Ok(Some(deleted))
        })
    }

    fn sizing(&self) -> Sizing {
        Sizing::ByTime
    }

    fn reclaimer(&self) -> Option<&dyn Reclaimer> {
        Some(self)
    }

    fn delete_plain(&self) -> DialectFuture<'_, usize> {
        Box::pin(async move { Ok(self.pool.write(queries::delete_plain).await?) })
    }

    fn counts(&self, now: NaiveDateTime) -> DialectFuture<'_, SessionCounts> {
        Box::pin(async move { Ok(self.pool.read(|conn| queries::counts(conn, now)).await?) })
    }
}

impl Reclaimer for SqliteDialect {
    fn free_pages(&self) -> DialectFuture<'_, i64> {
        Box::pin(async move {
            let FreePages { freelist_count } = self
                .pool
                .read(|conn| diesel::sql_query("PRAGMA freelist_count").get_result(conn))
                .await?;
            Ok(freelist_count)
        })
    }

    fn reclaim(&self, pages: i64) -> DialectFuture<'_, i64> {
        Box::pin(async move {
            let FreePages { freelist_count } = self
                .pool
                .write(move |conn| {
                    conn.batch_execute(&format!("PRAGMA incremental_vacuum({pages})"))?;
                    diesel::sql_query("PRAGMA freelist_count").get_result(conn)
                })
                .await?;
            Ok(freelist_count)
        })
    }

    fn truncate_log(&self) -> DialectFuture<'_, ()> {
        Box::pin(async move {
            self.pool
                .write(|conn| conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)"))
                .await?;
            Ok(())
        })
    }
}
