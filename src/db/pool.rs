//! The pool every request and the cleanup task draw connections from, and the one way to run
//! blocking database work on it ([`with_conn`], [`with_write_conn`]).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::error::{deadlocked, lost_connection};
use super::{Backend, DatabaseUrl, DbConnection, DbConnectionManager, DbError};

/// The pool every request and the cleanup task draw connections from: r2d2's pool behind an
/// async gate with one permit per connection. Work waits for a connection as a parked future
/// and only then takes a blocking thread, which finds a connection free: no blocking thread
/// ever sleeps in r2d2's queue (with 32 requests on a pool of 10 that was 22 parked threads
/// and a wake-up storm on every check-in).
///
/// On SQLite, which has one writer at a time, writing work also takes the single permit of a
/// second gate first: writers queue in order in the process instead of meeting the database's
/// lock, whose busy handler sleeps in steps of up to 100 ms (the tail latency of concurrent
/// uploads). Readers never wait for it (WAL).
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<DbConnectionManager>,
    gate: Arc<Semaphore>,
    writer: Option<Arc<Semaphore>>,
}

/// How long a request waits for a pooled connection before it fails.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// [`with_conn`] for work that writes (on SQLite it waits its turn among writers first).
pub async fn with_write_conn<T, F>(pool: &DbPool, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    on_pool(pool, CHECKOUT_TIMEOUT, Access::Write, work).await
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
    on_pool(pool, checkout, Access::Read, work).await
}

/// Whether a piece of work writes (see [`DbPool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

async fn on_pool<T, F>(
    pool: &DbPool,
    checkout: Duration,
    access: Access,
    work: F,
) -> Result<T, DbError>
where
    T: Send + 'static,
    F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let deadline = Instant::now() + checkout;
    let wait =
        |gate: &Arc<Semaphore>| tokio::time::timeout_at(deadline, Arc::clone(gate).acquire_owned());
    let turn = match (&pool.writer, access) {
        (Some(writer), Access::Write) => Some(
            wait(writer)
                .await
                .map_err(|_| DbError::Busy(checkout))?
                .map_err(|_| DbError::Cancelled)?,
        ),
        _ => None,
    };
    let permit = wait(&pool.gate)
        .await
        .map_err(|_| DbError::Busy(checkout))?
        .map_err(|_| DbError::Cancelled)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let pool = pool.pool.clone();
    web::block(move || {
        let _held = (turn, permit);
        let mut slot = pool.get_timeout(left).map_err(DbError::Unavailable)?;
        Ok(slot.run(work)?)
    })
    .await
    .map_err(|_| DbError::Cancelled)?
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

/// Builds the pool without connecting: connections open on first use, so a database that is
/// down does not stop the pool from being built
/// ([`connect_and_migrate`](super::connect_and_migrate) connects first).
pub fn build_pool(url: &DatabaseUrl, max_size: u32) -> DbPool {
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build_unchecked(DbConnectionManager::new(url.clone()));
    let writer = (url.backend() == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1)));
    DbPool {
        pool,
        gate: Arc::new(Semaphore::new(max_size as usize)),
        writer,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Runs 6 pieces of work at once on a SQLite pool of 4 and returns how many ran at the same
    /// time at most (each holds its connection for 30 ms).
    async fn most_at_once(write: bool) -> usize {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("t.db").display()));
        let pool = build_pool(&url.expect("a SQLite URL"), 4);
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..6).map(|_| {
            let (pool, inside, most) = (pool.clone(), inside.clone(), most.clone());
            actix_web::rt::spawn(async move {
                let work = move |_: &mut DbConnection| {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                };
                match write {
                    true => with_write_conn(&pool, work).await,
                    false => with_conn(&pool, work).await,
                }
                .expect("the work ran")
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.expect("the task finished");
        }
        most.load(Ordering::SeqCst)
    }

    #[actix_web::test]
    async fn sqlite_writers_take_turns_and_readers_share_the_pool() {
        assert_eq!(most_at_once(true).await, 1);
        assert!(most_at_once(false).await > 1);
    }
}
