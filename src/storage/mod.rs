//! Which storage holds the sessions: the one type that knows. [`SessionStorage`] answers
//! everything the rest of the app asks of it (the store for the session middleware, readiness,
//! whether there are migrations and expired rows to clean up, the expiry a page should show),
//! so that handlers and the command line never ask which backend is in use.
//!
//! SQL (PostgreSQL, MySQL/MariaDB or SQLite) is textdrop's own [`DieselSessionStore`] over a
//! migrated database, with the cleanup task. Redis and Redis Cluster are textdrop's
//! [`RedisStore`], the same semantics on a hash per session; Redis expires keys itself. With the
//! `bench-cookie-store` feature, `cookie://` keeps the whole state in the cookie (the
//! benchmarks' ceiling for the web layer alone).

mod any_store;
#[cfg(feature = "bench-cookie-store")]
mod cookie;
mod redis;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;

pub use self::redis::{ClusterStorage, RedisStorage};
use crate::clock::Clock;
use crate::config::{CleanupSettings, Settings};
use crate::db::{self, Backend, DbError, DbPool};
use crate::metrics::Metrics;
use crate::session::lease::Holder;
use crate::session::lifetime::{self, MaxLifetime};
use crate::session::queries::{self, SessionCounts};
use crate::session::redis_records;
use crate::session::sweep::{self, CleanupReport, SweepLimits};
use crate::session::RedisStore;
use crate::session::{CleanupTask, DieselSessionStore, MeteredStore};
pub use any_store::AnyStore;

/// Readiness waits at most this long for the storage to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The storage `DATABASE_URL` names, connected (and, for SQL, migrated).
pub struct SessionStorage {
    backend: Connected,
    clock: Clock,
    max: MaxLifetime,
}

enum Connected {
    Sql(SqlStorage),
    Redis(RedisStorage),
    RedisCluster(ClusterStorage),
    #[cfg(feature = "bench-cookie-store")]
    Cookie,
}

/// A migrated SQL database and the pool on it.
#[derive(Clone)]
pub struct SqlStorage {
    pool: DbPool,
    clock: Clock,
    sqlite: bool,
    /// Portable mode: a lease row elects the sweeper, and this is our name on it (see
    /// `session::lease`).
    portable: Option<Holder>,
}

/// How long a sweeper lease lasts in portable mode: a few cleanup intervals, and at least a
/// minute, so an instance that stalls or dies frees it soon, and one that sweeps keeps it.
fn lease_for(interval: Option<Duration>) -> Duration {
    interval.map_or(Duration::from_secs(60), |i| {
        (i * 3).max(Duration::from_secs(60))
    })
}

impl SessionStorage {
    /// Connects to the storage `settings` name, retrying an unreachable one with backoff for
    /// the connect timeout; a SQL database is migrated first.
    pub async fn connect(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let database = &settings.database;
        let backend = match database.url.backend() {
            Backend::Postgres | Backend::Sqlite | Backend::Mysql => {
                Connected::Sql(SqlStorage::connect(settings, clock.clone()).await?)
            }
            Backend::Redis => Connected::Redis(RedisStorage::connect(database).await?),
            Backend::RedisCluster => {
                Connected::RedisCluster(ClusterStorage::connect(database).await?)
            }
            #[cfg(feature = "bench-cookie-store")]
            Backend::Cookie => {
                log::warn!("cookie:// keeps session state in the cookie (benchmarks only)");
                Connected::Cookie
            }
        };
        Ok(Self {
            backend,
            clock,
            max: MaxLifetime::new(settings.session.max_lifetime),
        })
    }

    /// The storage's maintenance side (migrations, cleanup, counts), connected and migrated,
    /// or `None` when it has none: Redis expires keys itself, so nothing is connected then.
    pub async fn maintenance(
        settings: &Settings,
        clock: Clock,
    ) -> anyhow::Result<Option<SqlStorage>> {
        match settings.database.url.backend() {
            Backend::Postgres | Backend::Sqlite | Backend::Mysql => {
                Ok(Some(SqlStorage::connect(settings, clock).await?))
            }
            _ => Ok(None),
        }
    }

    /// The store for the session middleware, with metrics.
    pub fn store(&self, metrics: Metrics) -> MeteredStore<AnyStore> {
        let (clock, max) = (self.clock.clone(), self.max);
        let store = match &self.backend {
            Connected::Sql(sql) => {
                AnyStore::Sql(DieselSessionStore::new(sql.pool.clone(), clock, max))
            }
            Connected::Redis(redis) => {
                AnyStore::Redis(RedisStore::new(redis.connection.clone(), clock, max))
            }
            Connected::RedisCluster(cluster) => AnyStore::RedisCluster(RedisStore::on_cluster(
                cluster.connection.clone(),
                clock,
                max,
            )),
            #[cfg(feature = "bench-cookie-store")]
            Connected::Cookie => AnyStore::Cookie(Default::default()),
        };
        MeteredStore::new(store, metrics)
    }

