//! SQLite's pool: r2d2 (sync Diesel) behind two async gates, and the one way to run database
//! work on it ([`SqlitePool::read`], [`SqlitePool::write`]).
//!
//! Reads run on the calling thread: a read of a small session in WAL mode takes microseconds
//! (docs/benchmarks.md has the figure), less than a hop to the blocking pool costs, and it
//! never waits for a lock (WAL readers do not). A read that brings a file along runs on the
//! blocking pool ([`SqlitePool::read_off_thread`]): copying megabytes would hold the worker. Writes run on the blocking pool: a commit may
//! checkpoint the write-ahead log, and another process (a cleanup run by hand) may hold the write
//! lock for as long as the busy timeout. Writers take turns on a one-permit gate first, so they
//! queue in order in the process instead of meeting SQLite's lock and its sleeping busy
//! handler; readers never wait for it.
//!
//! Both wait for a connection as parked futures behind a gate with one permit per connection:
//! no thread ever sleeps in r2d2's queue, and a read that holds a permit finds a connection
//! free at once.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, ConnectionError, SqliteConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::backends::CHECKOUT_TIMEOUT;
use crate::session::records::{StoreError, StoreResult};

/// Opens SQLite connections, each configured the same way.
#[derive(Debug, Clone)]
pub(crate) struct Manager {
    path: String,
    /// How long a statement waits for another connection's (or process's) lock.
    busy_timeout: Duration,
}

impl Manager {
    /// Connections to the database file at `path`, waiting for a lock at most 5 s (see
    /// [`with_busy_timeout`](Self::with_busy_timeout)).
    pub(crate) fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// Statements wait at most `timeout` for a lock, then fail with "database is locked" (a
    /// 503).
    pub(crate) fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens the connection migrations run on, which may create the database: before its
    /// first table, incremental auto-vacuum (the migration step converts an old database) lets
    /// the cleanup give freed pages back. Blocking.
    pub(crate) fn establish_first(&self) -> Result<SqliteConnection, ConnectionError> {
        let mut conn = self.establish()?;
        conn.batch_execute("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(|e| {
                ConnectionError::BadConnection(format!(
                    "could not configure the SQLite database: {e}"
                ))
            })?;
        Ok(conn)
    }

    /// Opens one connection. Blocking, for about a millisecond: it changes nothing in the
    /// database, so it never waits for a writer.
    pub(crate) fn establish(&self) -> Result<SqliteConnection, ConnectionError> {
        let mut conn = SqliteConnection::establish(&self.path)?;
        // busy_timeout first: switching the journal mode may itself wait for a lock. The WAL
        // is cut back to 4 MiB after each checkpoint. WAL lets readers proceed during a write;
        // NORMAL sync is durable against a process crash, and loses at most the last commits
        // on a power cut.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
             PRAGMA journal_size_limit = 4194304; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON;",
            self.busy_timeout.as_millis()
        ))
        .map_err(|e| {
            ConnectionError::BadConnection(format!("could not configure the SQLite database: {e}"))
        })?;
        Ok(conn)
    }
}

impl ManageConnection for Manager {
    type Connection = SqliteConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<SqliteConnection, r2d2::Error> {
        self.establish().map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut SqliteConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut SqliteConnection) -> bool {
        std::thread::panicking()
    }
}

/// The pool the application owns: Diesel's r2d2 pool of SQLite connections.
pub type AppPool = r2d2::Pool<r2d2::ConnectionManager<SqliteConnection>>;

/// Where the connections come from: a pool of this crate's, or the application's.
#[derive(Clone)]
enum Source {
    Own(r2d2::Pool<Manager>),
    App(AppPool),
}

/// A connection out of either pool.
enum Checked {
    Own(r2d2::PooledConnection<Manager>),
    App(r2d2::PooledConnection<r2d2::ConnectionManager<SqliteConnection>>),
}

impl std::ops::Deref for Checked {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Checked::Own(conn) => conn,
            Checked::App(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Checked {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Checked::Own(conn) => conn,
            Checked::App(conn) => conn,
        }
    }
}

/// The SQLite pool. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqlitePool {
    pool: Source,
    gate: Arc<Semaphore>,
    writer: Arc<Semaphore>,
}

impl SqlitePool {
    /// A pool of `size` connections, opened on first use.
    pub(crate) fn new(manager: Manager, size: u32) -> Self {
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(CHECKOUT_TIMEOUT)
            .build_unchecked(manager);
        Self {
            pool: Source::Own(pool),
            gate: Arc::new(Semaphore::new(size as usize)),
            writer: Arc::new(Semaphore::new(1)),
        }
    }

    /// The application's `pool`, behind the same gates (one permit per connection it may
    /// open).
    pub(crate) fn of_app(pool: AppPool) -> Self {
        let size = pool.max_size() as usize;
        Self {
            pool: Source::App(pool),
            gate: Arc::new(Semaphore::new(size)),
            writer: Arc::new(Semaphore::new(1)),
        }
    }

