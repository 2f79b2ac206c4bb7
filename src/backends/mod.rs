//! Every storage textdrop can keep sessions in, one module each: [`sqlite`] (sync Diesel on
//! r2d2, the bundled library), [`postgres`] and [`mysql`] (Diesel's async layer on pure-Rust
//! drivers, a pool per worker), and [`redis`] (one server or a cluster). Each owns its
//! connection setup, its records, its SQL, its locks and its migration step, and gives the
//! rest of the app a [`Storage`]. The SQL backends share their statements ([`sql`]) and the
//! async ones their pool ([`pool`]).
//!
//! [`connect`] is the one place that picks a module by the URL's scheme: a sixth backend is a
//! new module and a line there (and its scheme in `config::database_url`).

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

use crate::config::{Backend, CleanupSettings, DatabaseUrl, Settings};
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;

/// A storage, connected (and, for SQL, migrated): what the rest of textdrop asks of it.
/// Shared by every thread; what it hands out is for the calling thread.
pub trait Storage: Send + Sync {
    /// Session records for the calling worker thread. Call once per worker: a backend whose
    /// connections belong to the runtime that opened them gives each caller a pool of its
    /// own.
    fn records(&self) -> Rc<dyn Records>;

    /// The sessions read and written whole, on the calling thread's connections (moving them
    /// to another storage); `None` for a storage textdrop does not ship.
    fn transfer(&self) -> Option<Rc<dyn Transfer>>;

    /// The cleanup side, for the task (or command) that sweeps on the calling thread; `None`
    /// when the storage expires sessions by itself.
    fn sweeper(&self, cleanup: &CleanupSettings) -> Option<Rc<dyn Dialect>>;

    /// What the storage cap counts as stored at `now`: the live files' bytes on SQL, the
    /// memory in use on Redis. Called by one task, on the main thread.
    fn stored_bytes(&self, now: NaiveDateTime) -> LocalBoxFuture<'_, anyhow::Result<u64>>;
}

/// Whether the storage `url` names expires sessions by itself: no migrations, no sweeper.
pub fn expires_sessions_itself(url: &DatabaseUrl) -> bool {
    matches!(url.backend(), Backend::Redis | Backend::RedisCluster)
}

/// The migrations the SQL database `settings` names has not applied, read without changing
/// anything; `None` for a storage without migrations (Redis).
pub async fn migration_plan(settings: &Settings) -> anyhow::Result<Option<migrate::Plan>> {
    Ok(match settings.database.url.backend() {
        Backend::Sqlite => Some(sqlite::plan(settings).await?),
        Backend::Postgres => Some(postgres::plan(settings).await?),
        Backend::Mysql => Some(mysql::plan(settings).await?),
        Backend::Redis | Backend::RedisCluster => None,
    })
}

/// Writes a consistent copy of the storage `settings` name to the file `to`, while it serves:
/// SQLite only (the other storages have their own tools: `pg_dump`, `mysqldump`, Redis's
/// persistence).
pub async fn backup(settings: &Settings, to: std::path::PathBuf) -> anyhow::Result<()> {
    match settings.database.url.backend() {
        Backend::Sqlite => sqlite::backup(settings, to).await,
        other => anyhow::bail!(
            "`textdrop backup` copies a SQLite database; back {other} up with its own tools \
             (pg_dump, mysqldump, Redis's RDB or AOF): see docs/operations.md"
        ),
    }
}

/// Connects to the storage `settings` name, retrying an unreachable one with backoff for the
/// connect timeout; a SQL database is migrated first.
pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match settings.database.url.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteStorage::connect(settings).await?),
        Backend::Postgres => Arc::new(postgres::PgStorage::connect(settings).await?),
        Backend::Mysql => Arc::new(mysql::MysqlStorage::connect(settings).await?),
        Backend::Redis => Arc::new(redis::RedisStorage::connect(settings).await?),
        Backend::RedisCluster => Arc::new(redis::RedisStorage::connect_cluster(settings).await?),
    })
}
