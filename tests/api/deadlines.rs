//! A lock someone holds on the `sessions` table (a DBA's `LOCK TABLE`, a long migration, a
//! `BEGIN EXCLUSIVE` in a SQLite shell) costs visitors at most the statement timeout and the
//! wait for a connection: each request answers 503 within `DATABASE_STATEMENT_TIMEOUT_SECS`
//! plus 6 s, is counted as a store error, and the app serves again once the lock goes.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    first_upload, metric_value, page_with_cookie, spawn_app, upload_as, Backend, TestDb,
};

/// How long the tests' statements may wait.
const TIMEOUT_SECS: u64 = 1;
/// What the README promises: the statement timeout, a second of margin and 5 s for a free
/// connection.
const BOUND: Duration = Duration::from_secs(TIMEOUT_SECS + 6);
/// How long the lock is held: longer than any request may take.
const HELD: Duration = Duration::from_secs(12);

/// Takes the backend's strongest lock on `sessions` on a connection of its own, holds it for
/// [`HELD`], then lets it go. Returns once the lock is held, and the thread that holds it.
fn lock_the_table(db: &TestDb) -> std::thread::JoinHandle<()> {
    let (take, release) = match db.backend {
        Backend::Postgres => (
            "BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE",
            "COMMIT",
        ),
        Backend::Mysql => ("LOCK TABLES sessions WRITE", "UNLOCK TABLES"),
        _ => ("BEGIN EXCLUSIVE", "COMMIT"),
    };
    let mut conn = db.connect();
    let (held, is_held) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        conn.batch(take).expect("take the lock");
        held.send(()).expect("say so");
        std::thread::sleep(HELD);
        conn.batch(release).expect("release the lock");
    });
    is_held.recv().expect("the lock is held");
    holder
}

/// The status of each of `n` requests sent at once by `send`, and how long each took.
async fn at_once<F, Fut>(n: usize, send: F) -> Vec<(StatusCode, Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    futures_util::future::join_all((0..n).map(|i| {
        let sent = Instant::now();
        let request = send(i);
        async move { (request.await, sent.elapsed()) }
    }))
    .await
}

/// PostgreSQL and MySQL: reads of a session wait for the lock; each gets 503 within the bound,
/// with the page that says to try again, while the lock is still held.
async fn a_locked_table_answers_503_within_the_statement_timeout(db: TestDb) {
    let timeout = TIMEOUT_SECS.to_string();
    let app = spawn_app(
        &db,
        &[
            ("DATABASE_STATEMENT_TIMEOUT_SECS", &timeout),
            ("DATABASE_POOL_SIZE", "4"),
        ],
    )
    .await;
    let cookie = first_upload(&app, "a file\n").await;
    let url = format!("{}/action", app.address);
    let locked_at = Instant::now();
    let holder = lock_the_table(&db);

    let answers = at_once(10, |_| {
        let (client, url, cookie) = (reqwest::Client::new(), url.clone(), cookie.clone());
        async move {
            let response = client
                .get(&url)
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .expect("an answer");
            let status = response.status();
            let page = response.text().await.expect("body");
            assert!(page.contains("Temporarily unavailable"), "{page:.300}");
            status
        }
    })
    .await;
    let answered_after = locked_at.elapsed();

    for (status, took) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{answers:?}");
        assert!(*took < BOUND, "a request took {took:?}: {answers:?}");
    }
    assert!(answered_after < HELD, "answered while the lock was held");
    let errors = metric_value(
        &app.metrics.render(),
        "textdrop_store_errors_total{operation=\"load\"}",
    );
    assert!(errors >= Some(10.0), "counted: {errors:?}");
    holder.join().expect("the lock holder");
    assert!(page_with_cookie(&url, &cookie).await.contains("a file"));
    app.stop().await;
}

/// SQLite: readers are not blocked (WAL), so pages still show; uploads wait for the writer's
/// lock at most the busy timeout (the statement timeout) and each gets 503 within the bound.
async fn a_locked_sqlite_database_answers_uploads_503_and_still_shows_pages(db: TestDb) {
    let timeout = TIMEOUT_SECS.to_string();
    let app = spawn_app(&db, &[("DATABASE_STATEMENT_TIMEOUT_SECS", &timeout)]).await;
    let cookie = first_upload(&app, "a file\n").await;
    let url = format!("{}/action", app.address);
    let locked_at = Instant::now();
    let holder = lock_the_table(&db);

    let uploads = at_once(4, |i| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            upload_as(app, &cookie, "new.txt", &format!("upload {i}\n"))
                .await
                .0
        }
    })
    .await;
    let read = page_with_cookie(&url, &cookie).await;
    let answered_after = locked_at.elapsed();

    for (status, took) in &uploads {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{uploads:?}");
        assert!(*took < BOUND, "an upload took {took:?}: {uploads:?}");
    }
    assert!(read.contains("a file"), "{read:.300}");
    assert!(answered_after < HELD, "answered while the lock was held");
    holder.join().expect("the lock holder");
    let (status, _) = upload_as(&app, &cookie, "new.txt", "after the lock\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}

tests_on!(postgres: Postgres; a_locked_table_answers_503_within_the_statement_timeout);
tests_on!(mysql: Mysql; a_locked_table_answers_503_within_the_statement_timeout);
tests_on!(sqlite: Sqlite; a_locked_sqlite_database_answers_uploads_503_and_still_shows_pages);
