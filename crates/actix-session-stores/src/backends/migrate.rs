//! The embedded migrations and what every SQL backend's migration step shares: the migrations
//! run through `diesel_migrations` on a sync connection (SQLite's own; for PostgreSQL and
//! MySQL diesel-async's `AsyncConnectionWrapper`), off the async executor, and each version
//! applied is logged. A backend adds its lock around the run.

#![cfg_attr(
    not(any(feature = "sqlite", feature = "async-sql")),
    allow(dead_code, unused_imports)
)]

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

/// Every migration folder's name and `up.sql`, per folder (written by build.rs).
mod text {
    include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));
}

/// The version diesel records for the migration folder `name` (`2026-11-29-000000_x` is
/// `20261129000000`).
pub(crate) fn version_of(name: &str) -> String {
    name.split('_').next().unwrap_or(name).replace('-', "")
}

/// The table diesel keeps the applied versions in, as diesel creates it.
const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n\
       version VARCHAR(50) PRIMARY KEY NOT NULL,\n\
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);";

/// The statement that reads the applied versions (it fails when the table does not exist).
pub(crate) const APPLIED: &str = "SELECT version FROM __diesel_schema_migrations";

/// One row of [`APPLIED`].
#[derive(diesel::QueryableByName)]
pub(crate) struct Applied {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub version: String,
}

/// The versions `APPLIED` returned, or none when diesel's table does not exist yet (a new
/// database); any other error is one.
pub(crate) fn applied_versions(
    rows: diesel::QueryResult<Vec<Applied>>,
) -> anyhow::Result<Vec<String>> {
    match rows {
        Ok(rows) => Ok(rows.into_iter().map(|row| row.version).collect()),
        Err(err) => {
            let message = err.to_string();
            // PostgreSQL, MySQL/MariaDB and SQLite's words for a missing table.
            let missing = ["does not exist", "doesn't exist", "no such table"]
                .iter()
                .any(|words| message.contains(words));
            if missing {
                Ok(Vec::new())
            } else {
                Err(anyhow::anyhow!("reading the applied migrations: {message}"))
            }
        }
    }
}

/// Migrations pending while the configuration says not to apply them.
#[derive(Debug)]
pub(crate) struct Pending(pub(crate) String);

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Pending {}

/// With `run_migrations` off: nothing may be pending.
pub(crate) fn require_none_pending(plan: &Plan) -> anyhow::Result<()> {
    if plan.pending.is_empty() {
        return Ok(());
    }
    Err(Pending(format!(
        "{} database migration(s) pending on {} ({}), and run_migrations is off: apply \
         them first; nothing was served",
        plan.pending.len(),
        plan.database,
        plan.names()
    ))
    .into())
}

/// The migrations a database has not applied yet, and how to apply them by hand.
#[derive(Debug)]
pub struct Plan {
    /// The backend and where, as logs say it ("PostgreSQL at db:5432/app").
    pub database: String,
    /// The pending migrations' folder names and SQL, in order.
    pub pending: Vec<(&'static str, &'static str)>,
    /// The lock taken around a run, and its release, as SQL (none on SQLite).
    pub lock: Option<(String, String)>,
    /// How a transaction starts on this backend.
    pub begin: &'static str,
}

impl Plan {
    /// The plan for a database of `backend` (its migrations `mysql` or not) that has applied
    /// `applied`.
    pub(crate) fn new(
        database: String,
        mysql: bool,
        applied: &[String],
        lock: Option<(String, String)>,
    ) -> Self {
        let all = if mysql { text::MYSQL } else { text::SQL };
        let pending = all
            .iter()
            .filter(|(name, _)| !applied.contains(&version_of(name)))
            .copied()
            .collect();
        Self {
            database,
            pending,
            lock,
            begin: if mysql {
                "START TRANSACTION;"
            } else {
                "BEGIN;"
            },
        }
    }

    /// Whether no migration at all is applied: no session store was ever migrated there.
    pub fn nothing_applied(&self) -> bool {
        self.pending.len() == text::SQL.len()
    }

    /// The pending migrations' names, comma-separated.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.pending.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }

    /// The SQL as the store would run it: diesel's versions table, then each migration in its
    /// transaction with the row that records it; the store's lock around them, commented out
    /// (by hand it is needed only while instances may start at the same time).
    pub fn script(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let count = self.pending.len();
        let _ = writeln!(
            out,
            "-- {count} pending session-store migration{} for {}.\n\
             -- Run as a user that may change the schema; the store then finds nothing pending.",
            if count == 1 { "" } else { "s" },
            self.database
        );
        if count == 0 {
            return out;
        }
        if let Some((lock, _)) = &self.lock {
            let _ = writeln!(
                out,
                "-- The store takes this lock around them, so that instances starting \
                 together take turns:\n-- {lock}"
            );
        }
        let _ = writeln!(out, "\n{VERSIONS_TABLE}");
        for (name, up) in &self.pending {
            let _ = writeln!(
                out,
                "\n-- {name}\n{}\n{}\nINSERT INTO __diesel_schema_migrations (version) VALUES ('{}');\nCOMMIT;",
                self.begin,
                up.trim_end(),
                version_of(name)
            );
        }
        if let Some((_, unlock)) = &self.lock {
            let _ = writeln!(out, "\n-- {unlock}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_lists_what_is_not_applied_with_its_sql() {
        assert_eq!(
            version_of("2026-11-29-000000_rotation_grace"),
            "20261129000000"
        );
        let applied: Vec<String> = text::SQL[..text::SQL.len() - 1]
            .iter()
            .map(|(name, _)| version_of(name))
            .collect();
        let lock = Some((
            "SELECT pg_advisory_lock(1);".into(),
            "SELECT pg_advisory_unlock(1);".into(),
        ));
        let plan = Plan::new("PostgreSQL at db".into(), false, &applied, lock);
        let (last, up) = text::SQL[text::SQL.len() - 1];
        assert_eq!(plan.pending, [(last, up)]);
        let script = plan.script();
        assert!(script.starts_with("-- 1 pending session-store migration for PostgreSQL at db."));
        assert!(script.contains("-- SELECT pg_advisory_lock(1);"));
        assert!(script.contains(&format!("-- {last}\nBEGIN;\n{}\nINSERT INTO __diesel_schema_migrations (version) VALUES ('{}');\nCOMMIT;", up.trim_end(), version_of(last))));
        assert!(script
            .trim_end()
            .ends_with("-- SELECT pg_advisory_unlock(1);"));

        let none = Plan::new("MySQL at db".into(), true, &[], None);
        assert_eq!(none.pending.len(), text::MYSQL.len());
        assert!(none.script().contains("START TRANSACTION;"));
        let done: Vec<String> = text::MYSQL.iter().map(|(n, _)| version_of(n)).collect();
        let up_to_date = Plan::new("MySQL at db".into(), true, &done, None);
        assert!(up_to_date.pending.is_empty());
        assert!(!up_to_date.script().contains("CREATE TABLE"));
    }
}
