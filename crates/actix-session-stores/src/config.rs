//! What a [`Storage`](crate::Storage) is built from: the database URL and the options of the
//! store, the pools, the sweeper and the names that running instances share.

use std::time::Duration;

pub use crate::url::{Backend, DatabaseUrl};

/// Everything a storage is built from. [`Config::new`] gives the defaults for a URL; set the
/// public fields to change them.
///
/// ```
/// use actix_session_stores::{Config, DatabaseUrl};
///
/// let mut config = Config::new(DatabaseUrl::parse("sqlite://sessions.db")?);
/// config.session.rotation_grace = std::time::Duration::ZERO;
/// config.cleanup.interval = Some(std::time::Duration::from_secs(60));
/// # Ok::<(), actix_session_stores::UrlError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Which storage, and how to reach it.
    pub database: DatabaseConfig,
    /// How long sessions live and rotate.
    pub session: SessionConfig,
    /// How expired rows are deleted (SQL storages).
    pub cleanup: CleanupConfig,
    /// The threads that will ask for a store (actix-web's workers): a PostgreSQL or MySQL
    /// storage opens a pool of `database.pool_size` connections for each. Defaults to the
    /// number of cores, actix-web's own default.
    pub workers: usize,
    /// The names instances sharing a storage must agree on.
    pub names: Names,
    /// A read cache of session records in each process, within these bounds; `None` (the
    /// default): every `load` reads the storage. On PostgreSQL every instance hears the
    /// others' writes (`LISTEN`/`NOTIFY`), so a cached read is stale only until a notice
    /// arrives; elsewhere, or when a notice is lost, for at most
    /// [`ReadCacheConfig::max_age`]. Turn it on for SQLite only when one process owns the
    /// file, or accept that bound for the others' writes.
    pub read_cache: Option<ReadCacheConfig>,
}

impl Config {
    /// The defaults for the storage `url` names.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            database: DatabaseConfig {
                url,
                previous_url: None,
                pool_size: 10,
                connect_timeout: Duration::from_secs(30),
                statement_timeout: Duration::from_secs(5),
                run_migrations: true,
            },
            session: SessionConfig {
                max_lifetime: None,
                rotation_grace: Duration::from_secs(60),
            },
            cleanup: CleanupConfig {
                interval: Some(Duration::from_secs(300)),
                mode: CleanupMode::Auto,
                batch_size: 5_000,
            },
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            names: Names::default(),
            read_cache: None,
        }
    }
}

/// Which storage holds the sessions, and how to reach it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The storage.
    pub url: DatabaseUrl,
    /// The storage sessions are moving from: a session not found in `url` is moved over from
    /// there when its visitor comes back.
    pub previous_url: Option<DatabaseUrl>,
    /// Connections per worker (PostgreSQL, MySQL), or in all (SQLite).
    pub pool_size: u32,
    /// How long connecting keeps retrying an unreachable storage before giving up.
    pub connect_timeout: Duration,
    /// How long one statement may run or wait for a lock (SQL databases).
    pub statement_timeout: Duration,
    /// Whether connecting applies pending migrations (else it refuses while some are, with an
    /// [`ErrorKind::MigrationsPending`](crate::ErrorKind::MigrationsPending) error).
    pub run_migrations: bool,
}

/// How long a session lives, besides the cookie's lifetime actix-session hands the store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// How long after its creation (or its last rotation) a session ends at the latest,
    /// whatever its visitor does; `None`: no bound.
    pub max_lifetime: Option<Duration>,
    /// How long a key replaced by `Session::renew()` still reads the previous state,
    /// read-only; zero: not at all.
    pub rotation_grace: Duration,
}

/// How a SQL storage deletes expired rows.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CleanupConfig {
    /// How often; `None`: never (another instance, or a job, does it).
    pub interval: Option<Duration>,
    /// How a PostgreSQL-compatible database elects its sweeper.
    pub mode: CleanupMode,
    /// Rows deleted per statement.
    pub batch_size: i64,
}

/// How a PostgreSQL-compatible database elects its sweeper and serialises migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupMode {
    /// `Postgres` on a vanilla PostgreSQL (from `version()` and its extensions), else
    /// `Portable`.
    Auto,
    /// Advisory locks, ctid batches and the table walk.
    Postgres,
    /// A lease row, primary-key batches, no ctid, xmin or advisory locks.
    Portable,
}

/// The names that instances sharing a storage must agree on: change them only with every
/// instance stopped, or two versions would neither see each other's sessions nor exclude each
/// other while migrating and sweeping.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Names {
    /// Redis: the prefix of every session's key.
    pub redis_prefix: String,
    /// PostgreSQL: the advisory-lock key held while migrating.
    pub postgres_migration_lock: i64,
    /// PostgreSQL: the advisory-lock key the sweeper is elected by.
    pub postgres_sweeper_lock: i64,
    /// MySQL: the named lock held while migrating.
    pub mysql_migration_lock: String,
    /// MySQL: the named lock the sweeper is elected by.
    pub mysql_sweeper_lock: String,
    /// PostgreSQL: the channel the read caches of instances tell each other their writes on.
    pub postgres_cache_channel: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            redis_prefix: "session:".into(),
            // "sessmigr" and "sesssweep" in ASCII.
            postgres_migration_lock: 0x7365_7373_6d69_6772,
            postgres_sweeper_lock: 0x7365_7373_7377_6570,
            mysql_migration_lock: "session_store_migrations".into(),
            mysql_sweeper_lock: "session_store_sweeper".into(),
            postgres_cache_channel: "session_store_cache".into(),
        }
    }
}

/// The read cache's bounds. [`Config::read_cache`](crate::Config::read_cache) holds one to turn
/// the cache on.
///
/// ```
/// use actix_session_stores::{Config, DatabaseUrl, ReadCacheConfig};
///
/// let mut config = Config::new(DatabaseUrl::parse("sqlite://sessions.db")?);
/// config.read_cache = Some(ReadCacheConfig::default());
/// assert_eq!(config.read_cache.unwrap().max_bytes, 64 << 20);
/// # Ok::<(), actix_session_stores::UrlError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadCacheConfig {
    /// The most bytes the entries of one process hold (keys, states, attachments, and a
    /// charge for each entry's bookkeeping).
    pub max_bytes: usize,
    /// A record bigger than this is never cached.
    pub max_entry_bytes: usize,
    /// How long an entry may be served after it was read from the storage: the bound on how
    /// stale a read can be when a write of another instance is not announced (a storage that
    /// cannot tell other instances, a lost notification, a row changed by hand).
    pub max_age: Duration,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 64 << 10,
            max_age: Duration::from_secs(5),
        }
    }
}
