//! What a SQL backend tells the sweep loop (the `run` module): how to delete one batch of
//! expired rows under its own election (an advisory lock, `GET_LOCK`, a lease row, or none on
//! SQLite's single writer), and the optional extras of some databases: a walk in heap order
//! for a big backlog (PostgreSQL), giving freed space back (SQLite), ending a run (a lease).

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

/// A future a dialect returns; it runs on the thread of the task that sweeps.
pub type DialectFuture<'a, T> = LocalBoxFuture<'a, anyhow::Result<T>>;

/// How the rows a batch deletes are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// The policy's batch size, every batch.
    Rows,
    /// By the time a batch holds the database's one write lock (SQLite), starting small: a
    /// row may hold a megabyte.
    ByTime,
}

/// Live and expired row counts and the oldest expiry, for an operator's command and an
/// application's gauges.
#[derive(Debug, Clone, Copy)]
pub struct SessionCounts {
    /// Sessions not expired.
    pub live: i64,
    /// Expired rows the sweeper has not deleted yet.
    pub expired: i64,
    /// The oldest expiry of any row, live or not; `None`: no rows.
    pub oldest_expiry: Option<NaiveDateTime>,
    /// Live sessions sealed (under their visitor's key).
    pub sealed: i64,
    /// Live sessions written before sealing, still plain (tombstones, which hold nothing, are
    /// not counted). They stay plain until their visitor's next upload or their expiry.
    pub plain: i64,
}

/// One SQL database, as the sweep loop sees it.
pub trait Dialect {
    /// Deletes at most `rows` rows that expired at or before `now`, in one short transaction
    /// under this database's sweeper election. `None` when another sweeper holds it: the run
    /// skips (or stops) without waiting.
    fn delete_batch(&self, now: NaiveDateTime, rows: i64) -> DialectFuture<'_, Option<usize>>;

    /// How batches are sized.
    fn sizing(&self) -> Sizing {
        Sizing::Rows
    }

    /// The walk in heap-block order, where the database has one.
    fn walker(&self) -> Option<&dyn Walker> {
        None
    }

    /// Giving the space of deleted rows back to the file system, where that takes a step of
    /// its own.
    fn reclaimer(&self) -> Option<&dyn Reclaimer> {
        None
    }

    /// Ends a run that was not skipped (portable mode gives its lease up).
    fn finish(&self, _now: NaiveDateTime) -> DialectFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Rows on either side of `now`, and the oldest expiry.
    fn counts(&self, now: NaiveDateTime) -> DialectFuture<'_, SessionCounts>;

    /// Deletes every record written before sealing (still plain); how many went.
    fn delete_plain(&self) -> DialectFuture<'_, usize>;
}

/// PostgreSQL's view of the `sessions` table, for choosing how to sweep it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableEstimate {
    /// Rows in the table, as the planner estimates them.
    pub rows: f64,
    /// Rows expired at the given time, as the planner estimates them.
    pub expired: f64,
    /// The table's current size in heap blocks.
    pub blocks: i64,
}

/// A database whose table can be swept in heap-block order (PostgreSQL's TID ranges).
pub trait Walker {
    /// What the planner expects of the table at `now`, read without scanning it.
    fn estimate(&self, now: NaiveDateTime) -> DialectFuture<'_, TableEstimate>;

    /// Deletes the rows expired at `now` among those in blocks `first..end`, in one short
    /// transaction under the election; `None` when another sweeper holds it.
    fn delete_blocks(
        &self,
        now: NaiveDateTime,
        first: i64,
        end: i64,
    ) -> DialectFuture<'_, Option<usize>>;
}

/// A database that gives freed pages back in steps of its own (SQLite's incremental vacuum).
pub trait Reclaimer {
    /// Free pages waiting to be given back, whatever deleted their rows (forget, rotation, a
    /// sweep).
    fn free_pages(&self) -> DialectFuture<'_, i64>;

    /// Gives up to `pages` free pages back (one short write); how many free pages are left.
    fn reclaim(&self, pages: i64) -> DialectFuture<'_, i64>;

    /// Ends a reclaim: the write-ahead log is written back and truncated.
    fn truncate_log(&self) -> DialectFuture<'_, ()>;
}
