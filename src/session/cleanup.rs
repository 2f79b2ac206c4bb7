//! Deleting expired sessions: the step ([`delete_expired`]), one run off the executor
//! ([`run_cleanup`]), and the interval task the server starts once ([`CleanupTask`]).
//!
//! The task is the app's own, not a database trigger or a cron job. It deletes in bounded
//! batches, each its own short transaction, until a batch comes back short or the run's time
//! budget is spent, resting between batches so requests keep their share of the database. A big
//! PostgreSQL backlog is walked in block ranges rather than through the index ([`TableWalk`]).
//! On PostgreSQL one sweeper at a time holds a transaction-scoped advisory lock; an instance
//! that does not get it skips that tick and never waits. Ticks are jittered so instances do not
//! wake in lockstep. The task logs how many rows went (info only when some did), logs and
//! carries on when the database fails, and stops when the server shuts down.

use std::time::{Duration, Instant};

use actix_web::rt::task::JoinHandle;
use actix_web::web;
use anyhow::Context as _;
use chrono::NaiveDateTime;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::db::{self, DbConnection, DbPool};
use crate::metrics::Metrics;
use crate::session::queries;

/// How much one cleanup run may do.
#[derive(Debug, Clone, Copy)]
pub struct SweepLimits {
    /// Rows deleted per statement, so no single transaction holds locks for long.
    pub batch_size: i64,
    /// A run stops starting new batches after this long; the rest waits for the next tick.
    pub time_budget: Duration,
    /// PostgreSQL: a table at least this many heap blocks long whose expired share is at least
    /// [`WALK_SHARE`] is swept block range by block range instead of through the index.
    pub walk_min_blocks: i64,
    /// Before each batch but the first, rest this many times as long as the previous batch
    /// took, so a sweep inside a serving instance leaves the database time for requests.
    /// `textdrop cleanup` does not rest (0).
    pub rest: f64,
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            time_budget: Duration::from_secs(30),
            // 8 MiB: below that, walking the index is a matter of milliseconds anyway.
            walk_min_blocks: 1_024,
            rest: 1.0,
        }
    }
}

/// Runs batches back to back, resting between them as [`SweepLimits::rest`] says.
struct Pace {
    rest: f64,
    previous: Option<Duration>,
}

impl Pace {
    fn new(limits: &SweepLimits) -> Self {
        Self {
            rest: limits.rest,
            previous: None,
        }
    }

    /// Rests after the previous batch if one ran, then runs and times `batch`. Blocking.
    fn batch<T>(&mut self, batch: impl FnOnce() -> T) -> T {
        if let Some(previous) = self.previous.filter(|_| self.rest > 0.0) {
            std::thread::sleep(previous.mul_f64(self.rest));
        }
        let started = Instant::now();
        let out = batch();
        self.previous = Some(started.elapsed());
        out
    }
}

/// The planner-estimated share of expired rows from which a sequential walk of the table beats
/// the `expires_at` index. Measured on PostgreSQL 15: walking costs about 0.13 µs per row
/// passed plus 0.4 µs per row deleted, the index about 1 µs per row deleted (docs/benchmarks.md).
pub const WALK_SHARE: f64 = 0.25;

/// The outcome of one cleanup run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupReport {
    pub deleted: usize,
    pub batches: usize,
    /// The most rows one batch deleted.
    pub largest_batch: usize,
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

/// How a PostgreSQL run walks a big backlog: heap blocks `0..blocks`, in ranges of `step`
/// blocks to begin with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableWalk {
    pub blocks: i64,
    pub step: i64,
}

impl TableWalk {
    /// A walk when the table is long enough and the planner expects at least [`WALK_SHARE`] of
    /// it expired (what PostgreSQL itself would do for one big DELETE: a sequential scan), with
    /// steps holding about `batch_size` rows on average.
    pub fn choose(table: &queries::TableEstimate, limits: &SweepLimits) -> Option<Self> {
        if table.blocks < limits.walk_min_blocks
            || table.rows < 1.0
            || table.expired < table.rows * WALK_SHARE
        {
            return None;
        }
        let rows_per_block = table.rows / table.blocks.max(1) as f64;
        let step = (limits.batch_size as f64 / rows_per_block.max(1.0)).floor() as i64;
        Some(Self {
            blocks: table.blocks,
            step: step.max(1),
        })
    }

    /// The length of the range after one of `step` blocks that deleted `deleted` rows: scaled
    /// so the next deletes about `batch_size` (the estimate behind the first step may be off,
    /// and expired rows are not spread evenly), at most halving or doubling at once, and never
    /// longer than the first step, so a dense stretch after a sparse one cannot overfill a batch.
    pub fn next_step(&self, step: i64, deleted: usize, batch_size: i64) -> i64 {
        let scaled = match deleted {
            0 => step * 2,
            _ => (step as f64 * batch_size as f64 / deleted as f64).floor() as i64,
        };
        scaled.clamp((step / 2).max(1), step * 2).min(self.step)
    }
}

