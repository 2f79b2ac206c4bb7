//! PostgreSQL through Diesel's async layer (diesel-async on tokio-postgres, TLS through
//! rustls: [`connect`]), a pool per worker. Startup migrations run under a session-level
//! advisory lock; the sweeper is elected per batch with a transaction-scoped one, deletes by
//! ctid and walks a big backlog in heap-block order ([`sweep`]). Portable mode
//! (`CLEANUP_MODE=portable`, or `auto` on an engine that is not a vanilla PostgreSQL) uses a
//! lease row instead of advisory locks and deletes by primary key ([`lease`]).

mod auth;
mod connect;
mod lease;
mod listen;
mod records;
mod sweep;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use futures_util::future::LocalBoxFuture;

use crate::backends::migrate::{self, Plan, MIGRATIONS};
use crate::backends::pool::on_pool;
use crate::backends::pool::{first_connection, taken_from, AppPool, AsyncPools, Driver, Opens};
use crate::backends::wait::{wait_for_lock, Lock};
use crate::backends::Connected;
use crate::cache::{Fanout, ReadCache};
use crate::config::{CleanupConfig, CleanupMode, Config};
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;
pub(crate) use connect::Opener;
pub(crate) use lease::Holder;
#[cfg(feature = "__test-support")]
pub(crate) use records::rotations_prepared;

/// The sweeper's statements, as they are sent (for tests that EXPLAIN them).
#[cfg(feature = "__test-support")]
pub(crate) mod statements {
    pub use super::lease::{DELETE_BATCH as PORTABLE_DELETE_BATCH, TAKE as TAKE_LEASE};
    pub use super::sweep::{BLOCK_RANGE_SETTINGS, DELETE_BATCH, DELETE_BLOCK_RANGE};
}

/// The statements on the `sessions` table, for PostgreSQL's async connection.
mod queries {
    use diesel_async::RunQueryDsl;
    /// What `stored_total` runs: the live attachments' bytes and a charge per live row.
    const STORED_TOTAL: &str =
        "SELECT CAST(COALESCE(SUM(file_bytes), 0) + COUNT(*) * $1 AS BIGINT) AS total \
         FROM sessions WHERE expires_at > $2";
    crate::backends::sql::session_queries!(diesel_async::AsyncPgConnection, async; .await);
}

/// The `sessions` table read and written whole (copies, and moves from a previous storage).
mod transfer {
    use super::queries;
    crate::backends::sql::async_transfer!(diesel_async::AsyncPgConnection);
}

/// How long portable mode holds the migration lease: a crashed instance's lease frees itself
/// after this long.
const MIGRATION_LEASE: Duration = Duration::from_secs(120);

impl Driver for AsyncPgConnection {
    fn lost(&mut self, err: &DieselError) -> bool {
        match err {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => true,
            // The server's FATAL goodbye (SQLSTATE 57P01 admin shutdown, 57P02 crash, 57P05
            // idle timeout…), read before the socket's end: the connection is gone too.
            DieselError::DatabaseError(_, info)
                if info.message().starts_with("terminating connection") =>
            {
                true
            }
            _ => PoolableConnection::is_broken(self),
        }
    }
}

/// A migrated PostgreSQL database.
pub(crate) struct PgStorage {
    pools: AsyncPools<AsyncPgConnection>,
    /// Portable mode: a lease row elects the sweeper, and this is our name on it.
    portable: Option<Holder>,
    /// The transaction-scoped advisory lock that lets one sweeper at a time delete.
    sweeper_lock: i64,
    /// The database's URL and the channel read caches tell each other their writes on.
    cache_channel: (String, String),
}

impl PgStorage {
    pub(crate) async fn connect(config: &Config) -> anyhow::Result<Self> {
        let database = &config.database;
        let pools = AsyncPools::new::<Opener>(database, config.workers)?;
        let conn = first_connection::<Opener>(database).await?;
        Self::on(config, pools, conn).await
    }

    /// The storage on the application's `pool` (migrated, or checked, on a connection taken
    /// out of it).
    pub(crate) async fn with_pool(
        config: &Config,
        pool: AppPool<AsyncPgConnection>,
    ) -> anyhow::Result<Self> {
        let conn = taken_from(&pool).await?;
        let pools = AsyncPools::of_app(pool, config.database.statement_timeout);
        Self::on(config, pools, conn).await
    }

    /// The storage on `pools`, once `conn` has migrated the database (or found nothing
    /// pending) and told whether it is portable.
    async fn on(
        config: &Config,
        pools: AsyncPools<AsyncPgConnection>,
        mut conn: AsyncPgConnection,
    ) -> anyhow::Result<Self> {
        let database = &config.database;
        let location = database.url.location();
        let portable = portable_mode(&mut conn, config.cleanup.mode)
            .await?
            .then(Holder::new);
        if database.run_migrations {
            let lock = config.names.postgres_migration_lock;
            migrate_under_lock(conn, portable, database.connect_timeout, &location, lock).await?;
        } else {
            let applied = applied_versions(&mut conn).await?;
            let plan = plan_for(&location, &applied, config.names.postgres_migration_lock);
            migrate::require_none_pending(&plan)?;
        }
        if portable.is_some() {
            log::info!(
                "portable mode: a lease row elects the sweeper; no ctid, xmin or advisory locks"
            );
        }
        Ok(Self {
            pools,
            portable,
            sweeper_lock: config.names.postgres_sweeper_lock,
            cache_channel: (
                database.url.target().to_owned(),
                config.names.postgres_cache_channel.clone(),
            ),
        })
    }
}

/// The versions applied to the database on `conn`.
async fn applied_versions(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    migrate::applied_versions(diesel::sql_query(migrate::APPLIED).load(conn).await)
}

