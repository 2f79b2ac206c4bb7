//! The migrations in `migrations/`, embedded in the binary and run at startup.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbConnection;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the PostgreSQL advisory lock held while migrations run, so that several instances
/// starting at once on one database take turns instead of racing.
const MIGRATION_LOCK_KEY: i64 = 0x7465_7874_6472_6f70; // "textdrop"

/// Runs the embedded migrations that have not run yet and returns their versions.
/// On PostgreSQL the run holds an advisory lock, so instances started together take turns.
/// Blocking: call it off the async executor.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = pg.run_pending_migrations(MIGRATIONS).map(versions);
            let unlock =
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            let applied = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            unlock?;
            applied
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(MIGRATIONS)
            .map(versions)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    Ok(applied)
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
    };
    names.map_err(|e| anyhow::anyhow!("{e}"))
}
