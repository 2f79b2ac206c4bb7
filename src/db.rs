//! Database plumbing shared by every command: which backend a `DATABASE_URL` names, the r2d2
//! pool of connections to it, and the embedded migrations.
//!
//! One binary serves PostgreSQL and SQLite through Diesel's `MultiConnection`. The backend is
//! picked from the URL here rather than by the derived `establish`, because that one replaces
//! every connection error with "Invalid connection url for multiconnection".

use std::fmt;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the PostgreSQL advisory lock held while migrations run, so that several instances
/// starting at once on one database take turns instead of racing.
const MIGRATION_LOCK_KEY: i64 = 0x7465_7874_6472_6f70; // "textdrop"

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// The pool every request and the cleanup task draw connections from.
pub type DbPool = r2d2::Pool<DbConnectionManager>;

/// A connection as the pool keeps it: the pool does not test connections on checkout (that
/// would cost a round trip per request), so a query that fails in a way that may mean the
/// connection itself is gone marks it, and the pool drops it instead of handing it out again.
pub struct PoolSlot {
    conn: DbConnection,
    suspect: bool,
}

impl std::ops::Deref for PoolSlot {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PoolSlot {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Runs `query` on a pooled connection, marking the connection for disposal when the error
/// may have come from the connection rather than the statement. Blocking.
pub fn run<T>(
    slot: &mut PoolSlot,
    query: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    use diesel::result::{DatabaseErrorKind, Error};
    let result = query(&mut slot.conn);
    if let Err(Error::DatabaseError(
        DatabaseErrorKind::ClosedConnection
        | DatabaseErrorKind::UnableToSendCommand
        | DatabaseErrorKind::Unknown,
        _,
    )) = &result
    {
        slot.suspect = true;
    }
    result
}

/// The two supported database backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
    /// Not SQL: actix-session's own `RedisSessionStore`, which lets Redis expire keys.
    Redis,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
        })
    }
}

/// A validated `DATABASE_URL`. Its `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver is given: the full URL for PostgreSQL, the path or `file:` URI for SQLite.
    target: String,
}

/// Where the SQLite database lives when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://textdrop.db";

