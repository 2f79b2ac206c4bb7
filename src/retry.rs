//! Retrying a connection attempt at startup, with backoff, until a patience budget is spent.

use std::future::Future;
use std::time::{Duration, Instant};

/// The first pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Calls `attempt` until it succeeds or `patience` is spent (0: once), pausing 0.25 s, then
/// doubling up to 5 s, between attempts. Each failure is logged at warn naming `what` (never a
/// password: callers pass a redacted location); the last one is returned with that context.
pub async fn with_backoff<T, F, Fut>(
    what: &str,
    patience: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let deadline = started + patience;
    let mut pause = FIRST_PAUSE;
    loop {
        let err = match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(err.context(format!(
                "cannot connect to {what} (gave up after {} s)",
                started.elapsed().as_secs()
            )));
        }
        let wait = pause.min(left);
        log::warn!(
            "{what} not reachable yet, retrying in {} ms: {err:#}",
            wait.as_millis()
        );
        actix_web::rt::time::sleep(wait).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[actix_web::test]
    async fn retries_until_success_within_the_budget() {
        let calls = Cell::new(0);
        let value = with_backoff("thing", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    anyhow::bail!("not yet")
                }
                Ok(n)
            }
        })
        .await
        .expect("third time lucky");
        assert_eq!(value, 3);
    }

    #[actix_web::test]
    async fn a_zero_budget_tries_once_and_names_what_failed() {
        let calls = Cell::new(0);
        let err = with_backoff("the database at db:5432", Duration::ZERO, || {
            calls.set(calls.get() + 1);
            async { anyhow::Result::<()>::Err(anyhow::anyhow!("refused")) }
        })
        .await
        .expect_err("fails");
        assert_eq!(calls.get(), 1);
        let message = format!("{err:#}");
        assert!(
            message.starts_with("cannot connect to the database at db:5432")
                && message.ends_with("refused"),
            "{message}"
        );
    }
}
