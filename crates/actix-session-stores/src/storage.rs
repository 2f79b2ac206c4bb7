//! [`Storage`]: the storage a [`Config`] names, connected (and, for SQL, migrated), shared by
//! every worker. It hands each worker its [`Store`], runs the cleanup task where the storage
//! needs one, and measures what is stored.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;

use crate::backends::{self, Connected};
use crate::cache::{CachedRecords, Fanout, ReadCache};
use crate::clock::Clock;
use crate::config::{CleanupConfig, Config, DatabaseUrl};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Events, NoEvents};
use crate::existing::ExistingPool;
use crate::layer;
use crate::moving::MovingRecords;
use crate::session::lifetime::{self, MaxLifetime};
use crate::session::records::Records;
use crate::session::rotation::RotationKey;
use crate::store::Store;
use crate::sweeper::{self, CleanupReport, CleanupTask, Dialect, SessionCounts, SweepPolicy};

/// A connected storage, shared by every worker thread: cheap to clone (clones share the
/// connections' settings and the pools of the main thread). Call [`store`](Self::store) once
/// per worker for that worker's session store.
#[derive(Clone)]
pub struct Storage {
    storage: Arc<dyn Connected>,
    /// The storage sessions are moving from.
    previous: Option<Arc<dyn Connected>>,
    clock: Clock,
    max: MaxLifetime,
    grace: Duration,
    cleanup: CleanupConfig,
    rotation_key: RotationKey,
    events: Arc<dyn Events>,
    /// The process's read cache, when it is on.
    cache: Option<CacheSide>,
}

/// The process's read cache, and how it tells the other instances (when the storage can).
type CacheSide = (Arc<ReadCache>, Option<Arc<dyn Fanout>>);

