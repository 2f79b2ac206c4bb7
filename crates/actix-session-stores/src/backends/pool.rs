//! The connection pool of the diesel-async backends (PostgreSQL, MySQL): deadpool through
//! diesel-async's manager, one pool per worker thread.
//!
//! Why one per worker: actix-web runs a current-thread runtime per worker, and a connection
//! does its I/O on the runtime that opened it (tokio-postgres spawns its driver task there;
//! any tokio socket is polled by its own runtime's driver). A pool shared by every worker
//! would send each query through whichever worker opened the connection. deadpool opens
//! connections in the task that asks for one and spawns nothing of its own, so a pool used
//! only by one worker keeps all of that worker's database I/O on its thread.
//!
//! A checkout waits at most [`CHECKOUT_TIMEOUT`]; connections are not tested on checkout (that
//! would be a round trip per request) but a statement that fails because its connection is
//! gone takes that connection out of the pool ([`PooledConn::settle`]) and runs once more on a
//! fresh one ([`on_pool!`]): every statement the store runs may run twice (a rotation or an
//! insert that did commit before the connection went is recognised as done by the store).
//! Every statement has a deadline on this side too ([`AsyncPool::statement_deadline`]): a
//! server that stops answering costs a request that long, then its connection is dropped.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, Pool, RecycleError, RecycleResult};
use diesel::result::Error as DieselError;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolableConnection};
use futures_util::future::BoxFuture;

use crate::config::DatabaseConfig;
use crate::session::records::{StoreError, StoreResult};

pub(crate) use super::CHECKOUT_TIMEOUT;

/// A diesel-async connection the store can pool: which of its errors mean it is gone.
pub(crate) trait Driver: PoolableConnection + Send + 'static {
    /// Whether `err`, which a statement on this connection just returned, means the
    /// connection (or the server) is gone.
    fn lost(&mut self, err: &DieselError) -> bool;

    /// Whether work that failed with `err` is worth running once more at once (a deadlock's
    /// victim).
    fn retry_once(&self, _err: &DieselError) -> bool {
        false
    }
}

/// Opens and configures one connection (TLS, session settings).
pub(crate) type Open<C> =
    Arc<dyn Fn() -> BoxFuture<'static, ConnectionResult<C>> + Send + Sync + 'static>;

/// deadpool's manager for a driver: opens connections with `open`; a connection comes back
/// into use unless it is broken (a closed socket, a transaction left open), with no round trip
/// on checkout: a lost connection shows on its first statement.
struct Manager<C>(Open<C>);

impl<C: Driver> managed::Manager for Manager<C> {
    type Type = C;
    type Error = ConnectionError;

    async fn create(&self) -> ConnectionResult<C> {
        (self.0)().await
    }

    async fn recycle(&self, conn: &mut C, _: &Metrics) -> RecycleResult<ConnectionError> {
        match PoolableConnection::is_broken(conn) {
            true => Err(RecycleError::message("the connection is broken")),
            false => Ok(()),
        }
    }
}

/// The pool the application owns: diesel-async's deadpool pool.
pub type AppPool<C> = Pool<AsyncDieselConnectionManager<C>>;

/// Where a pool's connections come from: a pool of this crate's, or the application's.
enum Source<C: Driver> {
    Own(Pool<Manager<C>>),
    App(Arc<dyn AppSource<C>>),
}

impl<C: Driver> Clone for Source<C> {
    fn clone(&self) -> Self {
        match self {
            Source::Own(pool) => Source::Own(pool.clone()),
            Source::App(pool) => Source::App(Arc::clone(pool)),
        }
    }
}

/// The application's pool, seen from here (diesel-async's manager is a deadpool `Manager`
/// only for each concrete connection type, so the pool is used through this).
trait AppSource<C>: Send + Sync {
    fn checkout(&self) -> BoxFuture<'_, Result<Box<dyn AppConn<C>>, String>>;
}

/// A connection out of the application's pool.
trait AppConn<C>: Send {
    fn get(&self) -> &C;
    fn get_mut(&mut self) -> &mut C;
    /// Takes it out of the pool and closes it.
    fn close(self: Box<Self>);
}

impl<C> AppSource<C> for AppPool<C>
where
    C: Driver,
    AsyncDieselConnectionManager<C>: managed::Manager<Type = C>,
    <AsyncDieselConnectionManager<C> as managed::Manager>::Error: std::fmt::Display,
{
    fn checkout(&self) -> BoxFuture<'_, Result<Box<dyn AppConn<C>>, String>> {
        Box::pin(async move {
            match self.get().await {
                Ok(conn) => Ok(Box::new(conn) as Box<dyn AppConn<C>>),
                Err(err) => Err(err.to_string()),
            }
        })
    }
}

