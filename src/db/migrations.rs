//! The migrations in `migrations/`, embedded in the binary and run at startup.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{named_lock, DbConnection};
use crate::config::CleanupMode;
use crate::session::lease;

/// The migrations in `migrations/` (PostgreSQL and SQLite), compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The same migrations in MySQL's types, from `migrations_mysql/`.
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_mysql");

/// MySQL: the name of the `GET_LOCK` lock held while migrations run.
pub const MYSQL_MIGRATION_LOCK: &str = "textdrop_migrations";

/// Key of the PostgreSQL advisory lock held while migrations run, so that several instances
/// starting at once on one database take turns instead of racing.
pub const MIGRATION_LOCK_KEY: i64 = 0x7465_7874_6472_6f70; // "textdrop"

/// How long [`run_migrations`] waits for the migration lock.
const DEFAULT_LOCK_PATIENCE: Duration = Duration::from_secs(30);

diesel::define_sql_function! {
    /// PostgreSQL: take a session-scoped advisory lock if free, without waiting.
    fn pg_try_advisory_lock(key: BigInt) -> Bool;
}

/// Runs the embedded migrations that have not run yet and returns their versions, waiting up
/// to 30 s for the migration lock. Blocking.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    run_migrations_within(conn, DEFAULT_LOCK_PATIENCE, None)
}

/// How long portable mode holds the migration lease: a crashed instance's lease frees itself
/// after this long.
const MIGRATION_LEASE: Duration = Duration::from_secs(120);

/// Runs the embedded migrations that have not run yet and returns their versions. On
/// PostgreSQL the run holds an advisory lock (in portable mode, the `migrations` lease row as
/// `portable`'s holder), so
/// instances started together take turns; if another session holds it for longer than
/// `patience`, this gives up and says so. A SQLite database made before incremental
/// auto-vacuum is converted once. Blocking.
pub fn run_migrations_within(
    conn: &mut DbConnection,
    patience: Duration,
    portable: Option<lease::Holder>,
) -> anyhow::Result<Vec<String>> {
    let applied = match (conn, portable) {
        (DbConnection::Postgres(pg), Some(holder)) => {
            lease::ensure_table(pg)?;
            lease::take_within(pg, lease::MIGRATIONS, holder, MIGRATION_LEASE, patience)?;
            let result = pg.run_pending_migrations(MIGRATIONS).map(versions);
            let now = chrono::Utc::now().naive_utc();
            let released = lease::release(pg, lease::MIGRATIONS, holder, now);
            let applied = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            released?;
            applied
        }
        (DbConnection::Postgres(pg), None) => {
            take_migration_lock(pg, patience)?;
            let result = pg.run_pending_migrations(MIGRATIONS).map(versions);
            let unlock =
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            let applied = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            unlock?;
            applied
        }
        (DbConnection::Mysql(mysql), _) => {
            take_mysql_lock(mysql, MYSQL_MIGRATION_LOCK, patience)?;
            let result = mysql.run_pending_migrations(MYSQL_MIGRATIONS).map(versions);
            let unlock = named_lock::release(mysql, MYSQL_MIGRATION_LOCK);
            let applied = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            unlock?;
            applied
        }
        (DbConnection::Sqlite(sqlite), _) => {
            let applied = sqlite
                .run_pending_migrations(MIGRATIONS)
                .map(versions)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            convert_to_incremental_vacuum(sqlite)?;
            applied
        }
    };
    Ok(applied)
}

/// Takes the migration lock, trying every quarter second until `patience` is spent.
fn take_migration_lock(pg: &mut PgConnection, patience: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut said = false;
    loop {
        if diesel::select(pg_try_advisory_lock(MIGRATION_LOCK_KEY)).get_result::<bool>(pg)? {
            return Ok(());
        }
        if started.elapsed() >= patience {
            anyhow::bail!(
                "the migration lock (PostgreSQL advisory lock {MIGRATION_LOCK_KEY}) is held by \
                 another database session; gave up after {} s. Another instance may be \
                 migrating, or a stuck session holds it (see pg_locks)",
                started.elapsed().as_secs()
            );
        }
        if !said {
            log::warn!("waiting for the migration lock, held by another database session");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(250).min(patience));
    }
}

/// MySQL: takes the named lock `name` of this database (`GET_LOCK`), waiting at most
/// `patience`, and says so in the log when it has to wait.
fn take_mysql_lock(
    mysql: &mut MysqlConnection,
    name: &str,
    patience: Duration,
) -> anyhow::Result<()> {
    if named_lock::try_lock(mysql, name, Duration::ZERO)? {
        return Ok(());
    }
    log::warn!("waiting for the migration lock, held by another database session");
    if named_lock::try_lock(mysql, name, patience)? {
        return Ok(());
    }
    anyhow::bail!(
        "the migration lock (MySQL GET_LOCK('{name}:<database>')) is held by another \
         database session; gave up after {} s. Another instance may be migrating (see \
         performance_schema.metadata_locks)",
        patience.as_secs()
    )
}

#[derive(QueryableByName)]
struct AutoVacuum {
    #[diesel(sql_type = Integer)]
    auto_vacuum: i32,
}

/// SQLite: a database made before textdrop used incremental auto-vacuum keeps freed pages
/// forever; one VACUUM switches it (`PRAGMA auto_vacuum` alone applies to new databases only).
fn convert_to_incremental_vacuum(sqlite: &mut SqliteConnection) -> anyhow::Result<()> {
    const INCREMENTAL: i32 = 2;
    let AutoVacuum { auto_vacuum } = diesel::sql_query("PRAGMA auto_vacuum").get_result(sqlite)?;
    if auto_vacuum != INCREMENTAL {
        log::info!("switching the SQLite database to incremental auto-vacuum (one VACUUM)");
        sqlite.batch_execute("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Engine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    citus: bool,
}

/// Whether `mode` means portable mode on this database: never on SQLite; on PostgreSQL as set,
/// or (`auto`) when `version()` and the installed extensions say it is not a vanilla
/// PostgreSQL.
pub fn portable_mode(conn: &mut DbConnection, mode: CleanupMode) -> QueryResult<bool> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(false); // SQLite and MySQL have their own one-writer and GET_LOCK
    };
    match mode {
        CleanupMode::Postgres => Ok(false),
        CleanupMode::Portable => Ok(true),
        CleanupMode::Auto => {
            let engine: Engine = diesel::sql_query(
                "SELECT version() AS version, \
                 EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus",
            )
            .get_result(pg)?;
            Ok(!lease::is_vanilla_postgres(&engine.version, engine.citus))
        }
    }
}

fn versions(applied: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

/// Migrations embedded in the binary that the database has not run yet.
pub fn pending_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let names = match conn {
        DbConnection::Postgres(pg) => pg
            .pending_migrations(MIGRATIONS)
            .map(|p| p.iter().map(|m| m.name().to_string()).collect()),
        DbConnection::Sqlite(sqlite) => sqlite
            .pending_migrations(MIGRATIONS)
            .map(|p| p.iter().map(|m| m.name().to_string()).collect()),
        DbConnection::Mysql(mysql) => mysql
            .pending_migrations(MYSQL_MIGRATIONS)
            .map(|p| p.iter().map(|m| m.name().to_string()).collect()),
    };
    names.map_err(|e| anyhow::anyhow!("{e}"))
}