impl Storage {
    /// Connects to the storage `config` names, retrying an unreachable one with backoff for
    /// `config.database.connect_timeout`; a SQL database is migrated first (or, with
    /// `run_migrations` off, checked to have nothing pending).
    ///
    /// ```
    /// # #[actix_web::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actix_session_stores::{Config, DatabaseUrl, Storage};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    /// let storage = Storage::connect(Config::new(DatabaseUrl::parse(&url)?)).await?;
    /// assert_eq!(storage.maintenance().expect("SQL").counts().await?.live, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: Config) -> Result<Self> {
        let previous = previous(&config).await?;
        let mut storage = Self::over(connected(&config).await?, &config);
        storage.previous = previous;
        Ok(storage)
    }

    /// The storage on a pool (or connection) the application already owns: a SQL database is
    /// migrated on one of its connections first (or, with `run_migrations` off, checked to
    /// have nothing pending). `config.database.url` names the storage in messages and must
    /// be of the pool's backend; its pool options are not used. See [`ExistingPool`] for what
    /// sharing a pool means on each backend.
    ///
    /// ```
    /// # #[actix_web::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actix_session_stores::{Config, DatabaseUrl, Storage};
    /// use diesel::r2d2::{ConnectionManager, Pool};
    /// use diesel::SqliteConnection;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.db").display().to_string();
    /// // The application's own pool, which its handlers use too.
    /// let pool = Pool::builder()
    ///     .max_size(4)
    ///     .build(ConnectionManager::<SqliteConnection>::new(&path))?;
    /// let config = Config::new(DatabaseUrl::parse(&format!("sqlite://{path}"))?);
    /// let storage = Storage::with_pool(config, pool.clone()).await?;
    /// assert_eq!(storage.maintenance().expect("SQL").counts().await?.live, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_pool(config: Config, pool: impl Into<ExistingPool>) -> Result<Self> {
        let pool = pool.into();
        if pool.backend() != config.database.url.backend() {
            return Err(Error::new(
                ErrorKind::Config,
                anyhow::anyhow!(
                    "the database URL names {}, the pool reaches {}",
                    config.database.url.backend(),
                    pool.backend()
                ),
            ));
        }
        let storage = backends::with_pool(&config, pool)
            .await
            .map_err(|err| Error::classify(ErrorKind::Connect, err))?;
        let mut storage = Self::over(storage, &config);
        storage.previous = previous(&config).await?;
        Ok(storage)
    }

    /// A storage over records the application makes (called once per worker, on the
    /// worker's thread), for a storage this crate does not ship: no migrations, no cleanup.
    pub fn with_records(
        config: &Config,
        records: impl Fn() -> Rc<dyn Records> + Send + Sync + 'static,
    ) -> Self {
        Self::over(Arc::new(Custom(Box::new(records))), config)
    }

    fn over(storage: Arc<dyn Connected>, config: &Config) -> Self {
        let cache = config.read_cache.map(|bounds| {
            let cache = Arc::new(ReadCache::new(bounds, true));
            let fanout = storage.fanout(&cache);
            (cache, fanout)
        });
        Self {
            cache,
            storage,
            previous: None,
            clock: Clock::system(),
            max: MaxLifetime::new(config.session.max_lifetime),
            grace: config.session.rotation_grace,
            cleanup: config.cleanup.clone(),
            rotation_key: RotationKey::random(),
            events: Arc::new(NoEvents),
        }
    }

    /// Tells the time by `clock` rather than the system's (tests move it forward).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Derives rotated keys under `key`: instances that share it recognise a rotation sent
    /// again to another of them. By default a key of this process only.
    pub fn with_rotation_key(mut self, key: RotationKey) -> Self {
        self.rotation_key = key;
        self
    }

    /// Reports store calls, rotations, cleanup runs and session counts to `events`.
    pub fn with_events(mut self, events: impl Events) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// Whether the storage `url` names expires sessions by itself (Redis): it needs no
    /// migrations and no cleanup.
    pub fn expires_sessions_itself(url: &DatabaseUrl) -> bool {
        backends::expires_sessions_itself(url)
    }

    /// Writes a consistent copy of the SQLite database `config` names to the file `to` while
    /// it may be serving (SQLite's online backup). Other storages have their own tools
    /// (`pg_dump`, `mysqldump`, Redis's persistence): an error of kind `Config`.
    pub async fn backup(config: &Config, to: std::path::PathBuf) -> Result<()> {
        backends::backup(config, to)
            .await
            .map_err(|err| Error::classify(ErrorKind::Failed, err))
    }

    /// The session store for the calling worker, on connections of its own where the storage
    /// needs that. Call once per worker (in the `HttpServer::new` factory).
    pub fn store(&self) -> Store {
        Store::new(
            self.worker_records(),
            self.clock.clone(),
            self.max,
            self.grace,
        )
        .with_rotation_key(self.rotation_key.clone())
        .with_events(Arc::clone(&self.events))
    }

    /// The records for the calling worker: the storage's, moving what they miss over from the
    /// previous storage when there is one.
    fn worker_records(&self) -> Rc<dyn Records> {
        let records = self.moving_records();
        match &self.cache {
            Some((cache, fanout)) => Rc::new(CachedRecords::new(
                records,
                Arc::clone(cache),
                fanout.clone(),
            )),
            None => records,
        }
    }

    fn moving_records(&self) -> Rc<dyn Records> {
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

    /// The bytes this process's read cache holds now (`None`: the cache is off), as charged
    /// against [`ReadCacheConfig::max_bytes`](crate::ReadCacheConfig::max_bytes).
    pub fn read_cache_bytes(&self) -> Option<usize> {
        self.cache.as_ref().map(|(cache, _)| cache.bytes())
    }

    /// The maintenance side on the calling thread, or `None` when the storage expires
    /// sessions by itself.
    pub fn maintenance(&self) -> Option<Maintenance> {
        Some(Maintenance {
            dialect: self.storage.dialect(&self.cleanup)?,
            clock: self.clock.clone(),
            batch_size: self.cleanup.batch_size,
        })
    }

    /// Whether this storage needs the cleanup task (SQL) or expires sessions itself (Redis).
    pub fn needs_cleanup(&self) -> bool {
        self.storage.dialect(&self.cleanup).is_some()
    }

    /// Starts the cleanup task on the calling thread (an actix interval task, every
    /// `config.cleanup.interval`, jittered), if this storage needs one and the configuration
    /// asks for it. Call once per process, outside the `HttpServer::new` factory (which runs
    /// once per worker); stop it with [`CleanupTask::stop`] on shutdown.
    pub fn spawn_cleanup(&self) -> Option<CleanupTask> {
        let period = self.cleanup.interval?;
        let maintenance = self.maintenance()?;
        self.events.cleanup_started(period);
        Some(CleanupTask::spawn(
            maintenance.dialect,
            maintenance.clock,
            period,
            SweepPolicy::serving(self.cleanup.batch_size),
            Arc::clone(&self.events),
        ))
    }

    /// The bytes the storage holds: on SQL, the live attachments' bytes plus `per_record`
    /// for each live record (a charge for its state and row); on Redis, the server's
    /// `used_memory`. For an application's cap on storage. Call it from one thread.
    pub async fn stored_bytes(&self, per_record: u64) -> Result<u64> {
        self.storage
            .stored_bytes(self.clock.now(), per_record)
            .await
            .map_err(|err| Error::classify(ErrorKind::Failed, err))
    }

    /// For a handler inside the [`layer`]: when the session loaded for this request will be
    /// deleted if the visitor does not come back (as of the end of this request, given the
    /// cookie's `lifetime`), and when at the latest. `None` when no session was loaded.
    pub fn kept_until(&self, lifetime: Duration) -> Option<(NaiveDateTime, Option<NaiveDateTime>)> {
        let ttl = chrono::Duration::from_std(lifetime).ok()?;
        let (loaded, _) = layer::loaded()?;
        let now = self.clock.now();
        let kept_until =
            lifetime::extension(loaded, now, ttl, self.max).unwrap_or(loaded.expires_at);
        Some((kept_until, self.max.deadline(loaded.created_at)))
    }
}

