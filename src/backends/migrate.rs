//! The embedded migrations and what every SQL backend's migration step shares: the migrations
//! run through `diesel_migrations` on a sync connection (SQLite's own; for PostgreSQL and
//! MySQL diesel-async's `AsyncConnectionWrapper`), off the async executor, and each version
//! applied is logged. A backend adds its lock around the run.

use diesel::migration::MigrationVersion;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};

/// The migrations in `migrations/` (PostgreSQL and SQLite), compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The same migrations in MySQL's types, from `migrations_mysql/`.
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_mysql");

/// A migration harness error (a boxed error) with its cause chain kept.
pub(crate) fn harness_error(err: Box<dyn std::error::Error + Send + Sync>) -> anyhow::Error {
    anyhow::Error::from_boxed(err)
}

/// The versions a run applied, as text.
pub(crate) fn versions(applied: Vec<MigrationVersion<'_>>) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

/// Runs `migrate` on `conn` on a blocking thread and gives the connection back with the
/// outcome, so the caller can release its lock whatever happened.
pub(crate) async fn run_blocking<C: Send + 'static>(
    mut conn: C,
    migrate: impl FnOnce(&mut C) -> anyhow::Result<Vec<String>> + Send + 'static,
) -> anyhow::Result<(C, anyhow::Result<Vec<String>>)> {
    let ran = actix_web::rt::task::spawn_blocking(move || {
        let outcome = migrate(&mut conn);
        (conn, outcome)
    });
    ran.await
        .map_err(|e| anyhow::anyhow!("the migration thread stopped: {e}"))
}

/// Logs the versions a run applied; a failure says which database and that nothing was
/// served.
pub(crate) fn applied(location: &str, outcome: anyhow::Result<Vec<String>>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let applied = outcome
        .with_context(|| format!("database migrations failed on {location}; nothing was served"))?;
    for version in &applied {
        log::info!("applied migration {version}");
    }
    Ok(())
}
