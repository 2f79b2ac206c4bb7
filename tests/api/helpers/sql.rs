//! A plain, blocking SQL connection for tests, to any of the three SQL databases, without a C
//! client library: SQLite's own connection, and for PostgreSQL and MySQL diesel-async's
//! connection behind its sync wrapper ([`AsyncConnectionWrapper`]), driven by a runtime of the
//! tests' own on a thread of its own (so a test may block on it from inside its async body).

use std::future::Future;
use std::sync::LazyLock;

use actix_session_stores::migrations::{MIGRATIONS, MYSQL_MIGRATIONS};
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel_async::async_connection_wrapper::{AsyncConnectionWrapper, BlockOn};
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};
use diesel_migrations::MigrationHarness;

/// The runtime every test connection's I/O runs on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("test-sql")
        .enable_all()
        .build()
        .expect("the test SQL runtime")
});

/// Blocks on a connection's futures from any thread, an async test's included: the
/// connection's sockets and tasks belong to [`RUNTIME`], whose own thread drives their I/O.
pub struct OnTestRuntime(tokio::runtime::Handle);

impl BlockOn for OnTestRuntime {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        let _inside = self.0.enter();
        // Outside tokio's cooperative budget: the calling thread may be inside an async test's
        // task, whose budget would otherwise run out after a hundred statements and never be
        // renewed while this blocks.
        futures_executor::block_on(tokio::task::unconstrained(f))
    }

    fn get_runtime() -> Self {
        Self(RUNTIME.handle().clone())
    }
}

pub type SyncPg = AsyncConnectionWrapper<AsyncPgConnection, OnTestRuntime>;
pub type SyncMysql = AsyncConnectionWrapper<AsyncMysqlConnection, OnTestRuntime>;

/// A blocking connection to one of the SQL databases.
#[expect(
    clippy::large_enum_variant,
    reason = "a handful live at once in a test; boxing would cost every `on_conn!` a deref"
)]
pub enum TestConn {
    Sqlite(SqliteConnection),
    Postgres(SyncPg),
    Mysql(SyncMysql),
}

/// Runs `$body` with `$c` bound to the inner connection of the [`TestConn`] `$conn`, whatever
/// its database: Diesel code written once for the three.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::helpers::TestConn::Sqlite($c) => $body,
            $crate::helpers::TestConn::Postgres($c) => $body,
            $crate::helpers::TestConn::Mysql($c) => $body,
        }
    };
}

impl TestConn {
    /// Opens a connection to the database at `url` (`sqlite://`, `postgres://`, `mysql://`).
    pub fn open(url: &str) -> ConnectionResult<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            // A read that meets the app's write lock (a commit's checkpoint) waits for it, as
            // the app's own connections do, instead of failing with "database is locked".
            let mut conn = SqliteConnection::establish(path)?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                "PRAGMA busy_timeout = 5000",
            )
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
            return Ok(Self::Sqlite(conn));
        }
        if url.starts_with("postgres") {
            return <SyncPg as Connection>::establish(url).map(Self::Postgres);
        }
        let url = url.replacen("mariadb://", "mysql://", 1);
        <SyncMysql as Connection>::establish(&url).map(Self::Mysql)
    }

    /// Runs `sql` (one or more statements, no result).
    pub fn batch(&mut self, sql: &str) -> QueryResult<()> {
        use diesel::connection::SimpleConnection;
        on_conn!(self, c => c.batch_execute(sql))
    }

    /// Runs one statement and returns the rows it touched.
    pub fn execute(&mut self, sql: &str) -> QueryResult<usize> {
        on_conn!(self, c => diesel::sql_query(sql).execute(c))
    }

    /// Runs the embedded migrations that are pending.
    pub fn migrate(&mut self) {
        match self {
            Self::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS).map(drop),
            Self::Postgres(c) => c.run_pending_migrations(MIGRATIONS).map(drop),
            Self::Sqlite(c) => c.run_pending_migrations(MIGRATIONS).map(drop),
        }
        .expect("migrations run");
    }

    /// The names of the embedded migrations not yet run.
    pub fn pending_migrations(&mut self) -> Vec<String> {
        fn names<DB: diesel::backend::Backend>(
            pending: Vec<Box<dyn diesel::migration::Migration<DB> + '_>>,
        ) -> Vec<String> {
            pending.iter().map(|m| m.name().to_string()).collect()
        }
        match self {
            Self::Mysql(c) => c.pending_migrations(MYSQL_MIGRATIONS).map(names),
            Self::Postgres(c) => c.pending_migrations(MIGRATIONS).map(names),
            Self::Sqlite(c) => c.pending_migrations(MIGRATIONS).map(names),
        }
        .expect("pending migrations")
    }

    /// Reverts the last migration run (its down.sql).
    pub fn revert_last_migration(&mut self) {
        match self {
            Self::Mysql(c) => c.revert_last_migration(MYSQL_MIGRATIONS).map(drop),
            Self::Postgres(c) => c.revert_last_migration(MIGRATIONS).map(drop),
            Self::Sqlite(c) => c.revert_last_migration(MIGRATIONS).map(drop),
        }
        .expect("down.sql runs");
    }

    /// How many migrations this database's folder holds.
    pub fn migration_count(&self) -> usize {
        match self {
            Self::Mysql(_) => {
                MigrationSource::<diesel::mysql::Mysql>::migrations(&MYSQL_MIGRATIONS)
                    .map(|m| m.len())
            }
            _ => MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map(|m| m.len()),
        }
        .expect("migrations")
    }
}
