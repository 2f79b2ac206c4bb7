//! The read cache (READ_CACHE, on by default for PostgreSQL and SQLite): a page read answered
//! from memory, and every write of any instance honoured by the others: on PostgreSQL at once
//! (LISTEN/NOTIFY), elsewhere within READ_CACHE_MAX_AGE_SECS.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, first_upload, page_with_cookie, spawn_app, spawn_app_with, upload_as, TestApp,
    TestClock, TestDb,
};

/// The cache on, with an age bound far longer than the tests: what they see of other
/// instances' writes comes from the notices.
const CACHED: [(&str, &str); 2] = [("READ_CACHE", "on"), ("READ_CACHE_MAX_AGE_SECS", "3600")];

/// How long a notice may take to reach the other instance here.
const NOTICE_BOUND: Duration = Duration::from_secs(1);

async fn action_with(app: &TestApp, cookie: &str) -> String {
    page_with_cookie(&format!("{}/action", app.address), cookie).await
}

async fn forget_with(app: &TestApp, cookie: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/forget", app.address))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("POST /forget")
        .status()
}

/// How long until `app` no longer shows `text` to `cookie`, polling; `None` past `within`.
async fn gone_within(
    app: &TestApp,
    cookie: &str,
    text: &str,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if !action_with(app, cookie).await.contains(text) {
            return Some(started.elapsed());
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Deletes every row behind the app's back (no instance is told).
fn delete_every_row(db: &TestDb) {
    let mut conn = db.connect();
    crate::on_conn!(&mut conn, c => diesel::sql_query("DELETE FROM sessions").execute(c))
        .expect("DELETE");
}

/// A visitor's forget on one instance: the other, which had the file in its cache, shows
/// nothing within the notice's time, not the cache's age bound.
async fn a_forget_on_one_instance_is_honoured_by_the_other_at_once(db: TestDb) {
    let a = spawn_app(&db, &CACHED).await;
    let b = spawn_app(&db, &CACHED).await;
    let key = first_upload(&a, "the secret text\n").await;
    for _ in 0..3 {
        assert!(action_with(&b, &key).await.contains("the secret text"));
    }

    assert_eq!(forget_with(&a, &key).await, StatusCode::SEE_OTHER);

    let took = gone_within(&b, &key, "the secret text", NOTICE_BOUND).await;
    assert!(took.is_some(), "instance B still shows the forgotten file");
    assert_eq!(db.row_count(), 0);
    a.stop().await;
    b.stop().await;
}

/// After an upload on instance A, the key it replaced shows the previous file on instance B
/// for the grace, then nothing; the new key shows the new file there.
async fn a_superseded_key_stops_showing_the_file_on_the_other_instance_after_the_grace(db: TestDb) {
    let vars = [CACHED[0], CACHED[1], ("ROTATION_GRACE_SECS", "2")];
    let a = spawn_app(&db, &vars).await;
    let b = spawn_app(&db, &vars).await;
    let old = first_upload(&a, "version one\n").await;
    assert!(action_with(&b, &old).await.contains("version one"));

    let (status, new) = upload_as(&a, &old, "two.txt", "version two\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let new = new.expect("the upload's key");

    // The notice reaches B after A's reply (a few milliseconds).
    let started = Instant::now();
    let mut by_old = action_with(&b, &old).await;
    while !by_old.contains("A newer upload replaced this file") && started.elapsed() < NOTICE_BOUND
    {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        by_old = action_with(&b, &old).await;
    }
    assert!(
        by_old.contains("A newer upload replaced this file"),
        "B knows the key was replaced: {by_old:.600}"
    );
    assert!(by_old.contains("version one"), "{by_old:.400}");
    assert!(action_with(&b, &new).await.contains("version two"));
    actix_web::rt::time::sleep(Duration::from_millis(2_300)).await;
    let late = action_with(&b, &old).await;
    assert!(!late.contains("version one"), "{late:.400}");
    assert!(action_with(&b, &new).await.contains("version two"));
    a.stop().await;
    b.stop().await;
}

/// A cached record is never served past its expiry: the cache holds the expiry the storage
/// had, and a read with the clock past it goes to the storage, which has none.
async fn a_cached_read_never_outlives_the_sessions_expiry(db: TestDb) {
    let clock = TestClock::default();
    let vars = [CACHED[0], CACHED[1], ("SESSION_LIFETIME_SECS", "60")];
    let app = spawn_app_with(&db, &vars, clock.clone(), cookie_client()).await;
    let key = first_upload(&app, "short lived\n").await;
    assert!(action_with(&app, &key).await.contains("short lived"));
    let expiries = db.expiries();

    clock.advance(Duration::from_secs(61));

    let late = action_with(&app, &key).await;
    assert!(!late.contains("short lived"), "{late:.400}");
    assert_eq!(db.expiries(), expiries, "no read moved the expiry");
    app.stop().await;
}

/// A change no instance announces (a row deleted by hand) is served from memory at most
/// READ_CACHE_MAX_AGE_SECS after the entry was read.
async fn an_unannounced_change_is_seen_within_the_age_bound(db: TestDb) {
    let vars = [("READ_CACHE", "on"), ("READ_CACHE_MAX_AGE_SECS", "2")];
    let app = spawn_app(&db, &vars).await;
    let key = first_upload(&app, "kept in memory\n").await;
    assert!(action_with(&app, &key).await.contains("kept in memory"));
    let read = Instant::now();

    delete_every_row(&db);

    let stale = action_with(&app, &key).await;
    if read.elapsed() < Duration::from_secs(2) {
        assert!(
            stale.contains("kept in memory"),
            "the entry answers until its age bound (the cache is on): {stale:.3000}"
        );
    }
    let took = gone_within(&app, &key, "kept in memory", Duration::from_secs(4)).await;
    assert!(took.is_some(), "still served past the age bound");
    assert!(read.elapsed() >= Duration::from_secs(2) - Duration::from_millis(50));
    app.stop().await;
}

tests_on!(on_postgres: Postgres;
    a_forget_on_one_instance_is_honoured_by_the_other_at_once,
    a_superseded_key_stops_showing_the_file_on_the_other_instance_after_the_grace,
    a_cached_read_never_outlives_the_sessions_expiry,
    an_unannounced_change_is_seen_within_the_age_bound,
);

tests_on!(on_sqlite: Sqlite;
    a_cached_read_never_outlives_the_sessions_expiry,
    an_unannounced_change_is_seen_within_the_age_bound,
);

tests_on!(on_mysql: Mysql;
    an_unannounced_change_is_seen_within_the_age_bound,
);