impl<C> AppConn<C> for Object<AsyncDieselConnectionManager<C>>
where
    C: Driver,
    AsyncDieselConnectionManager<C>: managed::Manager<Type = C>,
    <AsyncDieselConnectionManager<C> as managed::Manager>::Error: std::fmt::Display,
{
    fn get(&self) -> &C {
        self
    }

    fn get_mut(&mut self) -> &mut C {
        self
    }

    fn close(self: Box<Self>) {
        drop(Object::take(*self));
    }
}

/// A pool of connections of one driver to one database. Cheap to clone.
pub(crate) struct AsyncPool<C: Driver> {
    pool: Source<C>,
    statement_deadline: Duration,
}

impl<C: Driver> Clone for AsyncPool<C> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            statement_deadline: self.statement_deadline,
        }
    }
}

/// The statement timeout of the main thread's connections (the sweeper, the storage cap's
/// measurement, the commands), unless requests get longer: their work reads or deletes many
/// rows, and no visitor waits for it.
pub(crate) const MAINTENANCE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much longer than the server's own statement timeout this side waits for an answer
/// before it gives the connection up: the server's error has that long to arrive first.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

impl<C: Driver> AsyncPool<C> {
    /// A pool of at most `size` connections made by `open`, opened on first use by the task
    /// that asks (nothing is connected here), whose statements the server stops after
    /// `statement_timeout` (the connections' own setting) and this side after that and
    /// [`DEADLINE_MARGIN`].
    pub(crate) fn new(open: Open<C>, size: usize, statement_timeout: Duration) -> Self {
        let pool = Pool::builder(Manager(open))
            .max_size(size.max(1))
            .build()
            .expect("a pool without a runtime-dependent option builds");
        Self {
            pool: Source::Own(pool),
            statement_deadline: statement_timeout + DEADLINE_MARGIN,
        }
    }

    /// The application's `pool`, whose work this side stops after `statement_timeout` (its
    /// connections keep whatever server-side setting the application gave them).
    fn of_app(pool: Arc<dyn AppSource<C>>, statement_timeout: Duration) -> Self {
        Self {
            pool: Source::App(pool),
            statement_deadline: statement_timeout + DEADLINE_MARGIN,
        }
    }

    /// How long a piece of work on one connection may take before the connection is given up.
    pub(crate) fn statement_deadline(&self) -> Duration {
        self.statement_deadline
    }

    /// A connection, waiting at most [`CHECKOUT_TIMEOUT`]; a database that cannot be reached
    /// (or no connection free in time) is "unavailable".
    pub(crate) async fn get(&self) -> StoreResult<PooledConn<C>> {
        let checkout = async {
            match &self.pool {
                Source::Own(pool) => pool
                    .get()
                    .await
                    .map(Checked::Own)
                    .map_err(|e| e.to_string()),
                Source::App(pool) => pool.checkout().await.map(Checked::App),
            }
        };
        match tokio::time::timeout(CHECKOUT_TIMEOUT, checkout).await {
            Ok(Ok(conn)) => Ok(PooledConn(Some(conn))),
            Ok(Err(err)) => Err(StoreError::unavailable(anyhow::anyhow!(
                "no database connection: {}",
                one_line(&err)
            ))),
            Err(_) => Err(StoreError::unavailable(anyhow::anyhow!(
                "no database connection came free within {CHECKOUT_TIMEOUT:?}"
            ))),
        }
    }
}

/// A connection checked out of an [`AsyncPool`]. It goes back into the pool only through
/// [`settle`](Self::settle): dropped before (the request's future dropped mid-statement, when
/// its client went away), it is closed, since it may be in the middle of a statement.
pub(crate) struct PooledConn<C: Driver>(Option<Checked<C>>);

/// A connection out of either kind of pool.
enum Checked<C: Driver> {
    Own(Object<Manager<C>>),
    App(Box<dyn AppConn<C>>),
}

impl<C: Driver> Checked<C> {
    /// Takes the connection out of its pool and closes it.
    fn close(self) {
        match self {
            Checked::Own(conn) => drop(Object::take(conn)),
            Checked::App(conn) => conn.close(),
        }
    }
}

impl<C: Driver> Deref for Checked<C> {
    type Target = C;

    fn deref(&self) -> &C {
        match self {
            Checked::Own(conn) => conn,
            Checked::App(conn) => conn.get(),
        }
    }
}

impl<C: Driver> DerefMut for Checked<C> {
    fn deref_mut(&mut self) -> &mut C {
        match self {
            Checked::Own(conn) => conn,
            Checked::App(conn) => conn.get_mut(),
        }
    }
}

impl<C: Driver> Drop for PooledConn<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.close();
        }
    }
}

