//! SQLite, the embedded default: sync Diesel on an r2d2 pool ([`pool`]) with the bundled
//! library, one database file in WAL mode. Reads run on the worker, writes on the blocking
//! pool behind a one-writer gate. The sweeper needs no election (one process writes at a time
//! anyway), sizes its batches by the time they hold the write lock, and gives freed pages back.

mod pool;
mod records;
mod sweep;
mod transfer;

use std::rc::Rc;

use anyhow::Context as _;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{Connection as _, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;
use futures_util::future::LocalBoxFuture;

use crate::backends::migrate::{self, Plan, MIGRATIONS};
use crate::backends::Connected;
use crate::config::{CleanupConfig, Config};
use crate::retry;
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;
pub(crate) use pool::{AppPool, Manager, SqlitePool};

/// The sweeper's statement, as it is sent (for tests that EXPLAIN it).
#[cfg(feature = "__test-support")]
pub(crate) mod statements {
    pub use super::sweep::DELETE_BATCH;
}

/// The statements on the `sessions` table, for SQLite's connection.
mod queries {
    use diesel::RunQueryDsl;
    /// What `stored_total` runs: the live attachments' bytes and a charge per live row.
    const STORED_TOTAL: &str =
        "SELECT CAST(COALESCE(SUM(file_bytes), 0) + COUNT(*) * ? AS BIGINT) AS total \
         FROM sessions WHERE expires_at > ?";
    crate::backends::sql::session_queries!(diesel::SqliteConnection;);
}

/// A migrated SQLite database and the pool on it.
pub(crate) struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
    pub(crate) async fn connect(config: &Config) -> anyhow::Result<Self> {
        let database = &config.database;
        // Without migrations to run, nothing creates the database: a mistyped path is said so,
        // not made into an empty file.
        if !database.run_migrations && !file_of(database.url.target()).exists() {
            return Err(migrate::Pending(format!(
                "there is no SQLite database at {}, and run_migrations is off: apply the \
                 migrations to create it there (nothing was created)",
                database.url.location()
            ))
            .into());
        }
        let manager =
            Manager::new(database.url.target()).with_busy_timeout(database.statement_timeout);
        let location = database.url.location();
        let what = format!("the database at {location}");
        let conn = retry::with_backoff(&what, database.connect_timeout, || {
            let manager = manager.clone();
            async move {
                let opened = actix_web::rt::task::spawn_blocking(move || manager.establish_first());
                Ok(opened.await??)
            }
        })
        .await?;
        migrate_or_check(config, Box::new(conn)).await?;
        Ok(Self {
            pool: SqlitePool::new(manager, database.pool_size),
        })
    }

    /// The storage on the application's `pool`: migrated (or checked) on one of its
    /// connections, its database switched to WAL (readers then never wait for a writer).
    pub(crate) async fn with_pool(config: &Config, pool: AppPool) -> anyhow::Result<Self> {
        let checked_out = pool.clone();
        let mut conn = actix_web::rt::task::spawn_blocking(move || checked_out.get()).await??;
        let conn = actix_web::rt::task::spawn_blocking(move || {
            conn.batch_execute("PRAGMA journal_mode = WAL")
                .map(|()| conn)
        })
        .await??;
        migrate_or_check(config, conn).await?;
        Ok(Self {
            pool: SqlitePool::of_app(pool),
        })
    }
}

/// Runs the pending migrations on `conn`, or (with `run_migrations` off) fails if any is
/// pending.
async fn migrate_or_check<C>(config: &Config, conn: C) -> anyhow::Result<()>
where
    C: std::ops::DerefMut<Target = SqliteConnection> + Send + 'static,
{
    let location = config.database.url.location();
    if config.database.run_migrations {
        let (_, outcome) = migrate::run_blocking(conn, |conn| run_migrations(conn)).await?;
        migrate::applied(&location, outcome)
    } else {
        let (_, applied) = migrate::run_blocking(conn, |conn| applied_versions(conn)).await?;
        migrate::require_none_pending(&plan_for(&location, &applied?))
    }
}

/// The versions applied to the database on `conn`. Blocking.
fn applied_versions(conn: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    migrate::applied_versions(diesel::sql_query(migrate::APPLIED).load(conn))
}

fn plan_for(location: &str, applied: &[String]) -> Plan {
    Plan::new(format!("SQLite at {location}"), false, applied, None)
}