/// Deletes rows that expired at or before `now`, batch by batch, within `limits`. Blocking.
///
/// Batches walk the `expires_at` index. When the first batch comes back full on PostgreSQL and
/// the planner expects a big share of the table expired (the first run after downtime, or
/// `textdrop cleanup` on a large backlog), the rest of the run walks the table in block ranges
/// instead, each its own transaction: ordered index batches visit every row twice, in index
/// order, where one pass in block order is what a single big DELETE would do.
pub fn delete_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limits: SweepLimits,
) -> diesel::QueryResult<CleanupReport> {
    delete_expired_until(conn, now, limits, || false)
}

/// [`delete_expired`], but the run also ends after the batch in flight once `stop()` says so
/// (the server is shutting down). Blocking.
pub fn delete_expired_until(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limits: SweepLimits,
    stop: impl Fn() -> bool,
) -> diesel::QueryResult<CleanupReport> {
    let started = Instant::now();
    let should_stop = || started.elapsed() >= limits.time_budget || stop();
    let mut report = CleanupReport::default();
    let mut pace = Pace::new(&limits);
    while let Some(deleted) =
        report.record(pace.batch(|| queries::delete_expired_batch(conn, now, limits.batch_size))?)
    {
        if (deleted as i64) < limits.batch_size || should_stop() {
            break;
        }
        if let (1, DbConnection::Postgres(pg)) = (report.batches, &mut *conn) {
            if let Some(walk) = TableWalk::choose(&queries::estimate_table(pg, now)?, &limits) {
                walk_table(
                    pg,
                    now,
                    walk,
                    limits.batch_size,
                    should_stop,
                    &mut pace,
                    &mut report,
                )?;
                break;
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Deletes the expired rows of blocks `0..walk.blocks`, a step per transaction, until the end,
/// `should_stop()`, or another sweeper taking the lock. Rows added later sit in new blocks or
/// in space freed here; either way they expire after `now`.
fn walk_table(
    pg: &mut diesel::PgConnection,
    now: NaiveDateTime,
    walk: TableWalk,
    batch_size: i64,
    should_stop: impl Fn() -> bool,
    pace: &mut Pace,
    report: &mut CleanupReport,
) -> diesel::QueryResult<()> {
    report.walked = true;
    let (mut first, mut step) = (0, walk.step);
    while first < walk.blocks && !should_stop() {
        let end = first + step;
        let batch = pace.batch(|| queries::delete_expired_in_blocks(pg, now, first, end))?;
        let Some(deleted) = report.record(batch) else {
            break;
        };
        first = end;
        step = walk.next_step(step, deleted, batch_size);
    }
    Ok(())
}

/// Deletes the expired rows once, on the blocking thread pool, ending early once `stop` is
/// cancelled.
pub async fn run_cleanup(
    pool: &DbPool,
    clock: &Clock,
    limits: SweepLimits,
    stop: CancellationToken,
) -> anyhow::Result<CleanupReport> {
    let pool = pool.clone();
    let now = clock.now();
    web::block(move || {
        let mut slot = pool.get().context("no database connection available")?;
        Ok(db::run(&mut slot, |conn| {
            delete_expired_until(conn, now, limits, || stop.is_cancelled())
        })?)
    })
    .await?
}

/// Live and expired row counts and the oldest expiry, for `textdrop stats` and the gauge.
#[derive(Debug, Clone, Copy)]
pub struct SessionCounts {
    pub live: i64,
    pub expired: i64,
    pub oldest_expiry: Option<NaiveDateTime>,
}

/// Counts the rows on either side of `now`. Blocking.
pub fn count_sessions(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> diesel::QueryResult<SessionCounts> {
    Ok(SessionCounts {
        live: queries::count_live(conn, now)?,
        expired: queries::count_expired(conn, now)?,
        oldest_expiry: queries::oldest_expiry(conn)?,
    })
}

/// The running interval task; [`CleanupTask::stop`] ends it.
pub struct CleanupTask {
    token: CancellationToken,
    handle: JoinHandle<()>,
}

/// `period` plus up to a tenth of it, at random, so instances drift apart.
fn jittered(period: Duration) -> Duration {
    period + period.mul_f64(fastrand::f64() / 10.0)
}

/// One tick: a run, its log line and metrics, then the live-sessions sample.
async fn tick(
    pool: &DbPool,
    clock: &Clock,
    limits: SweepLimits,
    metrics: &Metrics,
    stop: &CancellationToken,
) {
    match run_cleanup(pool, clock, limits, stop.clone()).await {
        Ok(report) if report.skipped && report.batches == 0 => {
            metrics.cleanup_skipped();
            log::debug!("cleanup: another instance is sweeping; skipped this tick");
            return;
        }
        Ok(report) => {
            metrics.observe_cleanup(report.deleted, report.elapsed);
            if report.deleted > 0 {
                log::info!(
                    "cleanup: deleted {} expired session(s) in {} batch(es){}, {} ms",
                    report.deleted,
                    report.batches,
                    if report.walked { " (table walk)" } else { "" },
                    report.elapsed.as_millis()
                );
            } else {
                log::debug!("cleanup: no expired sessions");
            }
        }
        Err(err) => {
            metrics.cleanup_failed();
            log::error!("cleanup failed, will retry next tick: {err:#}");
            return;
        }
    }
    let pool = pool.clone();
    let now = clock.now();
    let live = web::block(move || -> anyhow::Result<i64> {
        Ok(db::run(&mut *pool.get()?, |conn| {
            queries::count_live(conn, now)
        })?)
    })
    .await;
    match live {
        Ok(Ok(live)) => metrics.set_live_sessions(live),
        Ok(Err(err)) => log::warn!("cleanup: counting live sessions failed: {err:#}"),
        Err(err) => log::warn!("cleanup: counting live sessions failed: {err}"),
    }
}

impl CleanupTask {
    /// Starts deleting expired rows every `period` (jittered). Call once per process, never
    /// from the `HttpServer::new` factory (that runs once per worker).
    pub fn spawn(
        pool: DbPool,
        clock: Clock,
        period: Duration,
        limits: SweepLimits,
        metrics: Metrics,
    ) -> Self {
        let token = CancellationToken::new();
        let stop = token.clone();
        let handle = actix_web::rt::spawn(async move {
            // The first run comes soon after startup, at a random moment within a tenth of a
            // period, so instances started together do not collide either.
            let mut wait = jittered(period) - period;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = actix_web::rt::time::sleep(wait) => {}
                }
                tick(&pool, &clock, limits, &metrics, &stop).await;
                wait = jittered(period);
            }
            log::debug!("cleanup task stopped");
        });
        Self { token, handle }
    }

    /// Stops the task and waits for a run in progress to end after its batch in flight.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.handle.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: f64, expired: f64, blocks: i64) -> queries::TableEstimate {
        queries::TableEstimate {
            rows,
            expired,
            blocks,
        }
    }

    #[test]
    fn a_long_table_mostly_expired_is_walked_in_steps_of_about_a_batch() {
        let walk = TableWalk::choose(
            &table(1_010_000.0, 1_000_000.0, 10_383),
            &SweepLimits::default(),
        );
        // 97 rows per block: 51 blocks hold about 5,000 rows.
        assert_eq!(
            walk,
            Some(TableWalk {
                blocks: 10_383,
                step: 51
            })
        );
    }

    #[test]
    fn a_paced_batch_waits_as_long_as_the_previous_one_took() {
        let limits = SweepLimits {
            rest: 1.0,
            ..SweepLimits::default()
        };
        let mut pace = Pace::new(&limits);
        let started = Instant::now();
        for _ in 0..2 {
            pace.batch(|| std::thread::sleep(Duration::from_millis(30)));
        }
        // 30 ms, a 30 ms rest, 30 ms: sleeps never end early, so this holds on any machine.
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn walk_steps_shrink_when_ranges_overfill_and_recover_up_to_the_first() {
        let walk = TableWalk {
            blocks: 10_000,
            step: 65,
        };
        // The estimate was off (a table never analyzed): the next range is shorter.
        assert_eq!(walk.next_step(65, 6_300, 5_000), 51);
        // Right now: the step stays.
        assert_eq!(walk.next_step(51, 4_950, 5_000), 51);
        // A dense stretch: shorter, at most halving, never empty.
        assert_eq!(walk.next_step(51, 50_000, 5_000), 25);
        assert_eq!(walk.next_step(1, 50_000, 5_000), 1);
        // Few or no expired rows: longer again, at most doubling, never past the first step.
        assert_eq!(walk.next_step(25, 1_000, 5_000), 50);
        assert_eq!(walk.next_step(50, 0, 5_000), 65);
    }

    #[test]
    fn the_index_is_kept_for_a_small_share_or_a_short_table() {
        let limits = SweepLimits::default();
        assert_eq!(TableWalk::choose(&table(1e6, 0.2e6, 10_000), &limits), None);
        assert_eq!(
            TableWalk::choose(&table(90_000.0, 90_000.0, 1_000), &limits),
            None
        );
        assert_eq!(TableWalk::choose(&table(0.0, 0.0, 5_000), &limits), None);
    }

    #[test]
    fn a_step_is_never_empty_even_when_a_block_holds_more_than_a_batch() {
        let limits = SweepLimits {
            batch_size: 10,
            ..SweepLimits::default()
        };
        let walk = TableWalk::choose(&table(200_000.0, 100_000.0, 2_000), &limits);
        assert_eq!(walk.map(|w| w.step), Some(1));
    }
}