/// Runs `$work` (an expression using the connection `$conn`, awaited) on a connection of
/// `$pool` within the pool's statement deadline, once more at once if the driver says its
/// error is worth it, and settles the outcome ([`PooledConn::settle`]): a `StoreResult`. Work
/// whose connection was lost under it runs once more on a fresh connection.
macro_rules! on_pool {
    ($pool:expr, $conn:ident => $work:expr) => {{
        let pool = &$pool;
        let mut lost_before = false;
        loop {
            let mut $conn = match pool.get().await {
                Err(err) => break Err(err),
                Ok(conn) => conn,
            };
            let deadline = pool.statement_deadline();
            let mut result = match tokio::time::timeout(deadline, async { $work }).await {
                Ok(result) => result,
                Err(_) => break Err($conn.abandon(deadline)),
            };
            if $conn.worth_retrying(&result) {
                log::debug!("retrying once after: {:?}", result.as_ref().err());
                result = match tokio::time::timeout(deadline, async { $work }).await {
                    Ok(result) => result,
                    Err(_) => break Err($conn.abandon(deadline)),
                };
            }
            match $conn.settle(result) {
                Err(err) if err.is_lost() && !lost_before => {
                    log::info!("a database connection was lost under a statement; running it again on a new one: {err}");
                    lost_before = true;
                }
                settled => break settled,
            }
        }
    }};
}
pub(crate) use on_pool;

impl<C: Driver> PooledConn<C> {
    /// Whether `result` failed in a way the driver says is worth one more try at once.
    pub(crate) fn worth_retrying<T>(&self, result: &diesel::QueryResult<T>) -> bool {
        matches!(result, Err(err) if (**self).retry_once(err))
    }

    fn object(&mut self) -> Checked<C> {
        self.0.take().expect("a connection is settled once")
    }

    /// The outcome of the work done on this connection, with its verdict: an error that means
    /// the connection is gone takes it out of the pool (the next checkout opens a new one) and
    /// is "unavailable"; any other error leaves it pooled and is a plain failure.
    pub(crate) fn settle<T>(mut self, result: diesel::QueryResult<T>) -> StoreResult<T> {
        let lost = matches!(&result, Err(err) if (*self).lost(err));
        let conn = self.object();
        match result {
            Ok(value) => Ok(value),
            Err(err) if lost => {
                conn.close();
                Err(StoreError::lost(err))
            }
            Err(err) => Err(crate::backends::verdict::verdict(err)),
        }
    }

    /// Gives up a connection whose work ran past `deadline`: in the middle of a statement, it
    /// is in no state to serve another, so it is closed rather than pooled.
    pub(crate) fn abandon(mut self, deadline: Duration) -> StoreError {
        self.object().close();
        StoreError::unavailable(anyhow::anyhow!(
            "the database did not answer within {deadline:?}"
        ))
    }
}

impl<C: Driver> Deref for PooledConn<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.0.as_ref().expect("an unsettled connection")
    }
}

impl<C: Driver> DerefMut for PooledConn<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.0.as_mut().expect("an unsettled connection")
    }
}

/// Drivers' messages may span several lines; logs and errors want one.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a diesel-async backend opens its connections: its URL parsed (TLS, options), and the
/// statement timeout each connection sets.
pub(crate) trait Opens: Sized + Send + Sync + 'static {
    /// The connection it opens.
    type Conn: Driver;

    /// Parses a database URL; the error says what is wrong without repeating the URL.
    fn parse(url: &str) -> Result<Self, String>;

    /// The same opener, with connections whose statements the server stops after `timeout`.
    fn with_statement_timeout(self, timeout: Duration) -> Self;

    /// Opens one connection.
    fn open(&self) -> impl std::future::Future<Output = ConnectionResult<Self::Conn>> + Send;
}

/// `opener` as the pools' [`Open`].
pub(crate) fn open_with<O: Opens>(opener: O) -> Open<O::Conn> {
    let opener = Arc::new(opener);
    Arc::new(move || {
        let opener = Arc::clone(&opener);
        Box::pin(async move { opener.open().await })
    })
}

/// Parses `database`'s URL for the opener `O`.
fn parsed<O: Opens>(database: &DatabaseConfig) -> anyhow::Result<O> {
    O::parse(database.url.target()).map_err(|problem| anyhow::anyhow!("the database URL {problem}"))
}

/// One connection to the database `database` names, retried with backoff for its connect
/// timeout (the first connection: migrations, or a look at what is applied).
pub(crate) async fn first_connection<O: Opens>(
    database: &DatabaseConfig,
) -> anyhow::Result<O::Conn> {
    let opener = parsed::<O>(database)?;
    let what = format!("the database at {}", database.url.location());
    crate::retry::with_backoff(&what, database.connect_timeout, || async {
        Ok(opener.open().await?)
    })
    .await
}

