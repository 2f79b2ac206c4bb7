//! Every storage the crate can keep sessions in, one module each: [`sqlite`] (sync Diesel on
//! r2d2, the bundled library), [`postgres`] and [`mysql`] (Diesel's async layer on pure-Rust
//! drivers, a pool per worker), and [`redis`] (one server or a cluster). Each owns its
//! connection setup, its records, its SQL, its locks and its migration step, and gives the
//! rest of the crate a [`Connected`]. The SQL backends share their statements ([`sql`]) and the
//! async ones their pool ([`pool`]).
//!
//! [`connect`] is the one place that picks a module by the URL's scheme: a sixth backend is a
//! new module, an arm in each `match` here and its scheme in `url.rs`.

pub(crate) mod migrate;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "async-sql")]
pub(crate) mod pool;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(any(feature = "sqlite", feature = "async-sql"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(any(feature = "sqlite", feature = "async-sql"))]
pub(crate) mod verdict;
#[cfg(feature = "async-sql")]
pub(crate) mod wait;

use std::rc::Rc;
use std::sync::Arc;

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

use crate::cache::{Fanout, ReadCache};
use crate::config::{Backend, CleanupConfig, Config, DatabaseUrl};
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;

/// A storage, connected (and, for SQL, migrated): what the rest of the crate asks of it.
/// Shared by every thread; what it hands out is for the calling thread.
pub trait Connected: Send + Sync {
    /// Session records for the calling worker thread. Call once per worker: a backend whose
    /// connections belong to the runtime that opened them gives each caller a pool of its
    /// own.
    fn records(&self) -> Rc<dyn Records>;

    /// The sessions read and written whole, on the calling thread's connections (moving them
    /// to another storage); `None` for a storage this crate does not ship.
    fn transfer(&self) -> Option<Rc<dyn Transfer>>;

    /// The cleanup side, for the task (or command) that sweeps on the calling thread; `None`
    /// when the storage expires sessions by itself.
    fn dialect(&self, cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>>;

    /// What is stored at `now`: the live attachments' bytes and `per_record` for each live
    /// record on SQL, the memory in use on Redis. Called by one task, on one thread.
    fn stored_bytes(
        &self,
        now: NaiveDateTime,
        per_record: u64,
    ) -> LocalBoxFuture<'_, anyhow::Result<u64>>;

    /// Starts telling the other instances' read caches what this process writes, and hearing
    /// what they write into `cache`; `None` when this storage cannot (the cache's age bound
    /// alone then holds).
    fn fanout(&self, _cache: &Arc<ReadCache>) -> Option<Arc<dyn Fanout>> {
        None
    }
}

/// How long a request waits for a pooled connection before it fails.
#[cfg(any(feature = "sqlite", feature = "async-sql"))]
pub(crate) const CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most records a chain walk follows: a session keeps one superseded record, so a chain
/// is two or three records long (a copy may add one); this bounds the walk whatever the
/// storage holds.
pub(crate) const CHAIN_WALK: usize = 8;

/// A storage whose backend this build left out (its Cargo feature is off).
#[derive(Debug)]
pub(crate) struct NotCompiled(pub(crate) Backend);

impl std::fmt::Display for NotCompiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let feature = match self.0 {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Redis => "redis",
            Backend::RedisCluster => "redis-cluster",
        };
        write!(
            f,
            "the database URL names {}, which this build leaves out: enable the `{feature}` \
             feature of actix-session-stores",
            self.0
        )
    }
}

impl std::error::Error for NotCompiled {}

/// Whether the storage `url` names expires sessions by itself: no migrations, no sweeper.
pub fn expires_sessions_itself(url: &DatabaseUrl) -> bool {
    matches!(url.backend(), Backend::Redis | Backend::RedisCluster)
}

/// The migrations the SQL database `config` names has not applied, read without changing
/// anything; `None` for a storage without migrations (Redis).
pub async fn migration_plan(config: &Config) -> anyhow::Result<Option<migrate::Plan>> {
    Ok(match config.database.url.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Some(sqlite::plan(config).await?),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Some(postgres::plan(config).await?),
        #[cfg(feature = "mysql")]
        Backend::Mysql => Some(mysql::plan(config).await?),
        Backend::Redis | Backend::RedisCluster => None,
        #[allow(unreachable_patterns)]
        other => return Err(NotCompiled(other).into()),
    })
}

/// Writes a consistent copy of the storage `config` name to the file `to`, while it serves:
/// SQLite only (the other storages have their own tools: `pg_dump`, `mysqldump`, Redis's
/// persistence).
pub async fn backup(config: &Config, to: std::path::PathBuf) -> anyhow::Result<()> {
    match config.database.url.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => sqlite::backup(config, to).await,
        #[cfg(not(feature = "sqlite"))]
        Backend::Sqlite => {
            let _ = to;
            Err(NotCompiled(Backend::Sqlite).into())
        }
        other => anyhow::bail!(
            "a backup copies a SQLite database; back {other} up with its own tools \
             (pg_dump, mysqldump, Redis's RDB or AOF)"
        ),
    }
}

/// The storage on `pool`, which the application owns; a SQL database is migrated (or checked)
/// on one of its connections first.
pub async fn with_pool(
    config: &Config,
    pool: crate::ExistingPool,
) -> anyhow::Result<Arc<dyn Connected>> {
    use crate::ExistingPool;
    Ok(match pool {
        #[cfg(feature = "sqlite")]
        ExistingPool::Sqlite(pool) => {
            Arc::new(sqlite::SqliteStorage::with_pool(config, pool).await?)
        }
        #[cfg(feature = "postgres")]
        ExistingPool::Postgres(pool) => {
            Arc::new(postgres::PgStorage::with_pool(config, pool).await?)
        }
        #[cfg(feature = "mysql")]
        ExistingPool::Mysql(pool) => Arc::new(mysql::MysqlStorage::with_pool(config, pool).await?),
        #[cfg(feature = "redis")]
        ExistingPool::Redis(conn) => Arc::new(redis::RedisStorage::with_connection(config, conn)),
        #[cfg(feature = "redis-cluster")]
        ExistingPool::RedisCluster(conn) => {
            Arc::new(redis::RedisStorage::with_cluster_connection(config, conn))
        }
    })
}

/// Connects to the storage `config` name, retrying an unreachable one with backoff for the
/// connect timeout; a SQL database is migrated first.
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Connected>> {
    Ok(match config.database.url.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Arc::new(sqlite::SqliteStorage::connect(config).await?),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Arc::new(postgres::PgStorage::connect(config).await?),
        #[cfg(feature = "mysql")]
        Backend::Mysql => Arc::new(mysql::MysqlStorage::connect(config).await?),
        #[cfg(feature = "redis")]
        Backend::Redis => Arc::new(redis::RedisStorage::connect(config).await?),
        #[cfg(feature = "redis-cluster")]
        Backend::RedisCluster => Arc::new(redis::RedisStorage::connect_cluster(config).await?),
        #[allow(unreachable_patterns)]
        other => return Err(NotCompiled(other).into()),
    })
}
