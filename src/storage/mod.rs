//! Which storage holds the sessions: the one type that knows. [`SessionStorage`] answers
//! everything the rest of the app asks of it (the store for the session middleware, readiness,
//! whether there are migrations and expired rows to clean up, the expiry a page should show),
//! so that handlers and the command line never ask which backend is in use.
//!
//! SQL (PostgreSQL or SQLite) is textdrop's own [`DieselSessionStore`] over a migrated
//! database, with the cleanup task. Redis is actix-session's maintained `RedisSessionStore`;
//! Redis expires keys itself. With the `bench-cookie-store` feature, `cookie://` keeps the
//! whole state in the cookie (the benchmarks' ceiling for the web layer alone).

mod any_store;

use std::time::Duration;

use actix_session::storage::RedisSessionStore;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{CleanupSettings, DatabaseSettings};
use crate::db::{self, Backend, DbError, DbPool};

use crate::metrics::Metrics;
use crate::retry;
use crate::session::queries::{self, SessionCounts};
use crate::session::store::expiry_after_this_request;
use crate::session::sweep::{self, CleanupReport, SweepLimits};
use crate::session::{CleanupTask, DieselSessionStore, MeteredStore};
pub use any_store::AnyStore;

/// Readiness waits at most this long for the storage to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The storage `DATABASE_URL` names, connected (and, for SQL, migrated).
pub enum SessionStorage {
    Sql(SqlStorage),
    Redis(RedisStorage),
    #[cfg(feature = "bench-cookie-store")]
    Cookie,
}

/// A migrated SQL database and the pool on it.
#[derive(Clone)]
pub struct SqlStorage {
    pool: DbPool,
    clock: Clock,
}

/// Redis, through actix-session's `RedisSessionStore`, plus a connection of our own for
/// readiness.
pub struct RedisStorage {
    store: RedisSessionStore,
    connection: ConnectionManager,
}

impl SessionStorage {
    /// Connects to the storage `settings` names, retrying an unreachable one with backoff for
    /// the connect timeout; a SQL database is migrated first.
    pub async fn connect(settings: &DatabaseSettings, clock: Clock) -> anyhow::Result<Self> {
        match settings.url.backend() {
            Backend::Postgres | Backend::Sqlite => {
                Ok(Self::Sql(SqlStorage::connect(settings, clock).await?))
            }
            Backend::Redis => Ok(Self::Redis(RedisStorage::connect(settings).await?)),
            #[cfg(feature = "bench-cookie-store")]
            Backend::Cookie => {
                log::warn!("cookie:// keeps session state in the cookie (benchmarks only)");
                Ok(Self::Cookie)
            }
        }
    }

    /// The storage's maintenance side (migrations, cleanup, counts), connected and migrated,
    /// or `None` when it has none: Redis expires keys itself, so nothing is connected then.
    pub async fn maintenance(
        settings: &DatabaseSettings,
        clock: Clock,
    ) -> anyhow::Result<Option<SqlStorage>> {
        match settings.url.backend() {
            Backend::Postgres | Backend::Sqlite => {
                Ok(Some(SqlStorage::connect(settings, clock).await?))
            }
            _ => Ok(None),
        }
    }

    /// The store for the session middleware, with metrics.
    pub fn store(&self, metrics: Metrics) -> MeteredStore<AnyStore> {
        let store = match self {
            Self::Sql(sql) => {
                AnyStore::Sql(DieselSessionStore::new(sql.pool.clone(), sql.clock.clone()))
            }
            Self::Redis(redis) => AnyStore::Redis(redis.store.clone()),
            #[cfg(feature = "bench-cookie-store")]
            Self::Cookie => AnyStore::Cookie(Default::default()),
        };
        MeteredStore::new(store, metrics)
    }

    /// Starts the cleanup task, if this storage needs one and `settings` ask for it.
    pub fn spawn_cleanup(
        &self,
        settings: &CleanupSettings,
        metrics: Metrics,
    ) -> Option<CleanupTask> {
        let Self::Sql(sql) = self else {
            return None;
        };
        let period = settings.interval?;
        Some(CleanupTask::spawn(
            sql.pool.clone(),
            sql.clock.clone(),
            period,
            SweepLimits::serving(settings.batch_size),
            metrics,
        ))
    }

    /// How expired sessions go, for the startup log line.
    pub fn cleanup_note(&self, settings: &CleanupSettings) -> String {
        match (self, settings.interval) {
            (Self::Sql(_), Some(period)) => format!("cleanup every {} s", period.as_secs()),
            (Self::Sql(_), None) => "cleanup disabled".into(),
            (Self::Redis(_), _) => "no cleanup needed, Redis expires keys".into(),
            #[cfg(feature = "bench-cookie-store")]
            (Self::Cookie, _) => "no server-side state".into(),
        }
    }

    /// Whether the storage answers a trivial request within a couple of seconds.
    pub async fn check_ready(&self) -> anyhow::Result<()> {
        match self {
            Self::Sql(sql) => {
                db::with_conn_within(&sql.pool, READY_TIMEOUT, |conn| {
                    conn.batch_execute("SELECT 1")
                })
                .await?;
            }
            Self::Redis(redis) => {
                let mut connection = redis.connection.clone();
                let command = redis::cmd("PING");
                let ping = command.query_async::<String>(&mut connection);
                actix_web::rt::time::timeout(READY_TIMEOUT, ping).await??;
            }
            #[cfg(feature = "bench-cookie-store")]
            Self::Cookie => {}
        }
        Ok(())
    }

    /// When the session loaded for this request will be deleted if the visitor does not come
    /// back, as of the end of this request. Call it from a handler.
    pub fn kept_until(&self, now: NaiveDateTime, lifetime: Duration) -> Option<NaiveDateTime> {
        let ttl = chrono::Duration::from_std(lifetime).ok()?;
        match self {
            Self::Sql(_) => expiry_after_this_request(now, ttl),
            // Every request of a live session renews the key's TTL.
            Self::Redis(_) => Some(now + ttl),
            #[cfg(feature = "bench-cookie-store")]
            Self::Cookie => None,
        }
    }
}

impl SqlStorage {
    async fn connect(settings: &DatabaseSettings, clock: Clock) -> anyhow::Result<Self> {
        let pool = db::connect_and_migrate(settings).await?;
        Ok(Self { pool, clock })
    }

    /// Deletes every expired row once, to the end (`textdrop cleanup`).
    pub async fn cleanup_once(&self, batch_size: i64) -> Result<CleanupReport, DbError> {
        let limits = SweepLimits::to_the_end(batch_size);
        sweep::delete_expired(&self.pool, self.clock.now(), limits).await
    }

    /// Live and expired row counts (`textdrop stats`).
    pub async fn stats(&self) -> Result<SessionCounts, DbError> {
        let now = self.clock.now();
        db::with_conn(&self.pool, move |conn| queries::count_sessions(conn, now)).await
    }
}

impl RedisStorage {
    async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.target().to_owned();
        let what = format!("Redis at {}", settings.url.location());
        retry::with_backoff(&what, settings.connect_timeout, || {
            let url = url.clone();
            async move {
                let connection = ConnectionManager::new(redis::Client::open(url.as_str())?).await?;
                let store = RedisSessionStore::builder(url)
                    .cache_keygen(redis_key)
                    .build()
                    .await?;
                Ok(Self { store, connection })
            }
        })
        .await
    }
}

/// The Redis key of a session: a hash of the session key, never the key itself.
fn redis_key(session_key: &str) -> String {
    format!(
        "textdrop:session:{}",
        hex::encode(Sha256::digest(session_key.as_bytes()))
    )
}
