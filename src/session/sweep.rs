//! One cleanup run: deleting the rows that expired, in bounded batches ([`delete_expired`]).
//!
//! Each batch is its own short transaction on a connection checked out for that batch alone,
//! so a run never keeps a connection from requests, even with a pool of one. A run ends when
//! a batch comes back short or its time budget is spent, and rests between batches so requests
//! keep their share of the database. A big PostgreSQL backlog is walked in block ranges rather
//! than through the index ([`TableWalk`]). On PostgreSQL one sweeper at a time holds a
//! transaction-scoped advisory lock; an instance that does not get it skips and never waits.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::db::{self, DbConnection, DbError, DbPool};
use crate::session::lease::Holder;
use crate::session::pace::{BatchSize, Pace, SQLITE_RECLAIM_PAGES};
use crate::session::planner;
use crate::session::sweep_queries;
use crate::session::walk::TableWalk;

/// How much one cleanup run may do.
#[derive(Debug, Clone, Copy)]
pub struct SweepLimits {
    /// Rows deleted per statement, so no single transaction holds locks for long.
    pub batch_size: i64,
    /// A run stops starting new batches after this long; the rest waits for the next tick.
    pub time_budget: Duration,
    /// PostgreSQL: a table at least this many heap blocks long whose expired share is at least
    /// [`WALK_SHARE`](crate::session::walk::WALK_SHARE) is swept block range by block range instead of through the index.
    pub walk_min_blocks: i64,
    /// Before each batch but the first, rest this many times as long as the previous batch
    /// took, so a sweep inside a serving instance leaves the database time for requests.
    /// `textdrop cleanup` does not rest (0).
    pub rest: f64,
    /// SQLite: batches are sized by the time they take rather than by rows (the database has
    /// one write lock, and a row may hold a megabyte), and the space they free is given back
    /// to the file system afterwards.
    pub sqlite: bool,
    /// Portable mode (PostgreSQL-compatible engines): each batch takes the sweeper lease, as
    /// this holder and for this long, instead of an advisory lock, deletes by primary key, and
    /// there is no table walk.
    pub lease: Option<(Holder, Duration)>,
}

impl SweepLimits {
    /// The limits of the task inside a serving instance, deleting `batch_size` rows a batch.
    pub fn serving(batch_size: i64) -> Self {
        Self {
            batch_size,
            time_budget: Duration::from_secs(30),
            // 8 MiB: below that, walking the index is a matter of milliseconds anyway.
            walk_min_blocks: 1_024,
            rest: 1.0,
            sqlite: false,
            lease: None,
        }
    }

    /// These limits in portable mode, each batch taking the lease as `holder` for `lease`.
    pub fn portable(self, holder: Holder, lease: Duration) -> Self {
        Self {
            lease: Some((holder, lease)),
            ..self
        }
    }

    /// These limits for a SQLite database.
    pub fn on_sqlite(self, sqlite: bool) -> Self {
        Self { sqlite, ..self }
    }

    /// The limits of `textdrop cleanup`: no time budget and no rest, run to the end.
    pub fn to_the_end(batch_size: i64) -> Self {
        Self {
            time_budget: Duration::MAX,
            rest: 0.0,
            ..Self::serving(batch_size)
        }
    }
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self::serving(5_000)
    }
}

/// The outcome of one cleanup run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupReport {
    pub deleted: usize,
    pub batches: usize,
    /// The most rows one batch deleted.
    pub largest_batch: usize,
    /// The longest one batch took.
    pub longest_batch: Duration,
    /// The run walked the table in block ranges (a big backlog on PostgreSQL).
    pub walked: bool,
    /// Another instance held the sweeper lock, so this run stopped.
    pub skipped: bool,
    pub elapsed: Duration,
}

impl CleanupReport {
    /// Counts one batch; `None` (the sweeper lock was held elsewhere) marks the run skipped.
    /// Returns the rows the batch deleted.
    fn record(&mut self, batch: Option<usize>) -> Option<usize> {
        match batch {
            Some(deleted) => {
                self.deleted += deleted;
                self.batches += 1;
                self.largest_batch = self.largest_batch.max(deleted);
            }
            None => self.skipped = true,
        }
        batch
    }
}

/// Deletes rows that expired at or before `now`, batch by batch, within `limits`.
///
/// Batches walk the `expires_at` index. When the first batch comes back full on PostgreSQL and
/// the planner expects a big share of the table expired (the first run after downtime, or
/// `textdrop cleanup` on a large backlog), the rest of the run walks the table in block ranges
/// instead, each its own transaction: ordered index batches visit every row twice, in index
/// order, where one pass in block order is what a single big DELETE would do.
pub async fn delete_expired(
    pool: &DbPool,
    now: NaiveDateTime,
    limits: SweepLimits,
) -> Result<CleanupReport, DbError> {
    delete_expired_until(pool, now, limits, || false).await
}

