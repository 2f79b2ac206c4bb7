//! Which storage holds the sessions: the one type the rest of the app asks. [`SessionStorage`]
//! hands each worker its session store, starts the cleanup task where the storage needs one,
//! measures what is stored for the cap, and says when a session will be deleted, so that
//! handlers and the command line never ask which backend is in use (that is `backends`' job).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;

use crate::backends::{self, Storage};
use crate::clock::Clock;
use crate::config::{CleanupSettings, Settings};
use crate::metrics::Metrics;
use crate::session::lifetime::{self, MaxLifetime};
use crate::session::{Records, TextdropStore};
use crate::sweeper::{self, CleanupReport, CleanupTask, Dialect, SessionCounts, SweepPolicy};
use crate::transfer::moving::MovingRecords;

/// The storage `DATABASE_URL` names, connected (and, for SQL, migrated). Shared by every
/// thread.
pub struct SessionStorage {
    storage: Arc<dyn Storage>,
    /// The storage sessions are moving from (`PREVIOUS_DATABASE_URL`).
    previous: Option<Arc<dyn Storage>>,
    clock: Clock,
    max: MaxLifetime,
    grace: Duration,
}

impl SessionStorage {
    /// Connects to the storage `settings` name, retrying an unreachable one with backoff for
    /// the connect timeout; a SQL database is migrated first.
    pub async fn connect(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let previous = match &settings.database.previous_url {
            Some(url) => {
                let mut previous = settings.clone();
                previous.database.url = url.clone();
                previous.database.previous_url = None;
                log::info!(
                    "moving sessions over from {} as their visitors come back",
                    url.location()
                );
                Some(backends::connect(&previous).await?)
            }
            None => None,
        };
        Ok(Self {
            storage: backends::connect(settings).await?,
            previous,
            clock,
            max: MaxLifetime::new(settings.session.max_lifetime),
            grace: settings.session.rotation_grace,
        })
    }

    /// A storage whose records `records` makes (called once per worker, on the worker's
    /// thread): no migrations, no cleanup, nothing counted for the cap. For stores textdrop
    /// does not ship, such as the benchmarks' in-memory ceiling (bench/ceilings/memory-store).
    pub fn with_records(
        settings: &Settings,
        clock: Clock,
        records: impl Fn() -> Rc<dyn Records> + Send + Sync + 'static,
    ) -> Self {
        Self {
            storage: Arc::new(Custom(Box::new(records))),
            previous: None,
            clock,
            max: MaxLifetime::new(settings.session.max_lifetime),
            grace: settings.session.rotation_grace,
        }
    }

    /// Whether the storage `settings` name expires sessions by itself (Redis): it needs no
    /// migrations and no cleanup, so the maintenance commands need not connect.
    pub fn expires_sessions_itself(settings: &Settings) -> bool {
        backends::expires_sessions_itself(&settings.database.url)
    }

    /// The session store for the calling worker, on connections of its own where the storage
    /// needs that. Call once per worker (in the `HttpServer::new` factory).
    pub fn worker_store(&self) -> TextdropStore {
        TextdropStore::new(
            self.worker_records(),
            self.clock.clone(),
            self.max,
            self.grace,
        )
    }

    /// The records for the calling worker: the storage's, moving what they miss over from the
    /// previous storage when there is one.
    fn worker_records(&self) -> Rc<dyn Records> {
        let records = self.storage.records();
        let Some(previous) = &self.previous else {
            return records;
        };
        match (self.storage.transfer(), previous.transfer()) {
            (Some(here), Some(there)) => Rc::new(MovingRecords::new(
                (records, here),
                (previous.records(), there),
            )),
            _ => records,
        }
    }

    /// The cleanup side on the calling thread, or `None` when the storage expires sessions by
    /// itself.
    pub fn sweeper(&self, settings: &CleanupSettings) -> Option<Maintenance> {
        Some(Maintenance {
            dialect: self.storage.sweeper(settings)?,
            clock: self.clock.clone(),
        })
    }

    /// Starts the cleanup task on the calling thread, if this storage needs one and `settings`
    /// ask for it.
    pub fn spawn_cleanup(
        &self,
        settings: &CleanupSettings,
        metrics: Metrics,
    ) -> Option<CleanupTask> {
        let period = settings.interval?;
        let sweeper = self.sweeper(settings)?;
        metrics.cleanup_started(period);
        Some(CleanupTask::spawn(
            sweeper.dialect,
            sweeper.clock,
            period,
            SweepPolicy::serving(settings.batch_size),
            metrics,
        ))
    }

    /// How expired sessions go, for the startup log line.
    pub fn cleanup_note(&self, settings: &CleanupSettings) -> String {
        match (self.storage.sweeper(settings).is_some(), settings.interval) {
            (true, Some(period)) => format!("cleanup every {} s", period.as_secs()),
            (true, None) => "cleanup disabled".into(),
            (false, _) => "no cleanup needed, Redis expires keys".into(),
        }
    }

    /// The bytes the storage holds for the storage cap: the live files' bytes on SQL, Redis's
    /// `used_memory` on Redis. Call it from one thread.
    pub async fn stored_bytes(&self) -> anyhow::Result<u64> {
        self.storage.stored_bytes(self.clock.now()).await
    }

    /// For a handler: when the session loaded for this request will be deleted if the visitor
    /// does not come back (as of the end of this request), and at the latest.
    pub fn kept_until(&self, lifetime: Duration) -> Option<(NaiveDateTime, Option<NaiveDateTime>)> {
        let ttl = chrono::Duration::from_std(lifetime).ok()?;
        lifetime::this_requests_expiry(self.clock.now(), ttl, self.max)
    }
}

/// A storage made by [`SessionStorage::with_records`].
struct Custom(Box<dyn Fn() -> Rc<dyn Records> + Send + Sync>);

impl Storage for Custom {
    fn records(&self) -> Rc<dyn Records> {
        (self.0)()
    }

    fn transfer(&self) -> Option<Rc<dyn crate::transfer::Transfer>> {
        None
    }

    fn sweeper(&self, _cleanup: &CleanupSettings) -> Option<Rc<dyn Dialect>> {
        None
    }

    fn stored_bytes(
        &self,
        _now: NaiveDateTime,
    ) -> futures_util::future::LocalBoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}

/// The maintenance side of a SQL storage, on the calling thread (the commands).
pub struct Maintenance {
    dialect: Rc<dyn Dialect>,
    clock: Clock,
}

impl Maintenance {
    /// Deletes every expired row once, to the end (`textdrop cleanup`).
    pub async fn cleanup_once(&self, batch_size: i64) -> anyhow::Result<CleanupReport> {
        let policy = SweepPolicy::to_the_end(batch_size);
        self.sweep(self.clock.now(), policy, || false).await
    }

    /// One cleanup run of what expired at `now`, within `policy`, ending early once `stop()`
    /// says so: the run the cleanup task does each tick.
    pub async fn sweep(
        &self,
        now: NaiveDateTime,
        policy: SweepPolicy,
        stop: impl Fn() -> bool,
    ) -> anyhow::Result<CleanupReport> {
        sweeper::delete_expired(self.dialect.as_ref(), now, policy, stop).await
    }

    /// Live and expired row counts (`textdrop stats`).
    pub async fn stats(&self) -> anyhow::Result<SessionCounts> {
        self.dialect.counts(self.clock.now()).await
    }
}
