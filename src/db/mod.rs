//! The SQL side of storage: which database a `DATABASE_URL` names, how a connection to it is
//! opened and configured, the pool of them and the one way to run blocking database work
//! ([`with_conn`], in `pool`), and the embedded migrations.
//!
//! One binary serves PostgreSQL, MySQL/MariaDB and SQLite through Diesel's `MultiConnection`.
//! The backend is picked from the URL here rather than by the derived `establish`, because that
//! one replaces every connection error with "Invalid connection url for multiconnection".

mod error;
mod migrations;
pub mod named_lock;
mod pool;
mod url;

use actix_web::web;
use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::r2d2;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

pub use error::DbError;

pub use migrations::{
    pending_migrations, portable_mode, run_migrations, run_migrations_within, MIGRATIONS,
    MIGRATION_LOCK_KEY, MYSQL_MIGRATIONS, MYSQL_MIGRATION_LOCK,
};
pub use pool::{
    build_pool, with_conn, with_conn_within, with_write_conn, DbPool, PoolSlot, CHECKOUT_TIMEOUT,
};
pub use url::{Backend, DatabaseUrl};

use crate::config::{CleanupMode, DatabaseSettings};
use crate::retry;
use crate::session::lease::Holder;

/// A connection to whichever SQL database `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
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

    /// Opens one connection outside any pool (migrations, tests). Blocking.
    pub fn establish(&self) -> Result<DbConnection, r2d2::Error> {
        match self.url.backend() {
            Backend::Postgres => PgConnection::establish(self.url.target())
                .map(DbConnection::Postgres)
                .map_err(one_line),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(self.url.target()).map_err(one_line)?;
                // busy_timeout first: switching the journal mode may itself wait for a lock.
                // Incremental auto-vacuum (takes effect on a new database; `migrations`
                // converts an old one) lets the cleanup give freed pages back, and the WAL is
                // cut back to 4 MiB after each checkpoint. WAL lets readers proceed during a
                // write; NORMAL sync is durable against a process crash, and loses at most the
                // last commits on a power cut.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA auto_vacuum = INCREMENTAL; \
                     PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 4194304; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| {
                    r2d2::Error::ConnectionError(ConnectionError::BadConnection(format!(
                        "could not configure the SQLite database: {e}"
                    )))
                })?;
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Mysql => {
                let mut conn = MysqlConnection::establish(self.url.target()).map_err(one_line)?;
                // READ COMMITTED: InnoDB then takes no gap locks for the sweeper's range
                // deletes, which would otherwise deadlock with inserts of new sessions. Times
                // are bound as UTC values; the session time zone is set to UTC all the same,
                // for anyone reading the table with NOW().
                conn.batch_execute(
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                     SET time_zone = '+00:00'",
                )
                .map_err(|e| {
                    r2d2::Error::ConnectionError(ConnectionError::BadConnection(format!(
                        "could not configure the MySQL session: {e}"
                    )))
                })?;
                Ok(DbConnection::Mysql(conn))
            }
            other => Err(r2d2::Error::ConnectionError(
                ConnectionError::BadConnection(format!("{other} is not a SQL database")),
            )),
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

/// MySQL: sends a text through a prepared statement and reads it back, as every query textdrop
/// runs reads its text columns. Some MySQL client libraries hand such values to Diesel empty
/// (Debian 12's libmariadb3 1:10.11.18 does: it clears the length Diesel reads after
/// refetching a long value); textdrop would then see every session as empty and every
/// migration as never applied, so it stops before migrating or serving. Other backends: no-op.
fn check_text_round_trip(conn: &mut DbConnection) -> anyhow::Result<()> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Echo {
        #[diesel(sql_type = diesel::sql_types::Text)]
        echo: String,
    }
    const PROBE: &str = "textdrop reads text values back whole";
    let DbConnection::Mysql(mysql) = conn else {
        return Ok(());
    };
    let Echo { echo } = diesel::sql_query("SELECT CAST(? AS CHAR) AS echo")
        .bind::<diesel::sql_types::Text, _>(PROBE)
        .get_result(mysql)?;
    anyhow::ensure!(
        echo == PROBE,
        "the MySQL client library read {:?} back as {echo:?}: it loses text values (a known \
         fault of libmariadb3 1:10.11.18 in Debian 12); install a fixed client library \
         (libmariadb3 1:10.11.19 or later) before starting textdrop",
        PROBE
    );
    Ok(())
}

/// Connects to the database, runs pending migrations and returns the pool, all off the async
/// executor. An unreachable database is retried with backoff for the connect timeout; a
/// failure says which database and which step, never the password.
///
/// Returns the pool and, in portable mode (see `session::lease`), the lease holder this
/// instance is.
pub async fn connect_and_migrate(
    settings: &DatabaseSettings,
    mode: CleanupMode,
) -> anyhow::Result<(DbPool, Option<Holder>)> {
    let url = settings.url.clone();
    let manager = DbConnectionManager::new(url.clone());
    let what = format!("the database at {}", url.location());
    let mut conn = retry::with_backoff(&what, settings.connect_timeout, || {
        let manager = manager.clone();
        async move {
            web::block(move || manager.establish())
                .await
                .map_err(anyhow::Error::from)?
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    let location = url.location();
    let patience = settings.connect_timeout;
    let (applied, portable) = web::block(move || -> anyhow::Result<_> {
        check_text_round_trip(&mut conn)?;
        let portable = portable_mode(&mut conn, mode)?.then(Holder::new);
        Ok((
            run_migrations_within(&mut conn, patience, portable)?,
            portable,
        ))
    })
    .await?
    .with_context(|| format!("database migrations failed on {location}; nothing was served"))?;
    for version in &applied {
        log::info!("applied migration {version}");
    }
    if portable.is_some() {
        log::info!(
            "portable mode: a lease row elects the sweeper; no ctid, xmin or advisory locks"
        );
    }
    Ok((build_pool(&url, settings.pool_size), portable))
}