    /// Runs the read `work` on the calling thread (see the module's doc).
    pub(crate) async fn read<T>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let _permit = permit(&self.gate, deadline).await?;
        let mut conn = self.checkout_here(deadline).await?;
        work(&mut conn).map_err(crate::backends::verdict::verdict)
    }

    /// A connection for work on the calling thread, which never waits in r2d2's queue: this
    /// crate's pool has a connection free for every permit of the gate; the application's
    /// may have lent them all to its own handlers, so an idle one is taken if there is one,
    /// a new one is opened on the blocking pool while the pool may grow, and otherwise the
    /// wait is a parked future, until `deadline`.
    async fn checkout_here(&self, deadline: Instant) -> StoreResult<Checked> {
        let Source::App(pool) = &self.pool else {
            return self.checkout(deadline);
        };
        loop {
            if let Some(conn) = pool.try_get() {
                return Ok(Checked::App(conn));
            }
            if pool.state().connections < pool.max_size() {
                let pool = pool.clone();
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                return web::block(move || pool.get_timeout(left))
                    .await
                    .map_err(StoreError::unavailable)?
                    .map(Checked::App)
                    .map_err(StoreError::unavailable);
            }
            if Instant::now() >= deadline {
                return Err(StoreError::unavailable(anyhow::anyhow!(
                    "no database connection came free within {CHECKOUT_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Runs the read `work` on the blocking pool: a read that copies a file (up to several
    /// MiB) would hold the worker's thread, and every connection it serves, for as long.
    pub(crate) async fn read_off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let permit = permit(&self.gate, deadline).await?;
        let pool = self.clone();
        web::block(move || {
            let _held = permit;
            let mut conn = pool.checkout(deadline)?;
            work(&mut conn).map_err(crate::backends::verdict::verdict)
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    /// Runs `work`, which writes, on the blocking pool after its turn among writers.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let turn = permit(&self.writer, deadline).await?;
        let permit = permit(&self.gate, deadline).await?;
        let pool = self.clone();
        web::block(move || {
            let _held = (turn, permit);
            let mut conn = pool.checkout(deadline)?;
            work(&mut conn).map_err(crate::backends::verdict::verdict)
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    fn checkout(&self, deadline: Instant) -> StoreResult<Checked> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match &self.pool {
            Source::Own(pool) => pool.get_timeout(left).map(Checked::Own),
            Source::App(pool) => pool.get_timeout(left).map(Checked::App),
        }
        .map_err(StoreError::unavailable)
    }
}

/// A permit of `gate`, waiting at most until `deadline`.
async fn permit(gate: &Arc<Semaphore>, deadline: Instant) -> StoreResult<OwnedSemaphorePermit> {
    match tokio::time::timeout_at(deadline, Arc::clone(gate).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(closed)) => Err(StoreError::unavailable(closed)),
        Err(_) => Err(StoreError::unavailable(anyhow::anyhow!(
            "no database connection came free within {CHECKOUT_TIMEOUT:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn pool_in(dir: &tempfile::TempDir) -> SqlitePool {
        let path = dir.path().join("t.db").display().to_string();
        SqlitePool::new(Manager::new(&path), 4)
    }

    /// The application's pool has lent its one connection to the application's own work for
    /// 300 ms: a read of the store waits for it as a parked future (the worker's other tasks
    /// run meanwhile), not in r2d2's queue, then runs.
    #[actix_web::test]
    async fn a_read_on_the_applications_busy_pool_parks_rather_than_blocks() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("t.db").display().to_string();
        let app_pool = r2d2::Pool::builder()
            .max_size(1)
            .build(r2d2::ConnectionManager::<SqliteConnection>::new(path))
            .expect("the application's pool");
        let store_pool = SqlitePool::of_app(app_pool.clone());
        let held = app_pool.get().expect("the application's connection");
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            actix_web::rt::spawn(async move {
                loop {
                    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let release = actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let started = std::time::Instant::now();
        store_pool
            .read(|conn| conn.batch_execute("SELECT 1"))
            .await
            .expect("the read ran once the connection came back");
        let waited = started.elapsed();
        let ticked = ticks.load(Ordering::SeqCst);
        ticker.abort();
        release.await.expect("released");
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        // A thread blocked in r2d2's queue for 300 ms would have let the ticker run 0 times.
        assert!(
            ticked >= 10,
            "the worker's other tasks ran {ticked} times in {waited:?}"
        );
    }

    #[actix_web::test]
    async fn writers_take_turns() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pool = pool_in(&dir);
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (pool, inside, most) = (pool.clone(), inside.clone(), most.clone());
                actix_web::rt::spawn(async move {
                    pool.write(move |_| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .expect("the write ran")
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task finished");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[actix_web::test]
    async fn a_read_does_not_wait_for_a_write_in_progress() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pool = pool_in(&dir);
        let writing = pool.clone();
        let write = actix_web::rt::spawn(async move {
            writing
                .write(|conn| {
                    conn.batch_execute("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE;")?;
                    std::thread::sleep(Duration::from_millis(500));
                    conn.batch_execute("COMMIT")
                })
                .await
        });
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;

        let started = std::time::Instant::now();
        pool.read(|conn| conn.batch_execute("SELECT 1"))
            .await
            .expect("the read ran");

        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        write.await.expect("joined").expect("the write ran");
    }

    /// A statement error ("no such table" here, "database is locked" on a busy database) leaves
    /// a healthy connection in the pool: a marker only that connection can see survives it.
    #[actix_web::test]
    async fn a_failing_statement_keeps_its_connection_in_the_pool() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("t.db").display().to_string();
        let pool = SqlitePool::new(Manager::new(&path), 1);
        pool.write(|conn| conn.batch_execute("CREATE TEMPORARY TABLE this_connection (x INTEGER)"))
            .await
            .expect("mark the connection");

        let failed = pool
            .read(|conn| conn.batch_execute("SELECT * FROM nowhere"))
            .await;

        let err = failed.expect_err("the statement fails");
        assert!(!err.is_unavailable(), "{err}");
        pool.read(|conn| conn.batch_execute("SELECT x FROM this_connection"))
            .await
            .expect("the pool kept the same connection");
    }
}