/// [`delete_expired`], but the run also ends after the batch in flight once `stop()` says so
/// (the server is shutting down).
pub async fn delete_expired_until(
    pool: &DbPool,
    now: NaiveDateTime,
    limits: SweepLimits,
    stop: impl Fn() -> bool,
) -> Result<CleanupReport, DbError> {
    let started = Instant::now();
    let should_stop = || started.elapsed() >= limits.time_budget || stop();
    let mut report = CleanupReport::default();
    let mut pace = Pace::new(&limits);
    let batch_size = limits.batch_size;
    let mut size = BatchSize::new(&limits);
    let lease = limits.lease.map(|(holder, lease)| {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        (holder, lease)
    });
    loop {
        let rows = size.rows;
        let batch = pace
            .batch(db::with_write_conn(pool, move |conn| {
                sweep_queries::delete_expired_batch(conn, now, rows, lease)
            }))
            .await?;
        report.longest_batch = report.longest_batch.max(pace.previous.unwrap_or_default());
        size.after(pace.previous);
        let Some(deleted) = report.record(batch) else {
            break;
        };
        if (deleted as i64) < rows || should_stop() {
            break;
        }
        if report.batches > 1 || lease.is_some() {
            continue;
        }
        // After a full first batch: is this a backlog worth walking in block order?
        let estimate = db::with_conn(pool, move |conn| match conn {
            DbConnection::Postgres(pg) => planner::estimate_table(pg, now).map(Some),
            DbConnection::Sqlite(_) | DbConnection::Mysql(_) => Ok(None),
        })
        .await?;
        if let Some(walk) = estimate.and_then(|table| TableWalk::choose(&table, &limits)) {
            walk_table(
                pool,
                now,
                walk,
                batch_size,
                &should_stop,
                &mut pace,
                &mut report,
            )
            .await?;
            break;
        }
    }
    if limits.sqlite && report.deleted > 0 {
        reclaim_sqlite_space(pool, &mut pace, &should_stop).await?;
    }
    if let (Some((holder, _)), false) = (lease, report.skipped) {
        db::with_write_conn(pool, move |conn| {
            sweep_queries::release_sweeper_lease(conn, holder, now)
        })
        .await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// SQLite: gives the pages the run freed back to the file system, a few megabytes per write
/// lock, then truncates the write-ahead log (the database is in incremental auto-vacuum mode,
/// see `db`).
async fn reclaim_sqlite_space(
    pool: &DbPool,
    pace: &mut Pace,
    should_stop: impl Fn() -> bool,
) -> Result<(), DbError> {
    loop {
        let left = pace
            .batch(db::with_write_conn(pool, |conn| {
                sweep_queries::sqlite_reclaim(conn, SQLITE_RECLAIM_PAGES)
            }))
            .await?;
        if left == 0 || should_stop() {
            break;
        }
    }
    db::with_write_conn(pool, sweep_queries::sqlite_truncate_wal).await
}

/// Deletes the expired rows of blocks `0..walk.blocks`, a step per transaction, until the end,
/// `should_stop()`, or another sweeper taking the lock. Rows added later sit in new blocks or
/// in space freed here; either way they expire after `now`.
async fn walk_table(
    pool: &DbPool,
    now: NaiveDateTime,
    walk: TableWalk,
    batch_size: i64,
    should_stop: impl Fn() -> bool,
    pace: &mut Pace,
    report: &mut CleanupReport,
) -> Result<(), DbError> {
    report.walked = true;
    let (mut first, mut step) = (0, walk.step);
    while first < walk.blocks && !should_stop() {
        let end = first + step;
        let batch = pace
            .batch(db::with_write_conn(pool, move |conn| match conn {
                DbConnection::Postgres(pg) => {
                    sweep_queries::delete_expired_in_blocks(pg, now, first, end)
                }
                DbConnection::Sqlite(_) | DbConnection::Mysql(_) => {
                    Err(diesel::result::Error::QueryBuilderError(
                        "only PostgreSQL tables are walked".into(),
                    ))
                }
            }))
            .await?;
        let Some(deleted) = report.record(batch) else {
            break;
        };
        first = end;
        step = walk.next_step(step, deleted, batch_size);
    }
    Ok(())
}
