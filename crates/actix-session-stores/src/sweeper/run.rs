//! One cleanup run: deleting the rows that expired, in bounded batches ([`delete_expired`]),
//! over any [`Dialect`].
//!
//! Each batch is its own short transaction on a connection checked out for that batch alone,
//! so a run never keeps a connection from requests. A run ends when a batch comes back short
//! or its time budget is spent, and rests between batches so requests keep their share of the
//! database. A big backlog on a database with a [`Walker`](super::Walker) is walked in block
//! ranges rather than through the index ([`TableWalk`]).

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::dialect::{Dialect, Reclaimer, Walker};
use super::pace::{BatchSize, Pace, RECLAIM_PAGES};
use super::policy::SweepPolicy;
use super::walk::TableWalk;

/// The outcome of one cleanup run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupReport {
    /// Expired rows deleted.
    pub deleted: usize,
    /// Statements that deleted rows.
    pub batches: usize,
    /// The most rows one batch deleted.
    pub largest_batch: usize,
    /// The longest one batch took.
    pub longest_batch: Duration,
    /// The run walked the table in block ranges (a big backlog on PostgreSQL).
    pub walked: bool,
    /// Another instance held the sweeper lock, so this run stopped.
    pub skipped: bool,
    /// How long the run took.
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

/// Deletes rows that expired at or before `now`, batch by batch, within `policy`; the run
/// also ends after the batch in flight once `stop()` says so (the server is shutting down).
///
/// Batches walk the `expires_at` index. When the first batch comes back full on a database
/// with a walker and the planner expects a big share of the table expired (the first run
/// after downtime, or a cleanup run by hand on a large backlog), the rest of the run walks the
/// table in block ranges instead, each its own transaction: ordered index batches visit every
/// row twice, in index order, where one pass in block order is what a single big DELETE would
/// do.
pub async fn delete_expired(
    dialect: &dyn Dialect,
    now: NaiveDateTime,
    policy: SweepPolicy,
    stop: impl Fn() -> bool,
) -> anyhow::Result<CleanupReport> {
    let started = Instant::now();
    let should_stop = || started.elapsed() >= policy.time_budget || stop();
    let mut report = CleanupReport::default();
    let mut pace = Pace::new(policy.rest);
    let mut size = BatchSize::new(policy.batch_size, dialect.sizing());
    loop {
        let rows = size.rows;
        let batch = pace.batch(dialect.delete_batch(now, rows)).await?;
        report.longest_batch = report.longest_batch.max(pace.previous.unwrap_or_default());
        size.after(pace.previous);
        let Some(deleted) = report.record(batch) else {
            break;
        };
        if (deleted as i64) < rows || should_stop() {
            break;
        }
        if report.batches > 1 {
            continue;
        }
        // After a full first batch: is this a backlog worth walking in block order?
        let Some(walker) = dialect.walker() else {
            continue;
        };
        let table = walker.estimate(now).await?;
        if let Some(walk) = TableWalk::choose(&table, &policy) {
            let walking = Walking {
                walker,
                now,
                walk,
                batch_size: policy.batch_size,
            };
            walking.run(&should_stop, &mut pace, &mut report).await?;
            break;
        }
    }
    // Space freed by any delete (forget, rotation, this run) is given back, by the sweeper that
    // won the run.
    if let (Some(reclaimer), false) = (dialect.reclaimer(), report.skipped) {
        if report.deleted > 0 || reclaimer.free_pages().await? > 0 {
            reclaim(reclaimer, &mut pace, &should_stop).await?;
        }
    }
    if !report.skipped {
        dialect.finish(now).await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Gives the pages a run freed back to the file system, a few megabytes per write lock, then
/// truncates the write-ahead log.
async fn reclaim(
    reclaimer: &dyn Reclaimer,
    pace: &mut Pace,
    should_stop: impl Fn() -> bool,
) -> anyhow::Result<()> {
    loop {
        let left = pace.batch(reclaimer.reclaim(RECLAIM_PAGES)).await?;
        if left == 0 || should_stop() {
            break;
        }
    }
    reclaimer.truncate_log().await
}

/// A walk of blocks `0..walk.blocks` in progress.
struct Walking<'a> {
    walker: &'a dyn Walker,
    now: NaiveDateTime,
    walk: TableWalk,
    batch_size: i64,
}

impl Walking<'_> {
    /// Deletes the expired rows of every range, a step per transaction, until the end,
    /// `should_stop()`, or another sweeper taking the lock. Rows added later sit in new blocks
    /// or in space freed here; either way they expire after `now`.
    async fn run(
        &self,
        should_stop: impl Fn() -> bool,
        pace: &mut Pace,
        report: &mut CleanupReport,
    ) -> anyhow::Result<()> {
        report.walked = true;
        let (mut first, mut step) = (0, self.walk.step);
        while first < self.walk.blocks && !should_stop() {
            let end = first + step;
            let batch = pace
                .batch(self.walker.delete_blocks(self.now, first, end))
                .await?;
            let Some(deleted) = report.record(batch) else {
                break;
            };
            first = end;
            step = self.walk.next_step(step, deleted, self.batch_size);
        }
        Ok(())
    }
}
