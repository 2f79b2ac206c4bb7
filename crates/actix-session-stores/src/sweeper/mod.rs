//! Deleting expired sessions inside the application: not a database trigger or a cron job.
//!
//! One sweep loop ([`run::delete_expired`]) over a small [`Dialect`] each SQL backend
//! implements (its batch statement and election, and optionally a table walk or a reclaim
//! step); the policy (batch size, time budget, rest) is the same for all. The server starts
//! the interval task once ([`CleanupTask::spawn`]). Each tick runs one sweep, logs how many
//! rows went (info only when some did), reports the run and the session counts to the
//! application's [`Events`](crate::Events). A failing run is logged and the task carries on at the next tick.
//! Ticks are jittered so instances do not wake in lockstep; on shutdown a run in progress ends
//! after its batch in flight.

mod dialect;
mod pace;
mod policy;
mod run;
mod walk;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::Events;
pub use dialect::SessionCounts;
#[allow(unused_imports)] // Which of them a backend uses depends on the features.
pub(crate) use dialect::{Dialect, DialectFuture, Reclaimer, Sizing, TableEstimate, Walker};
pub use policy::SweepPolicy;
pub use run::{delete_expired, CleanupReport};

/// The running interval task; [`CleanupTask::stop`] ends it.
pub struct CleanupTask {
    token: CancellationToken,
    handle: JoinHandle<()>,
}

/// `period` plus up to a tenth of it, at random, so instances drift apart.
fn jittered(period: Duration) -> Duration {
    period + period.mul_f64(fastrand::f64() / 10.0)
}

/// After this many ticks in a row skipped for a held sweeper lock, the task warns: one
/// instance sweeping while the others skip is normal, a lock held for minutes is not.
const SKIPS_BEFORE_WARNING: u32 = 3;

/// What one tick works with.
struct Sweeper {
    dialect: Rc<dyn Dialect>,
    clock: Clock,
    policy: SweepPolicy,
    events: Arc<dyn Events>,
    skipped_in_a_row: std::cell::Cell<u32>,
}

impl Sweeper {
    /// One tick: a run, its log line and metrics, then the live-sessions sample.
    async fn tick(&self, stop: &CancellationToken) {
        let now = self.clock.now();
        let run = delete_expired(self.dialect.as_ref(), now, self.policy, || {
            stop.is_cancelled()
        });
        match run.await {
            Ok(report) if report.skipped && report.batches == 0 => {
                self.events.cleanup_skipped();
                let skipped = self.skipped_in_a_row.get() + 1;
                self.skipped_in_a_row.set(skipped);
                if skipped == SKIPS_BEFORE_WARNING {
                    log::warn!(
                        "cleanup: skipped {skipped} ticks in a row because another database \
                         session holds the sweeper's lock; if no other instance is sweeping, \
                         look for a stuck session holding it"
                    );
                } else {
                    log::debug!("cleanup: another instance is sweeping; skipped this tick");
                }
                self.sample().await;
                return;
            }
            Ok(report) => {
                self.skipped_in_a_row.set(0);
                self.events.cleanup_ran(report.deleted, report.elapsed);
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
                self.events.cleanup_failed();
                log::error!("cleanup failed, will retry next tick: {err:#}");
                return;
            }
        }
        self.sample().await;
    }

    /// The live sessions and the backlog, on the sweeper's connection.
    async fn sample(&self) {
        let now = self.clock.now();
        match self.dialect.counts(now).await {
            Ok(counts) => {
                let age = counts
                    .oldest_expiry
                    .filter(|_| counts.expired > 0)
                    .and_then(|oldest| (now - oldest).to_std().ok())
                    .unwrap_or_default();
                self.events
                    .sessions_counted(counts.live, counts.expired, age);
            }
            Err(err) => log::warn!("cleanup: counting sessions failed: {err:#}"),
        }
    }
}

impl CleanupTask {
    /// Starts deleting expired rows every `period` (jittered), on the calling thread. Call
    /// once per process, never from the `HttpServer::new` factory (that runs once per worker).
    pub(crate) fn spawn(
        dialect: Rc<dyn Dialect>,
        clock: Clock,
        period: Duration,
        policy: SweepPolicy,
        events: Arc<dyn Events>,
    ) -> Self {
        let token = CancellationToken::new();
        let stop = token.clone();
        let sweeper = Sweeper {
            dialect,
            clock,
            policy,
            events,
            skipped_in_a_row: Default::default(),
        };
        let handle = actix_web::rt::spawn(async move {
            // The first run comes soon after startup, at a random moment within a tenth of a
            // period, so instances started together do not collide either.
            let mut wait = jittered(period) - period;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = actix_web::rt::time::sleep(wait) => {}
                }
                sweeper.tick(&stop).await;
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
