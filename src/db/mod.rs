//! The SQL side of storage: which database a `DATABASE_URL` names, the r2d2 pool of
//! connections to it, the one way to run blocking database work ([`with_conn`]), and the
//! embedded migrations.
//!
//! One binary serves PostgreSQL, MySQL/MariaDB and SQLite through Diesel's `MultiConnection`. The backend is
//! picked from the URL here rather than by the derived `establish`, because that one replaces
//! every connection error with "Invalid connection url for multiconnection".

mod migrations;
pub mod named_lock;
mod url;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use tokio::sync::Semaphore;

pub use migrations::{
    pending_migrations, portable_mode, run_migrations, run_migrations_within, MIGRATIONS,
    MIGRATION_LOCK_KEY, MYSQL_MIGRATIONS, MYSQL_MIGRATION_LOCK,
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

/// The pool every request and the cleanup task draw connections from: r2d2's pool behind an
/// async gate with one permit per connection. Work waits for a connection as a parked future
/// and only then takes a blocking thread, which finds a connection free: no blocking thread
/// ever sleeps in r2d2's queue (with 32 requests on a pool of 10 that was 22 parked threads
/// and a wake-up storm on every check-in).
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<DbConnectionManager>,
    gate: Arc<Semaphore>,
}

/// How long a request waits for a pooled connection before it fails.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a piece of database work failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the checkout timeout: the database is down,
    /// unreachable or saturated.
    #[error("no database connection available: {0}")]
    Unavailable(#[source] r2d2::PoolError),
    /// The statement failed (its connection may have failed with it: see
    /// [`DbError::is_unavailable`]).
    #[error(transparent)]
    Query(#[from] DieselError),
    /// Every connection stayed busy for the whole checkout timeout.
    #[error("no database connection came free within {0:?}")]
    Busy(Duration),
    /// The blocking thread pool dropped the work (the runtime is shutting down).
    #[error("the database work was cancelled")]
    Cancelled,
}

impl DbError {
    /// Whether the database itself could not be reached (as opposed to a statement failing).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) | DbError::Busy(_) | DbError::Cancelled => true,
            DbError::Query(err) => lost_connection(err),
        }
    }
}

/// Whether `err` says the connection is gone. Diesel reports statement errors without a
/// SQLSTATE it knows (SQLite's "database is locked" among them) as `Unknown`: those leave a
/// healthy connection, so only closed or unusable connections count. On MySQL Diesel reports
/// a lost server as `Unknown` too, and only the client library's message tells it apart
/// (errors 2002, 2006 and 2013 of libmysqlclient and libmariadb).
fn lost_connection(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            mysql_server_lost(info.message())
        }
        _ => false,
    }
}

/// The MySQL client libraries' words for a server that went away or cannot be reached.
fn mysql_server_lost(message: &str) -> bool {
    const LOST: [&str; 3] = [
        "server has gone away",
        "lost connection to",
        "can't connect to",
    ];
    let message = message.to_ascii_lowercase();
    LOST.iter().any(|words| message.contains(words))
}

/// Whether `result` is a deadlock's victim: MySQL's error 1213, which Diesel reports as a
/// serialization failure for prepared statements and as `Unknown` (with the server's message)
/// for plain SQL text.
fn deadlocked<T>(result: &diesel::QueryResult<T>) -> bool {
    match result {
        Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
        Err(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
            info.message().starts_with("Deadlock found")
        }
        _ => false,
    }
}

/// A connection as the pool keeps it. The pool does not test connections on checkout (that
/// would cost a round trip per request); a statement that fails because the connection is gone
/// marks it instead, and the pool drops it rather than handing it out again.
pub struct PoolSlot {
    conn: DbConnection,
    broken: bool,
}

impl PoolSlot {
    fn run<T>(
        &mut self,
        work: impl Fn(&mut DbConnection) -> diesel::QueryResult<T>,
    ) -> diesel::QueryResult<T> {
        let mut result = work(&mut self.conn);
        if matches!(self.conn, DbConnection::Mysql(_)) && deadlocked(&result) {
            // InnoDB chose this statement as a deadlock's victim and rolled it back: once
            // more, as MySQL's manual advises, rather than a 500.
            log::debug!("MySQL deadlock; retrying the statement once");
            result = work(&mut self.conn);
        }
        if let Err(err) = &result {
            self.broken |= lost_connection(err);
        }
        result
    }
}

/// Runs `work` with a pooled connection on the blocking thread pool: the one way textdrop
/// touches the database while serving (checking out a connection blocks too).
pub async fn with_conn<T, F>(pool: &DbPool, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    with_conn_within(pool, CHECKOUT_TIMEOUT, work).await
}

/// [`with_conn`], waiting at most `checkout` for a connection.
pub async fn with_conn_within<T, F>(
    pool: &DbPool,
    checkout: Duration,
    work: F,
) -> Result<T, DbError>
where
    T: Send + 'static,
    F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let started = Instant::now();
    let permit = actix_web::rt::time::timeout(checkout, Arc::clone(&pool.gate).acquire_owned())
        .await
        .map_err(|_| DbError::Busy(checkout))?
        .map_err(|_| DbError::Cancelled)?;
    let left = checkout.saturating_sub(started.elapsed());
    let pool = pool.pool.clone();
    web::block(move || {
        let _permit = permit;
        let mut slot = pool.get_timeout(left).map_err(DbError::Unavailable)?;
        Ok(slot.run(work)?)
    })
    .await
    .map_err(|_| DbError::Cancelled)?
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

impl ManageConnection for DbConnectionManager {
    type Connection = PoolSlot;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PoolSlot, r2d2::Error> {
        Ok(PoolSlot {
            conn: self.establish()?,
            broken: false,
        })
    }

    fn is_valid(&self, slot: &mut PoolSlot) -> Result<(), r2d2::Error> {
        slot.conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, slot: &mut PoolSlot) -> bool {
        std::thread::panicking() || slot.broken || slot.conn.is_broken()
    }
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

/// Builds the pool without connecting: connections open on first use, so a database that is
/// down does not stop the pool from being built ([`connect_and_migrate`] connects first).
pub fn build_pool(url: &DatabaseUrl, max_size: u32) -> DbPool {
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build_unchecked(DbConnectionManager::new(url.clone()));
    DbPool {
        pool,
        gate: Arc::new(Semaphore::new(max_size as usize)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_connection_counts_as_unavailable() {
        let info = || Box::new(String::from("x")) as Box<_>;
        let locked = DieselError::DatabaseError(DatabaseErrorKind::Unknown, info());
        let closed = DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info());
        let unsent = DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info());
        assert!(!lost_connection(&locked));
        assert!(!DbError::Query(locked).is_unavailable());
        assert!(lost_connection(&closed) && lost_connection(&unsent));
        assert!(DbError::Query(closed).is_unavailable());
    }

    #[test]
    fn a_mysql_server_gone_counts_as_unavailable_and_a_mysql_error_does_not() {
        let unknown = |message: &str| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
        };
        for gone in [
            "MySQL server has gone away",
            "Server has gone away",
            "Lost connection to server during query",
            "Can't connect to server on '127.0.0.1' (115)",
        ] {
            assert!(lost_connection(&unknown(gone)), "{gone}");
        }
        let duplicate = unknown("Lock wait timeout exceeded; try restarting transaction");
        assert!(!lost_connection(&duplicate));
    }
}