/// The database file a SQLite `target` (`sqlite://PATH`, `file:PATH`, `PATH`) names.
fn file_of(target: &str) -> std::path::PathBuf {
    let file = target
        .strip_prefix("sqlite://")
        .or_else(|| target.strip_prefix("file:"))
        .unwrap_or(target);
    std::path::PathBuf::from(file.split('?').next().unwrap_or_default())
}

/// The migrations the database `config` name has not applied, read without changing it (a
/// file that does not exist yet has applied none, is not created, and the plan says so).
pub(crate) async fn plan(config: &Config) -> anyhow::Result<Plan> {
    let location = config.database.url.location();
    let target = config.database.url.target().to_owned();
    let file = file_of(&target);
    let exists = file.exists();
    let applied = actix_web::rt::task::spawn_blocking(move || {
        if !exists {
            return Ok(Vec::new());
        }
        let mut conn = SqliteConnection::establish(&target)?;
        applied_versions(&mut conn)
    })
    .await??;
    let mut plan = plan_for(&location, &applied);
    if !exists {
        plan.database = format!("SQLite at {location} (no such file yet)");
    }
    Ok(plan)
}

/// Writes a consistent copy of the SQLite database `config` name to `to` while it serves
/// (`VACUUM INTO`: one read transaction, so writers carry on; the copy has no WAL of its own).
/// `to` must not exist. Blocking work, on the blocking pool.
pub(crate) async fn backup(config: &Config, to: std::path::PathBuf) -> anyhow::Result<()> {
    let target = config.database.url.target().to_owned();
    let location = config.database.url.location();
    anyhow::ensure!(
        file_of(&target).exists(),
        "there is no SQLite database at {location} to back up"
    );
    anyhow::ensure!(
        !to.exists(),
        "{} exists already: a backup never overwrites a file",
        to.display()
    );
    let manager = Manager::new(&target).with_busy_timeout(config.database.statement_timeout);
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = manager.establish()?;
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(to.display().to_string())
            .execute(&mut conn)
            .with_context(|| format!("writing the backup to {}", to.display()))?;
        anyhow::Ok(())
    })
    .await?
}

/// Runs the pending migrations; a database made before the store used incremental auto-vacuum
/// is converted once. Blocking.
fn run_migrations(conn: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(migrate::versions)
        .map_err(migrate::harness_error)?;
    convert_to_incremental_vacuum(conn)?;
    Ok(applied)
}

#[derive(QueryableByName)]
struct AutoVacuum {
    #[diesel(sql_type = Integer)]
    auto_vacuum: i32,
}

/// A database made before the store used incremental auto-vacuum keeps freed pages forever; one
/// VACUUM switches it (`PRAGMA auto_vacuum` alone applies to new databases only).
fn convert_to_incremental_vacuum(sqlite: &mut SqliteConnection) -> anyhow::Result<()> {
    const INCREMENTAL: i32 = 2;
    let AutoVacuum { auto_vacuum } = diesel::sql_query("PRAGMA auto_vacuum").get_result(sqlite)?;
    if auto_vacuum != INCREMENTAL {
        log::info!("switching the SQLite database to incremental auto-vacuum (one VACUUM)");
        sqlite
            .batch_execute("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            .context("converting to incremental auto-vacuum")?;
    }
    Ok(())
}

impl Connected for SqliteStorage {
    fn records(&self) -> Rc<dyn Records> {
        Rc::new(records::SqliteRecords::new(self.pool.clone()))
    }

    fn transfer(&self) -> Option<Rc<dyn Transfer>> {
        Some(Rc::new(transfer::SqliteTransfer::new(self.pool.clone())))
    }

    fn dialect(&self, _cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>> {
        Some(Rc::new(sweep::SqliteDialect::new(self.pool.clone())))
    }

    fn stored_bytes(
        &self,
        now: NaiveDateTime,
        per_record: u64,
    ) -> LocalBoxFuture<'_, anyhow::Result<u64>> {
        // Each record's attachment, and the charge for the record itself.
        let charge = i64::try_from(per_record).unwrap_or(i64::MAX);
        Box::pin(async move {
            let total = self
                .pool
                .read(move |conn| queries::stored_total(conn, now, charge))
                .await?;
            Ok(u64::try_from(total).unwrap_or(0))
        })
    }
}