impl DatabaseUrl {
    /// Parses `postgres://…`, `postgresql://…`, `sqlite://PATH` (`sqlite:///abs/path` for an
    /// absolute path), `file:PATH` or a plain path. The error says what form was expected and
    /// never repeats the URL (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty; expected postgres://…, sqlite://PATH or a file path".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                target: raw.to_owned(),
            });
        }
        if raw.starts_with("redis://") {
            return Ok(Self {
                backend: Backend::Redis,
                target: raw.to_owned(),
            });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("file:"))
            .unwrap_or(raw);
        if let Some((scheme, _)) = raw.split_once("://") {
            if scheme != "sqlite" && scheme != "file" {
                return Err(format!(
                    "has the unsupported scheme `{scheme}`; expected postgres://, postgresql://, \
                     redis://, sqlite://PATH, file:PATH or a plain file path"
                ));
            }
        }
        let bare_path = path.split('?').next().unwrap_or_default();
        if bare_path.is_empty() {
            return Err(
                "names no SQLite file; expected sqlite://PATH, e.g. sqlite://textdrop.db".into(),
            );
        }
        if bare_path == ":memory:" || raw.contains("mode=memory") {
            return Err(
                "names an in-memory SQLite database, which pooled connections would not \
                        share; use a file path such as sqlite://textdrop.db"
                    .into(),
            );
        }
        // Diesel opens `sqlite://` and `file:` names as SQLite URIs and plain names as paths.
        Ok(Self {
            backend: Backend::Sqlite,
            target: raw.to_owned(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What the driver is given. It may hold a password: never log it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The URL with any password replaced by `***`, fit for logs and error messages.
    pub fn redacted(&self) -> String {
        if self.backend == Backend::Sqlite {
            return self.target.clone();
        }
        let Some((scheme, rest)) = self.target.split_once("://") else {
            return "***".into();
        };
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        };
        // Query parameters may carry `password=`: leave them out.
        let path = tail.split('?').next().unwrap_or_default();
        format!("{scheme}://{authority}{path}")
    }

    /// The host (and port) part of a PostgreSQL URL, or the file of a SQLite one.
    pub fn location(&self) -> String {
        let redacted = self.redacted();
        match self.backend {
            Backend::Sqlite => redacted,
            Backend::Postgres | Backend::Redis => {
                let rest = redacted.split_once("://").map_or("", |(_, r)| r);
                let authority = rest.split(['/', '?']).next().unwrap_or_default();
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                if host.is_empty() {
                    "localhost (libpq default)".into()
                } else {
                    host.to_owned()
                }
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Opens connections for the pool, each configured for its backend.
#[derive(Debug, Clone)]
pub struct DbConnectionManager {
    url: DatabaseUrl,
}

impl DbConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    /// Opens one connection outside any pool (migrations, one-shot commands).
    pub fn establish(&self) -> Result<DbConnection, r2d2::Error> {
        match self.url.backend {
            Backend::Redis => Err(r2d2::Error::ConnectionError(
                ConnectionError::BadConnection("redis:// is not a SQL database".into()),
            )),
            Backend::Postgres => PgConnection::establish(&self.url.target)
                .map(DbConnection::Postgres)
                .map_err(one_line),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url.target).map_err(one_line)?;
                // busy_timeout first: switching the journal mode may itself wait for a lock.
                // WAL lets readers proceed during a write; NORMAL sync is durable against a
                // process crash, and loses at most the last commits on a power cut.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| {
                    r2d2::Error::ConnectionError(ConnectionError::BadConnection(format!(
                        "could not configure the SQLite database: {e}"
                    )))
                })?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// libpq's messages span several lines; logs and the startup error want one.
fn one_line(err: ConnectionError) -> r2d2::Error {
    let err = match err {
        ConnectionError::BadConnection(message) => {
            ConnectionError::BadConnection(message.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        other => other,
    };
    r2d2::Error::ConnectionError(err)
}

impl ManageConnection for DbConnectionManager {
    type Connection = PoolSlot;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PoolSlot, r2d2::Error> {
        Ok(PoolSlot {
            conn: self.establish()?,
            suspect: false,
        })
    }

    fn is_valid(&self, slot: &mut PoolSlot) -> Result<(), r2d2::Error> {
        slot.conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, slot: &mut PoolSlot) -> bool {
        std::thread::panicking() || slot.suspect || slot.conn.is_broken()
    }
}

/// Pool tuning that is not the user's business.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a request waits for a free connection before it fails.
    pub checkout_timeout: Duration,
}

/// Builds the pool without connecting: connections open on first use, so a database that is
/// down does not stop the pool from being built (startup connects and migrates first, with
/// retries, in `startup::connect_and_migrate`).
pub fn build_pool(url: &DatabaseUrl, options: PoolOptions) -> DbPool {
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(options.checkout_timeout)
        .build_unchecked(DbConnectionManager::new(url.clone()))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_pick_postgres_and_hide_the_password() {
        let url =
            DatabaseUrl::parse("postgres://app:s3cret@db.internal:5433/textdrop?sslmode=require")
                .expect("valid");
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db.internal:5433/textdrop"
        );
        assert_eq!(url.location(), "db.internal:5433");
        assert!(!format!("{url:?} {url}").contains("s3cret"));
        let url = DatabaseUrl::parse("postgresql://db/x").expect("valid");
        assert_eq!(url.backend(), Backend::Postgres);
        let url = DatabaseUrl::parse("redis://:pw@cache:6379/2").expect("valid");
        assert_eq!(url.backend(), Backend::Redis);
        assert_eq!(url.redacted(), "redis://:***@cache:6379/2");
        assert_eq!(url.location(), "cache:6379");
    }

    #[test]
    fn sqlite_forms_and_plain_paths_pick_sqlite() {
        for raw in [
            "sqlite://textdrop.db",
            "sqlite:///tmp/t.db",
            "file:t.db",
            "data/t.db",
        ] {
            let url = DatabaseUrl::parse(raw).expect(raw);
            assert_eq!(url.backend(), Backend::Sqlite, "{raw}");
        }
    }

    #[test]
    fn unsupported_or_empty_urls_are_rejected_with_the_expected_form() {
        let err = DatabaseUrl::parse("mysql://root:pw@localhost/db").expect_err("mysql");
        assert!(
            err.contains("mysql") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("pw"));
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
    }
}
