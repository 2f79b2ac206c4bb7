//! The one way a backend waits for a lock another database session may hold (the migration
//! lock on PostgreSQL and MySQL, the migration lease in portable mode): try, and try again
//! every quarter second until a patience budget is spent, saying so in the log once.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;

/// How long to wait between two tries.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// What a wait is for: the lock's name for the log and the error, and where to look for its
/// holder.
pub(crate) struct Lock<'a> {
    pub(crate) name: &'a str,
    pub(crate) hint: &'a str,
}

/// Calls `try_take` on `conn` until it returns `true` or `patience` is spent.
pub(crate) async fn wait_for_lock<C>(
    lock: Lock<'_>,
    patience: Duration,
    conn: &mut C,
    mut try_take: impl for<'c> FnMut(&'c mut C) -> LocalBoxFuture<'c, anyhow::Result<bool>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut said = false;
    loop {
        if try_take(conn).await? {
            return Ok(());
        }
        if started.elapsed() >= patience {
            anyhow::bail!(
                "{} is held by another database session; gave up after {} s. Another instance \
                 may be migrating, or a stuck session holds it ({})",
                lock.name,
                started.elapsed().as_secs(),
                lock.hint
            );
        }
        if !said {
            log::warn!(
                "waiting for {}, held by another database session",
                lock.name
            );
            said = true;
        }
        actix_web::rt::time::sleep(RETRY_EVERY.min(patience)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Lock<'static> {
        Lock {
            name: "the migration lock",
            hint: "see pg_locks",
        }
    }

    #[actix_web::test]
    async fn a_lock_that_frees_is_taken_and_one_that_does_not_is_named() {
        let mut tries = 0;
        wait_for_lock(lock(), Duration::from_secs(5), &mut tries, |tries| {
            *tries += 1;
            let free = *tries == 3;
            Box::pin(async move { Ok(free) })
        })
        .await
        .expect("taken on the third try");
        assert_eq!(tries, 3);

        let err = wait_for_lock(lock(), Duration::ZERO, &mut (), |_| {
            Box::pin(async { Ok(false) })
        })
        .await
        .expect_err("never free");
        let message = err.to_string();
        assert!(
            message.starts_with("the migration lock is held by another database session"),
            "{message}"
        );
        assert!(message.contains("see pg_locks"), "{message}");
    }
}
