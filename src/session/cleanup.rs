//! Deleting expired sessions: the step ([`delete_expired`]), one run off the executor
//! ([`run_cleanup`]), and the interval task the server starts once ([`CleanupTask`]).
//!
//! The task is the app's own, not a database trigger or a cron job. It deletes in bounded
//! batches, each its own short transaction, until a batch comes back short or the run's time
//! budget is spent. On PostgreSQL one sweeper at a time holds a transaction-scoped advisory lock;
//! an instance that does not get it skips that tick and never waits. Ticks are jittered so
//! instances do not wake in lockstep. The task logs how many rows went (info only when some did),
//! logs and carries on when the database fails, and stops when the server shuts down.

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
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            time_budget: Duration::from_secs(30),
        }
    }
}

/// The outcome of one cleanup run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupReport {
    pub deleted: usize,
    pub batches: usize,
    /// Another instance held the sweeper lock, so this run stopped.
    pub skipped: bool,
    pub elapsed: Duration,
}

/// Deletes rows that expired at or before `now`, batch by batch, within `limits`. Blocking.
pub fn delete_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limits: SweepLimits,
) -> diesel::QueryResult<CleanupReport> {
    let started = Instant::now();
    let mut report = CleanupReport::default();
    loop {
        let Some(deleted) = queries::delete_expired_batch(conn, now, limits.batch_size)? else {
            report.skipped = true;
            break;
        };
        report.deleted += deleted;
        report.batches += 1;
        if (deleted as i64) < limits.batch_size || started.elapsed() >= limits.time_budget {
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Deletes the expired rows once, on the blocking thread pool.
pub async fn run_cleanup(
    pool: &DbPool,
    clock: &Clock,
    limits: SweepLimits,
) -> anyhow::Result<CleanupReport> {
    let pool = pool.clone();
    let now = clock.now();
    web::block(move || {
        let mut slot = pool.get().context("no database connection available")?;
        Ok(db::run(&mut slot, |conn| {
            delete_expired(conn, now, limits)
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
async fn tick(pool: &DbPool, clock: &Clock, limits: SweepLimits, metrics: &Metrics) {
    match run_cleanup(pool, clock, limits).await {
        Ok(report) if report.skipped && report.batches == 0 => {
            metrics.cleanup_skipped();
            log::debug!("cleanup: another instance is sweeping; skipped this tick");
            return;
        }
        Ok(report) => {
            metrics.observe_cleanup(report.deleted, report.elapsed);
            if report.deleted > 0 {
                log::info!(
                    "cleanup: deleted {} expired session(s) in {} batch(es), {} ms",
                    report.deleted,
                    report.batches,
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
                tick(&pool, &clock, limits, &metrics).await;
                wait = jittered(period);
            }
            log::debug!("cleanup task stopped");
        });
        Self { token, handle }
    }

    /// Stops the task and waits for a run in progress to finish.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.handle.await;
    }
}