fn plan_for(location: &str, applied: &[String], key: i64) -> Plan {
    let lock = (
        format!("SELECT pg_advisory_lock({key});"),
        format!("SELECT pg_advisory_unlock({key});"),
    );
    Plan::new(
        format!("PostgreSQL at {location}"),
        false,
        applied,
        Some(lock),
    )
}

/// The migrations the database `config` name has not applied, read without changing it.
pub(crate) async fn plan(config: &Config) -> anyhow::Result<Plan> {
    let mut conn = first_connection::<Opener>(&config.database).await?;
    let applied = applied_versions(&mut conn).await?;
    let location = config.database.url.location();
    Ok(plan_for(
        &location,
        &applied,
        config.names.postgres_migration_lock,
    ))
}

#[derive(QueryableByName)]
struct Engine {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Bool)]
    citus: bool,
}

/// Whether `mode` means portable mode on this database: as set, or (`auto`) when `version()`
/// and the installed extensions say it is not a vanilla PostgreSQL.
async fn portable_mode(conn: &mut AsyncPgConnection, mode: CleanupMode) -> anyhow::Result<bool> {
    match mode {
        CleanupMode::Postgres => Ok(false),
        CleanupMode::Portable => Ok(true),
        CleanupMode::Auto => {
            let engine: Engine = diesel::sql_query(
                "SELECT version() AS version, \
                 EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus",
            )
            .get_result(conn)
            .await?;
            Ok(!lease::is_vanilla_postgres(&engine.version, engine.citus))
        }
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Runs the pending migrations on `conn` under the migration lock (portable mode: the
/// `migrations` lease as `portable`'s holder), waiting at most `patience` for it.
async fn migrate_under_lock(
    mut conn: AsyncPgConnection,
    portable: Option<Holder>,
    patience: Duration,
    location: &str,
    key: i64,
) -> anyhow::Result<()> {
    // A migration may rewrite or index a big table: no statement deadline on its connection.
    conn.batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await?;
    match portable {
        Some(holder) => {
            lease::ensure_table(&mut conn).await?;
            let lock = Lock {
                name: "the `migrations` lease (table sweeper_lease)",
                hint: "its holder is in sweeper_lease",
            };
            wait_for_lock(lock, patience, &mut conn, |conn| {
                Box::pin(lease::take(
                    conn,
                    lease::MIGRATIONS,
                    holder,
                    MIGRATION_LEASE,
                ))
            })
            .await?;
        }
        None => {
            let lock = Lock {
                name: &format!("the migration lock (PostgreSQL advisory lock {key})"),
                hint: "see pg_locks",
            };
            wait_for_lock(lock, patience, &mut conn, |conn| {
                Box::pin(async move {
                    let Locked { locked } =
                        diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                            .bind::<BigInt, _>(key)
                            .get_result(conn)
                            .await?;
                    Ok(locked)
                })
            })
            .await?;
        }
    }
    let wrapper: AsyncConnectionWrapper<AsyncPgConnection> = conn.into();
    let (wrapper, outcome) = migrate::run_blocking(wrapper, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(migrate::versions)
            .map_err(migrate::harness_error)
    })
    .await?;
    let mut conn = wrapper.into_inner();
    let released = match portable {
        Some(holder) => lease::release(&mut conn, lease::MIGRATIONS, holder).await,
        None => conn
            .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
            .await
            .map_err(Into::into),
    };
    migrate::applied(location, outcome)?;
    released
}

/// How long a sweeper lease lasts in portable mode: a few cleanup intervals, and at least a
/// minute, so an instance that stalls or dies frees it soon, and one that sweeps keeps it.
fn lease_for(interval: Option<Duration>) -> Duration {
    interval.map_or(Duration::from_secs(60), |i| {
        (i * 3).max(Duration::from_secs(60))
    })
}

impl Connected for PgStorage {
    fn fanout(&self, cache: &Arc<ReadCache>) -> Option<Arc<dyn Fanout>> {
        let (url, channel) = &self.cache_channel;
        let opener = match connect::Opener::parse(url) {
            Ok(opener) => opener,
            Err(problem) => {
                log::error!("the session cache cannot listen: the database URL {problem}");
                return None;
            }
        };
        match listen::spawn(opener, channel.clone(), cache) {
            Ok(fanout) => Some(fanout),
            Err(err) => {
                log::error!("the session cache cannot listen: {err}");
                None
            }
        }
    }

    fn records(&self) -> Rc<dyn Records> {
        let (pool, probe) = self.pools.worker();
        Rc::new(records::SqlRecords::new(pool, probe))
    }

    fn transfer(&self) -> Option<Rc<dyn Transfer>> {
        Some(Rc::new(transfer::SqlTransfer::new(self.pools.transfer())))
    }

    fn dialect(&self, cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>> {
        let pool = self.pools.maintenance().clone();
        Some(Rc::new(match self.portable {
            Some(holder) => sweep::PgDialect::portable(pool, holder, lease_for(cleanup.interval)),
            None => sweep::PgDialect::new(pool, self.sweeper_lock),
        }))
    }

    fn stored_bytes(
        &self,
        now: NaiveDateTime,
        per_record: u64,
    ) -> LocalBoxFuture<'_, anyhow::Result<u64>> {
        // Each record's attachment, and the charge for the record itself.
        let charge = i64::try_from(per_record).unwrap_or(i64::MAX);
        Box::pin(async move {
            let total = on_pool!(self.pools.maintenance(), conn =>
                queries::stored_total(&mut conn, now, charge).await)?;
            Ok(u64::try_from(total).unwrap_or(0))
        })
    }
}