/// The storage sessions are moving from, connected, when `config` names one.
async fn previous(config: &Config) -> Result<Option<Arc<dyn Connected>>> {
    let Some(url) = &config.database.previous_url else {
        return Ok(None);
    };
    let mut previous = config.clone();
    previous.database.url = url.clone();
    previous.database.previous_url = None;
    log::info!(
        "moving sessions over from {} as their visitors come back",
        url.location()
    );
    Ok(Some(connected(&previous).await?))
}

async fn connected(config: &Config) -> Result<Arc<dyn Connected>> {
    backends::connect(config)
        .await
        .map_err(|err| Error::classify(ErrorKind::Connect, err))
}

/// A storage made by [`Storage::with_records`].
struct Custom(Box<dyn Fn() -> Rc<dyn Records> + Send + Sync>);

impl Connected for Custom {
    fn records(&self) -> Rc<dyn Records> {
        (self.0)()
    }

    fn transfer(&self) -> Option<Rc<dyn crate::transfer::Transfer>> {
        None
    }

    fn dialect(&self, _cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>> {
        None
    }

    fn stored_bytes(
        &self,
        _now: NaiveDateTime,
        _per_record: u64,
    ) -> futures_util::future::LocalBoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}

/// The maintenance side of a SQL storage, on the calling thread: a cleanup run now, the
/// session counts.
pub struct Maintenance {
    dialect: Rc<dyn Dialect>,
    clock: Clock,
    batch_size: i64,
}

impl Maintenance {
    /// Deletes every expired row once, to the end, in batches of the configured size.
    pub async fn cleanup_once(&self) -> Result<CleanupReport> {
        let policy = SweepPolicy::to_the_end(self.batch_size);
        self.sweep(self.clock.now(), policy, || false).await
    }

    /// One cleanup run of what expired at `now`, within `policy`, ending early once `stop()`
    /// says so: the run the cleanup task does each tick.
    pub async fn sweep(
        &self,
        now: NaiveDateTime,
        policy: SweepPolicy,
        stop: impl Fn() -> bool,
    ) -> Result<CleanupReport> {
        sweeper::delete_expired(self.dialect.as_ref(), now, policy, stop)
            .await
            .map_err(|err| Error::classify(ErrorKind::Failed, err))
    }

    /// Deletes every session written before sealing (still plain), at once: for an operator
    /// who will not wait for them to expire. Their visitors start again. How many went.
    pub async fn delete_plain(&self) -> Result<usize> {
        self.dialect
            .delete_plain()
            .await
            .map_err(|err| Error::classify(ErrorKind::Failed, err))
    }

    /// Live and expired session counts, and the oldest expiry.
    pub async fn counts(&self) -> Result<SessionCounts> {
        self.dialect
            .counts(self.clock.now())
            .await
            .map_err(|err| Error::classify(ErrorKind::Failed, err))
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod cache_tests;