    /// Starts the cleanup task, if this storage needs one and `settings` ask for it.
    pub fn spawn_cleanup(
        &self,
        settings: &CleanupSettings,
        metrics: Metrics,
    ) -> Option<CleanupTask> {
        let Connected::Sql(sql) = &self.backend else {
            return None;
        };
        let period = settings.interval?;
        Some(CleanupTask::spawn(
            sql.pool.clone(),
            sql.clock.clone(),
            period,
            sql.limits(SweepLimits::serving(settings.batch_size), settings.interval),
            metrics,
        ))
    }

    /// How expired sessions go, for the startup log line.
    pub fn cleanup_note(&self, settings: &CleanupSettings) -> String {
        match (&self.backend, settings.interval) {
            (Connected::Sql(_), Some(period)) => format!("cleanup every {} s", period.as_secs()),
            (Connected::Sql(_), None) => "cleanup disabled".into(),
            (Connected::Redis(_) | Connected::RedisCluster(_), _) => {
                "no cleanup needed, Redis expires keys".into()
            }
            #[cfg(feature = "bench-cookie-store")]
            (Connected::Cookie, _) => "no server-side state".into(),
        }
    }

    /// Whether the storage answers a trivial request within a couple of seconds.
    pub async fn check_ready(&self) -> anyhow::Result<()> {
        match &self.backend {
            Connected::Sql(sql) => {
                db::with_conn_within(&sql.pool, READY_TIMEOUT, |conn| {
                    conn.batch_execute("SELECT 1")
                })
                .await?;
            }
            Connected::Redis(redis) => {
                let mut connection = redis.connection.clone();
                let command = ::redis::cmd("PING");
                let ping = command.query_async::<String>(&mut connection);
                actix_web::rt::time::timeout(READY_TIMEOUT, ping).await??;
            }
            Connected::RedisCluster(cluster) => {
                let ok = redis_records::cluster_is_ok(&cluster.connection);
                if !actix_web::rt::time::timeout(READY_TIMEOUT, ok).await?? {
                    anyhow::bail!("the cluster's state is not ok");
                }
            }
            #[cfg(feature = "bench-cookie-store")]
            Connected::Cookie => {}
        }
        Ok(())
    }

    /// The bytes the storage holds for the storage cap: the live files' bytes on SQL, Redis's
    /// `used_memory` on Redis.
    pub async fn stored_bytes(&self) -> anyhow::Result<u64> {
        let bytes = match &self.backend {
            Connected::Sql(sql) => {
                let now = self.clock.now();
                let total =
                    db::with_conn(&sql.pool, move |conn| queries::stored_bytes(conn, now)).await?;
                u64::try_from(total).unwrap_or(0)
            }
            Connected::Redis(redis) => redis_records::used_memory(&redis.connection).await?,
            Connected::RedisCluster(cluster) => {
                redis_records::cluster_used_memory(&cluster.connection).await?
            }
            #[cfg(feature = "bench-cookie-store")]
            Connected::Cookie => 0,
        };
        Ok(bytes)
    }

    /// For a handler: when the session loaded for this request will be deleted if the visitor
    /// does not come back (as of the end of this request), and at the latest.
    pub fn kept_until(&self, lifetime: Duration) -> Option<(NaiveDateTime, Option<NaiveDateTime>)> {
        let ttl = chrono::Duration::from_std(lifetime).ok()?;
        lifetime::this_requests_expiry(self.clock.now(), ttl, self.max)
    }
}

impl SqlStorage {
    async fn connect(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let database = &settings.database;
        let (pool, portable) = db::connect_and_migrate(database, settings.cleanup.mode).await?;
        let sqlite = database.url.backend() == Backend::Sqlite;
        Ok(Self {
            pool,
            clock,
            sqlite,
            portable,
        })
    }

    /// `limits` for this database's kind and mode.
    fn limits(&self, limits: SweepLimits, interval: Option<Duration>) -> SweepLimits {
        let limits = limits.on_sqlite(self.sqlite);
        match self.portable {
            Some(holder) => limits.portable(holder, lease_for(interval)),
            None => limits,
        }
    }

    /// Deletes every expired row once, to the end (`textdrop cleanup`).
    pub async fn cleanup_once(&self, batch_size: i64) -> Result<CleanupReport, DbError> {
        let limits = self.limits(SweepLimits::to_the_end(batch_size), None);
        sweep::delete_expired(&self.pool, self.clock.now(), limits).await
    }

    /// Live and expired row counts (`textdrop stats`).
    pub async fn stats(&self) -> Result<SessionCounts, DbError> {
        let now = self.clock.now();
        db::with_conn(&self.pool, move |conn| queries::count_sessions(conn, now)).await
    }
}
