//! MySQL and MariaDB through Diesel's async layer (diesel-async on mysql_async, pure Rust; TLS
//! through rustls: [`connect`]), a pool per worker, every connection in READ COMMITTED and
//! UTC. Startup migrations (`migrations_mysql/`) run under `GET_LOCK`; the sweeper is elected
//! per batch with `GET_LOCK(…, 0)` and deletes with `DELETE … ORDER BY … LIMIT`. A statement
//! InnoDB picks as a deadlock's victim is run once more.

mod connect;
mod named_lock;
mod records;
mod sweep;

use std::rc::Rc;

use chrono::NaiveDateTime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use futures_util::future::LocalBoxFuture;

use crate::backends::migrate::{self, Plan, MYSQL_MIGRATIONS};
use crate::backends::pool::on_pool;
use crate::backends::pool::{first_connection, taken_from, AppPool, AsyncPools, Driver};
use crate::backends::wait::{wait_for_lock, Lock};
use crate::backends::Connected;
use crate::config::{CleanupConfig, Config};
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;
pub(crate) use connect::Opener;

/// The sweeper's statement, as it is sent (for tests that EXPLAIN it).
#[cfg(feature = "__test-support")]
pub(crate) mod statements {
    pub use super::sweep::DELETE_BATCH;
}

/// The statements on the `sessions` table, for MySQL's async connection.
mod queries {
    use diesel_async::RunQueryDsl;
    /// What `stored_total` runs: the live attachments' bytes and a charge per live row.
    /// MySQL casts to SIGNED (a BIGINT), not BIGINT.
    const STORED_TOTAL: &str =
        "SELECT CAST(COALESCE(SUM(file_bytes), 0) + COUNT(*) * ? AS SIGNED) AS total \
         FROM sessions WHERE expires_at > ?";
    crate::backends::sql::session_queries!(diesel_async::AsyncMysqlConnection, async; .await);
}

/// The `sessions` table read and written whole (copies, and moves from a previous storage).
mod transfer {
    use super::queries;
    crate::backends::sql::async_transfer!(diesel_async::AsyncMysqlConnection);
}

/// The MySQL client libraries' words for a server that went away or cannot be reached, and
/// mysql_async's for a connection that broke.
const LOST: [&str; 9] = [
    "server has gone away",
    "connection was killed",
    "unexpected eof",
    "lost connection to",
    "can't connect to",
    "input/output error",
    "connection to the server is closed",
    "broken pipe",
    "connection reset",
];

impl Driver for AsyncMysqlConnection {
    fn lost(&mut self, err: &DieselError) -> bool {
        match err {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => true,
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
                let message = info.message().to_ascii_lowercase();
                LOST.iter().any(|words| message.contains(words))
            }
            _ => false,
        }
    }

    /// InnoDB chose this statement as a deadlock's victim and rolled it back: once more, as
    /// MySQL's manual advises, rather than a 500.
    fn retry_once(&self, err: &DieselError) -> bool {
        matches!(
            err,
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("Deadlock found")
        ) || matches!(
            err,
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
        )
    }
}

/// A migrated MySQL or MariaDB database.
pub(crate) struct MysqlStorage {
    pools: AsyncPools<AsyncMysqlConnection>,
    /// The named lock that elects the sweeper.
    sweeper_lock: String,
}

impl MysqlStorage {
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
        pool: AppPool<AsyncMysqlConnection>,
    ) -> anyhow::Result<Self> {
        let conn = taken_from(&pool).await?;
        let pools = AsyncPools::of_app(pool, config.database.statement_timeout);
        Self::on(config, pools, conn).await
    }

    /// The storage on `pools`, once `conn` has migrated the database (or found nothing
    /// pending).
    async fn on(
        config: &Config,
        pools: AsyncPools<AsyncMysqlConnection>,
        mut conn: AsyncMysqlConnection,
    ) -> anyhow::Result<Self> {
        let database = &config.database;
        let location = database.url.location();
        if database.run_migrations {
            let lock = &config.names.mysql_migration_lock;
            migrate_under_lock(conn, database.connect_timeout, &location, lock).await?;
        } else {
            let applied = applied_versions(&mut conn).await?;
            let plan = plan_for(&location, &applied, &config.names.mysql_migration_lock);
            migrate::require_none_pending(&plan)?;
        }
        Ok(Self {
            pools,
            sweeper_lock: config.names.mysql_sweeper_lock.clone(),
        })
    }
}

/// Runs the pending migrations on `conn` under the migration lock, waiting at most `patience`
/// for it.
async fn migrate_under_lock(
    mut conn: AsyncMysqlConnection,
    patience: std::time::Duration,
    location: &str,
    lock_name: &str,
) -> anyhow::Result<()> {
    connect::lift_statement_timeout(&mut conn).await?;
    let lock = Lock {
        name: &format!("the migration lock (MySQL GET_LOCK('{lock_name}:<database>'))"),
        hint: "see performance_schema.metadata_locks",
    };
    wait_for_lock(lock, patience, &mut conn, |conn| {
        let name = lock_name.to_owned();
        Box::pin(async move { Ok(named_lock::try_lock(conn, &name).await?) })
    })
    .await?;
    let wrapper: AsyncConnectionWrapper<AsyncMysqlConnection> = conn.into();
    let (wrapper, outcome) = migrate::run_blocking(wrapper, |conn| {
        conn.run_pending_migrations(MYSQL_MIGRATIONS)
            .map(migrate::versions)
            .map_err(migrate::harness_error)
    })
    .await?;
    let mut conn = wrapper.into_inner();
    let released = named_lock::release(&mut conn, lock_name).await;
    migrate::applied(location, outcome)?;
    Ok(released?)
}

/// The versions applied to the database on `conn`.
async fn applied_versions(conn: &mut AsyncMysqlConnection) -> anyhow::Result<Vec<String>> {
    migrate::applied_versions(diesel::sql_query(migrate::APPLIED).load(conn).await)
}

fn plan_for(location: &str, applied: &[String], name: &str) -> Plan {
    let lock = (
        format!("SELECT GET_LOCK(LEFT(CONCAT('{name}', ':', DATABASE()), 64), 30);"),
        format!("SELECT RELEASE_LOCK(LEFT(CONCAT('{name}', ':', DATABASE()), 64));"),
    );
    Plan::new(format!("MySQL at {location}"), true, applied, Some(lock))
}

/// The migrations the database `config` name has not applied, read without changing it.
pub(crate) async fn plan(config: &Config) -> anyhow::Result<Plan> {
    let mut conn = first_connection::<Opener>(&config.database).await?;
    let applied = applied_versions(&mut conn).await?;
    let location = config.database.url.location();
    Ok(plan_for(
        &location,
        &applied,
        &config.names.mysql_migration_lock,
    ))
}

impl Connected for MysqlStorage {
    fn records(&self) -> Rc<dyn Records> {
        let (pool, probe) = self.pools.worker();
        Rc::new(records::SqlRecords::new(pool, probe))
    }

    fn transfer(&self) -> Option<Rc<dyn Transfer>> {
        Some(Rc::new(transfer::SqlTransfer::new(self.pools.transfer())))
    }

    fn dialect(&self, _cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>> {
        Some(Rc::new(sweep::MysqlDialect::new(
            self.pools.maintenance().clone(),
            self.sweeper_lock.clone(),
        )))
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