/// What a diesel-async storage keeps for its threads: how each gets its connections, the
/// statement deadline, and the main thread's pool (the sweeper, the storage cap's
/// measurements, the commands).
pub(crate) struct AsyncPools<C: Driver> {
    source: Connections<C>,
    statement_timeout: Duration,
    maintenance: AsyncPool<C>,
}

/// Where the threads' connections come from.
enum Connections<C: Driver> {
    /// Pools of this crate's: one per worker, its share of `DATABASE_POOL_SIZE`, opened by
    /// `open`.
    Own { open: Open<C>, per_worker: usize },
    /// The application's one pool, shared by every thread.
    App(Arc<dyn AppSource<C>>),
}

impl<C: Driver> AsyncPools<C> {
    /// The pools for `database` shared by `workers` workers (nothing is connected here); the
    /// main thread's statements may run longer.
    pub(crate) fn new<O: Opens<Conn = C>>(
        database: &DatabaseConfig,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let maintenance_timeout = database
            .statement_timeout
            .max(MAINTENANCE_STATEMENT_TIMEOUT);
        let maintenance_open =
            open_with(parsed::<O>(database)?.with_statement_timeout(maintenance_timeout));
        let open =
            open_with(parsed::<O>(database)?.with_statement_timeout(database.statement_timeout));
        Ok(Self {
            source: Connections::Own {
                open,
                per_worker: (database.pool_size as usize / workers.max(1)).max(1),
            },
            statement_timeout: database.statement_timeout,
            maintenance: AsyncPool::new(
                maintenance_open,
                database.pool_size.min(2) as usize,
                maintenance_timeout,
            ),
        })
    }

    /// Every thread on the application's `pool`, its work stopped on this side after
    /// `statement_timeout` (the main thread's after [`MAINTENANCE_STATEMENT_TIMEOUT`]).
    pub(crate) fn of_app(pool: AppPool<C>, statement_timeout: Duration) -> Self
    where
        AsyncDieselConnectionManager<C>: managed::Manager<Type = C>,
        <AsyncDieselConnectionManager<C> as managed::Manager>::Error: std::fmt::Display,
    {
        let pool: Arc<dyn AppSource<C>> = Arc::new(pool);
        let maintenance_timeout = statement_timeout.max(MAINTENANCE_STATEMENT_TIMEOUT);
        Self {
            maintenance: AsyncPool::of_app(Arc::clone(&pool), maintenance_timeout),
            source: Connections::App(pool),
            statement_timeout,
        }
    }

    /// A pool for the calling thread's `size` connections.
    fn pool(&self, size: usize) -> AsyncPool<C> {
        match &self.source {
            Connections::Own { open, .. } => {
                AsyncPool::new(Arc::clone(open), size, self.statement_timeout)
            }
            Connections::App(pool) => AsyncPool::of_app(Arc::clone(pool), self.statement_timeout),
        }
    }

    /// A pool for the calling worker (its share), and one connection of its own for
    /// readiness checks: they say whether the database answers, not how long visitors'
    /// requests wait for a connection (on the application's pool, both are that pool).
    pub(crate) fn worker(&self) -> (AsyncPool<C>, AsyncPool<C>) {
        let per_worker = match &self.source {
            Connections::Own { per_worker, .. } => *per_worker,
            Connections::App(_) => 1,
        };
        (self.pool(per_worker), self.pool(1))
    }

    /// Two connections for the calling thread's copy of sessions.
    pub(crate) fn transfer(&self) -> AsyncPool<C> {
        self.pool(2)
    }

    /// The main thread's pool.
    pub(crate) fn maintenance(&self) -> &AsyncPool<C> {
        &self.maintenance
    }
}

/// One connection taken out of the application's `pool` for good (a migration wants its own):
/// the pool opens another in its place when it needs one.
pub(crate) async fn taken_from<C>(pool: &AppPool<C>) -> anyhow::Result<C>
where
    C: Driver,
    AsyncDieselConnectionManager<C>: managed::Manager<Type = C>,
    <AsyncDieselConnectionManager<C> as managed::Manager>::Error: std::fmt::Display,
{
    let conn = tokio::time::timeout(CHECKOUT_TIMEOUT, pool.get())
        .await
        .map_err(|_| {
            anyhow::anyhow!("no connection of the pool came free within {CHECKOUT_TIMEOUT:?}")
        })?
        .map_err(|e| {
            anyhow::anyhow!("no connection from the pool: {}", one_line(&e.to_string()))
        })?;
    Ok(Object::take(conn))
}
