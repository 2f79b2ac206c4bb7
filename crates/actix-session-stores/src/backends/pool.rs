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
use diesel_async::pooled_connection::PoolableConnection;
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

/// A pool of connections of one driver to one database. Cheap to clone.
pub(crate) struct AsyncPool<C: Driver> {
    pool: Pool<Manager<C>>,
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
            pool,
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
        match tokio::time::timeout(CHECKOUT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(PooledConn(Some(conn))),
            Ok(Err(err)) => Err(StoreError::unavailable(anyhow::anyhow!(
                "no database connection: {}",
                one_line(&err.to_string())
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
pub(crate) struct PooledConn<C: Driver>(Option<Object<Manager<C>>>);

impl<C: Driver> Drop for PooledConn<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
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

    fn object(&mut self) -> Object<Manager<C>> {
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
                drop(Object::take(conn));
                Err(StoreError::lost(err))
            }
            Err(err) => Err(crate::backends::verdict::verdict(err)),
        }
    }

    /// Gives up a connection whose work ran past `deadline`: in the middle of a statement, it
    /// is in no state to serve another, so it is closed rather than pooled.
    pub(crate) fn abandon(mut self, deadline: Duration) -> StoreError {
        drop(Object::take(self.object()));
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

/// What a diesel-async storage keeps for its threads: how to open a request's connection,
/// each worker's share of `DATABASE_POOL_SIZE`, and the main thread's pool (the sweeper, the
/// storage cap's measurements, the commands), whose statements may run longer.
pub(crate) struct AsyncPools<C: Driver> {
    open: Open<C>,
    per_worker: usize,
    statement_timeout: Duration,
    maintenance: AsyncPool<C>,
}

impl<C: Driver> AsyncPools<C> {
    /// The pools for `database` shared by `workers` workers (nothing is connected here).
    pub(crate) fn new<O: Opens<Conn = C>>(
        database: &DatabaseConfig,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let maintenance_timeout = database
            .statement_timeout
            .max(MAINTENANCE_STATEMENT_TIMEOUT);
        let maintenance_open =
            open_with(parsed::<O>(database)?.with_statement_timeout(maintenance_timeout));
        Ok(Self {
            open: open_with(
                parsed::<O>(database)?.with_statement_timeout(database.statement_timeout),
            ),
            per_worker: (database.pool_size as usize / workers.max(1)).max(1),
            statement_timeout: database.statement_timeout,
            maintenance: AsyncPool::new(
                maintenance_open,
                database.pool_size.min(2) as usize,
                maintenance_timeout,
            ),
        })
    }

    /// A pool for the calling worker (its share), and one connection of its own for
    /// readiness checks: they say whether the database answers, not how long visitors'
    /// requests wait for a connection.
    pub(crate) fn worker(&self) -> (AsyncPool<C>, AsyncPool<C>) {
        let pool = AsyncPool::new(
            Arc::clone(&self.open),
            self.per_worker,
            self.statement_timeout,
        );
        let probe = AsyncPool::new(Arc::clone(&self.open), 1, self.statement_timeout);
        (pool, probe)
    }

    /// Two connections for the calling thread's copy of sessions.
    pub(crate) fn transfer(&self) -> AsyncPool<C> {
        AsyncPool::new(Arc::clone(&self.open), 2, self.statement_timeout)
    }

    /// The main thread's pool.
    pub(crate) fn maintenance(&self) -> &AsyncPool<C> {
        &self.maintenance
    }
}
