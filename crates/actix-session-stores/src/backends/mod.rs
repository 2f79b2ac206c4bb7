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
pub(crate) mod mysql;
pub(crate) mod pool;
pub(crate) mod postgres;
pub(crate) mod redis;
pub(crate) mod sql;
pub(crate) mod sqlite;
pub(crate) mod verdict;
pub(crate) mod wait;

use std::rc::Rc;
use std::sync::Arc;

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

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
}

/// Whether the storage `url` names expires sessions by itself: no migrations, no sweeper.
pub fn expires_sessions_itself(url: &DatabaseUrl) -> bool {
    matches!(url.backend(), Backend::Redis | Backend::RedisCluster)
}

/// The migrations the SQL database `config` names has not applied, read without changing
/// anything; `None` for a storage without migrations (Redis).
pub async fn migration_plan(config: &Config) -> anyhow::Result<Option<migrate::Plan>> {
    Ok(match config.database.url.backend() {
        Backend::Sqlite => Some(sqlite::plan(config).await?),
        Backend::Postgres => Some(postgres::plan(config).await?),
        Backend::Mysql => Some(mysql::plan(config).await?),
        Backend::Redis | Backend::RedisCluster => None,
    })
}

/// Writes a consistent copy of the storage `config` name to the file `to`, while it serves:
/// SQLite only (the other storages have their own tools: `pg_dump`, `mysqldump`, Redis's
/// persistence).
pub async fn backup(config: &Config, to: std::path::PathBuf) -> anyhow::Result<()> {
    match config.database.url.backend() {
        Backend::Sqlite => sqlite::backup(config, to).await,
        other => anyhow::bail!(
            "a backup copies a SQLite database; back {other} up with its own tools \
             (pg_dump, mysqldump, Redis's RDB or AOF)"
        ),
    }
}

/// Connects to the storage `config` name, retrying an unreachable one with backoff for the
/// connect timeout; a SQL database is migrated first.
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Connected>> {
    Ok(match config.database.url.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteStorage::connect(config).await?),
        Backend::Postgres => Arc::new(postgres::PgStorage::connect(config).await?),
        Backend::Mysql => Arc::new(mysql::MysqlStorage::connect(config).await?),
        Backend::Redis => Arc::new(redis::RedisStorage::connect(config).await?),
        Backend::RedisCluster => Arc::new(redis::RedisStorage::connect_cluster(config).await?),
    })
}
