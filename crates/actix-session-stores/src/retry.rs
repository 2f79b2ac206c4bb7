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
        if let Some(advice) = no_retry_helps(&format!("{err:#}")) {
            return Err(err.context(format!("cannot connect to {what} ({advice})")));
        }
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

/// What the servers and drivers say when the connection itself works and no retry will change
/// the answer, and what to do about it.
const PERMANENT: [(&str, &str); 11] = [
    (
        "does not exist",
        "the database or user named in the database URL does not exist: create it (PostgreSQL: \
         `createdb -h HOST -U USER NAME`) or fix the name",
    ),
    (
        "unknown database",
        "the database named in the database URL does not exist: create it (`CREATE DATABASE name`) \
         or fix the name",
    ),
    (
        "password authentication failed",
        "check the user and password in the database URL",
    ),
    (
        "access denied for user",
        "check the user and password in the database URL",
    ),
    (
        "no pg_hba.conf entry",
        "the server's pg_hba.conf lets this user in from nowhere this instance connects from",
    ),
    ("wrongpass", "check the password in the database URL"),
    (
        "noauth",
        "the server wants a password: put it in the database URL",
    ),
    (
        "failed to lookup address",
        "the host name in the database URL does not resolve: check it",
    ),
    (
        "name or service not known",
        "the host name in the database URL does not resolve: check it",
    ),
    (
        "the password was not sent",
        "the server asked for a password in a form that would cross the network in clear: use TLS, or allow it with require_auth",
    ),
    (
        "certificate",
        "the server's TLS certificate was refused: check sslrootcert and the host name",
    ),
];

/// Advice when `message` says no retry can help (a database that does not exist, a wrong
/// password, a host name that does not resolve): startup stops at once and says what to do.
pub fn no_retry_helps(message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    PERMANENT
        .iter()
        .find(|(words, _)| message.contains(words))
        .map(|(_, advice)| *advice)
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

    #[actix_web::test]
    async fn an_answer_no_retry_can_change_stops_at_once_with_advice() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let err =
            with_backoff::<(), _, _>("the database at db:5432", Duration::from_secs(30), || {
                calls.set(calls.get() + 1);
                async {
                    anyhow::bail!("db error: FATAL: database \"nonexistent_db\" does not exist")
                }
            })
            .await
            .expect_err("it fails");
        assert_eq!(calls.get(), 1, "tried once");
        assert!(started.elapsed() < Duration::from_secs(1));
        let message = format!("{err:#}");
        assert!(message.contains("createdb"), "{message}");
        assert!(no_retry_helps("Connection refused (os error 111)").is_none());
        assert!(no_retry_helps("Access denied for user 'root'@'x'").is_some());
    }
}
