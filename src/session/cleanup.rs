//! Deleting expired sessions: the step ([`delete_expired`]), one run off the executor
//! ([`run_cleanup`]), and the interval task the server starts once ([`CleanupTask`]).
//!
//! The task is the app's own, not a database trigger or a cron job: it logs how many rows went
//! (info only when some did), logs and carries on when the database fails, and stops when the
//! server shuts down.

use std::time::{Duration, Instant};

use actix_web::rt::task::JoinHandle;
use actix_web::rt::time::interval;
use actix_web::web;
use anyhow::Context as _;
use chrono::NaiveDateTime;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::db::{DbConnection, DbPool};
use crate::session::queries;

/// Rows deleted per statement, so no single transaction holds locks for long.
pub const BATCH_SIZE: i64 = 5_000;

/// Deletes every row that expired at or before `now`, in batches of `batch_size`, and returns
/// how many went. Blocking.
pub fn delete_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    batch_size: i64,
) -> diesel::QueryResult<usize> {
    let mut total = 0;
    loop {
        let deleted = queries::delete_expired_batch(conn, now, batch_size)?;
        total += deleted;
        if (deleted as i64) < batch_size {
            return Ok(total);
        }
    }
}

/// The outcome of one cleanup run.
#[derive(Debug, Clone, Copy)]
pub struct CleanupReport {
    pub deleted: usize,
    pub elapsed: Duration,
}

/// Deletes the expired rows once, on the blocking thread pool.
pub async fn run_cleanup(pool: &DbPool, clock: &Clock) -> anyhow::Result<CleanupReport> {
    let pool = pool.clone();
    let now = clock.now();
    web::block(move || {
        let started = Instant::now();
        let mut conn = pool.get().context("no database connection available")?;
        let deleted = delete_expired(&mut conn, now, BATCH_SIZE)?;
        Ok(CleanupReport {
            deleted,
            elapsed: started.elapsed(),
        })
    })
    .await?
}

/// The running interval task; [`CleanupTask::stop`] ends it.
pub struct CleanupTask {
    token: CancellationToken,
    handle: JoinHandle<()>,
}

impl CleanupTask {
    /// Starts deleting expired rows now and then every `period`. Call once per process, never
    /// from the `HttpServer::new` factory (that runs once per worker).
    pub fn spawn(pool: DbPool, clock: Clock, period: Duration) -> Self {
        let token = CancellationToken::new();
        let stop = token.clone();
        let handle = actix_web::rt::spawn(async move {
            let mut ticks = interval(period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                match run_cleanup(&pool, &clock).await {
                    Ok(report) if report.deleted > 0 => log::info!(
                        "cleanup: deleted {} expired session(s) in {} ms",
                        report.deleted,
                        report.elapsed.as_millis()
                    ),
                    Ok(_) => log::debug!("cleanup: no expired sessions"),
                    Err(err) => log::error!("cleanup failed, will retry next tick: {err:#}"),
                }
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
