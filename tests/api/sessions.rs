//! Session lifetime end to end: cookie attributes in both modes, expiry, sliding, the cleanup
//! task, and a restart with the same SECRET_KEY.

use std::time::Duration;

use actix_web::cookie::SameSite;
use reqwest::StatusCode;
use textdrop::startup::SESSION_COOKIE;

use sha2::{Digest, Sha256};

use crate::helpers::{
    cookie_client, eventually, page_with_cookie, session_cookie, session_cookie_pair,
    session_key_in, spawn_app, spawn_app_with, upload_with, TestApp, TestDb, TEST_SECRET,
};

async fn a_permanent_session_sets_a_persistent_http_only_cookie(db: TestDb) {
    let app = spawn_app(
        &db,
        &[
            ("SESSION_PERMANENT", "true"),
            ("SESSION_LIFETIME_SECS", "600"),
        ],
    )
    .await;

    let response = app.upload("a.txt", "a\n").await;

    let cookie = session_cookie(&response).expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.same_site(), Some(SameSite::Lax), "{cookie}");
    assert_eq!(cookie.path(), Some("/"), "{cookie}");
    assert_eq!(
        cookie.max_age().map(|age| age.whole_seconds()),
        Some(600),
        "{cookie}"
    );
    assert_ne!(
        cookie.secure(),
        Some(true),
        "COOKIE_SECURE defaults to false: {cookie}"
    );
    // Reads re-send the cookie so its Max-Age slides with the session.
    let read = session_cookie(&app.get("/action").await).expect("the cookie again");
    assert_eq!(read.max_age().map(|age| age.whole_seconds()), Some(600));
    app.stop().await;
}

async fn a_non_permanent_session_sets_a_browser_session_cookie(db: TestDb) {
    let app = spawn_app(
        &db,
        &[("SESSION_PERMANENT", "false"), ("COOKIE_SECURE", "true")],
    )
    .await;

    let response = app.upload("a.txt", "a\n").await;

    let cookie = session_cookie(&response).expect("a session cookie");
    assert_eq!(cookie.max_age(), None, "{cookie}");
    assert_eq!(cookie.expires(), None, "{cookie}");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.same_site(), Some(SameSite::Lax), "{cookie}");
    assert_eq!(cookie.secure(), Some(true), "{cookie}");
    // The stored session still expires: SESSION_LIFETIME_SECS after the last request.
    let ahead = db.expiries_from_now();
    assert!(
        ahead.len() == 1 && (86_390..=86_400).contains(&ahead[0]),
        "{ahead:?}"
    );
    app.stop().await;
}

/// A secure cookie is not sent back over plain HTTP, so the non-permanent test above cannot
/// read its page; this one checks that a browser-session cookie works on the next request.
async fn a_browser_session_cookie_keeps_the_file_across_requests(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_PERMANENT", "false")]).await;

    app.upload("a.txt", "still here\n").await;

    assert!(app.get_text("/action").await.contains("still here"));
    app.stop().await;
}

async fn an_expired_session_is_not_served(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "60")]).await;
    app.upload("a.txt", "secret plans\n").await;

    app.clock.advance(Duration::from_secs(61));

    let page = app.get_text("/action").await;
    assert!(!page.contains("secret plans"), "{page}");
    assert!(page.contains("You have not yet uploaded a file"));
    app.stop().await;
}

async fn requests_slide_the_lifetime_of_a_live_session(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "100")]).await;
    app.upload("a.txt", "kept alive\n").await;

    // Visit at 50 s and 100 s: each visit keeps the session for another lifetime.
    app.clock.advance(Duration::from_secs(50));
    assert!(app.get_text("/action").await.contains("kept alive"));
    app.clock.advance(Duration::from_secs(50));
    assert!(app.get_text("/action").await.contains("kept alive"));
    app.clock.advance(Duration::from_secs(90));
    assert!(app.get_text("/action").await.contains("kept alive"));

    // Then idle for longer than a lifetime.
    app.clock.advance(Duration::from_secs(101));
    assert!(!app.get_text("/action").await.contains("kept alive"));
    app.stop().await;
}

async fn the_cleanup_task_deletes_expired_rows_and_keeps_live_ones(db: TestDb) {
    let app = spawn_app(
        &db,
        &[
            ("SESSION_LIFETIME_SECS", "60"),
            ("CLEANUP_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    app.upload("a.txt", "soon gone\n").await;
    app.clock.advance(Duration::from_secs(61));
    // A second visitor uploads after the first one's session has expired.
    let response = upload_with(&cookie_client(), &app.address, "b.txt", "fresh\n")
        .await
        .expect("upload");
    let pair = session_cookie_pair(&response).expect("a cookie");
    let key = session_key_in(&pair, TEST_SECRET).expect("a cookie under the app's key");
    let live_id = hex::encode(Sha256::digest(key.as_bytes()));
    // (The sweeper may already have run: its first tick comes within 0.1 s of startup.)

    let swept = eventually(Duration::from_secs(5), || db.row_count() == 1).await;

    assert!(swept, "the expired row is deleted within a few ticks");
    assert_eq!(db.stored_ids(), [live_id], "the live row is kept");
    app.stop().await;
}

async fn a_restart_with_the_same_secret_key_keeps_the_session(db: TestDb) {
    let client = cookie_client();
    let first = spawn_app_with(&db, &[], Default::default(), client.clone()).await;
    first.upload("a.txt", "survives restarts\n").await;
    first.stop().await;

    let second = spawn_app_with(&db, &[], Default::default(), client).await;

    assert!(second
        .get_text("/action")
        .await
        .contains("survives restarts"));
    second.stop().await;
}

/// The "Kept until" text of an /action page.
fn kept_until(page: &str) -> String {
    let start = page.find("id=\"kept-until\">").expect("kept-until") + 16;
    page[start..start + 20].to_owned()
}

/// `from_now` seconds after the app's clock, as the page writes a time.
fn as_shown(app: &TestApp, from_now: i64) -> String {
    (app.clock.clock().now() + chrono::Duration::seconds(from_now))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// Every backend: after an upload the page promises a lifetime from now, and the storage's own
/// expiry agrees with it.
async fn the_action_page_shows_the_expiry_the_storage_applies(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "6000")]).await;
    app.upload("a.txt", "a\n").await;

    let before = as_shown(&app, 6000);
    let shown = kept_until(&app.get_text("/action").await);
    let after = as_shown(&app, 6000);

    assert!(
        shown == before || shown == after,
        "{shown} is not a lifetime from now ({before})"
    );
    let stored = db.expiries_from_now();
    assert!(
        stored.len() == 1 && (5_990..=6_000).contains(&stored[0]),
        "{stored:?}"
    );
    app.stop().await;
}

/// SQL: a read moves the expiry only once less than 80 % of the lifetime is left, and the page
/// shows the expiry the row really has.
async fn the_action_page_follows_the_rows_expiry_as_it_slides(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "6000")]).await;
    app.upload("a.txt", "a\n").await;

    let first = kept_until(&app.get_text("/action").await);
    // Ten minutes on, most of the lifetime is left: the row keeps its expiry, and the page too.
    app.clock.advance(Duration::from_secs(600));
    let later = kept_until(&app.get_text("/action").await);
    // Past a fifth of the lifetime, the visit moves the expiry to a full lifetime from now.
    app.clock.advance(Duration::from_secs(1200));
    let before = as_shown(&app, 6000);
    let moved = kept_until(&app.get_text("/action").await);
    let after = as_shown(&app, 6000);

    assert_eq!(later, first);
    assert!(
        moved == before || moved == after,
        "{moved} is not a lifetime from now"
    );
    assert_ne!(moved, first);
    assert!(app
        .get_text("/action")
        .await
        .contains("up to 100 minutes longer"));
    app.stop().await;
}

async fn forget_deletes_the_row_and_the_cookie_and_the_old_cookie_finds_nothing(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let upload = app.upload("a.txt", "forget me\n").await;
    let old_cookie = session_cookie_pair(&upload).expect("cookie");

    let response = app
        .client
        .post(format!("{}/forget", app.address))
        .send()
        .await
        .expect("POST /forget");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/?forgotten=1");
    let removal = session_cookie(&response).expect("a removal cookie");
    assert_eq!(removal.name(), SESSION_COOKIE);
    assert!(
        removal.max_age().is_some_and(|age| age.is_zero()) || removal.expires_datetime().is_some(),
        "{removal}"
    );
    assert_eq!(db.row_count(), 0);
    assert!(app
        .get_text("/?forgotten=1")
        .await
        .contains("Your data was deleted"));
    // A late request carrying the old cookie cannot bring the data back.
    let late = page_with_cookie(&format!("{}/action", app.address), &old_cookie).await;
    assert!(late.contains("You have not yet uploaded a file"), "{late}");
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

page_tests!(
    the_action_page_shows_the_expiry_the_storage_applies,
    forget_deletes_the_row_and_the_cookie_and_the_old_cookie_finds_nothing,
    a_permanent_session_sets_a_persistent_http_only_cookie,
    a_non_permanent_session_sets_a_browser_session_cookie,
    a_browser_session_cookie_keeps_the_file_across_requests,
    a_restart_with_the_same_secret_key_keeps_the_session,
);

// The app's clock moves these, and they read rows; Redis counts its own time
// (tests/api/redis.rs).
sql_tests!(rows:
    the_action_page_follows_the_rows_expiry_as_it_slides,
    an_expired_session_is_not_served,
    requests_slide_the_lifetime_of_a_live_session,
    the_cleanup_task_deletes_expired_rows_and_keeps_live_ones,
);

async fn a_restart_with_another_secret_key_starts_a_fresh_session(db: TestDb) {
    let client = cookie_client();
    let first = spawn_app_with(&db, &[], Default::default(), client.clone()).await;
    first.upload("a.txt", "old key\n").await;
    first.stop().await;

    let other_key = "another-secret-key-material-that-is-long-enough-xyz";
    let second = spawn_app_with(
        &db,
        &[("SECRET_KEY", other_key)],
        Default::default(),
        client,
    )
    .await;

    let response = second.get("/action").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("You have not yet uploaded"));
    second.stop().await;
}

tests_on!(sqlite_only: Sqlite;
    a_restart_with_another_secret_key_starts_a_fresh_session,
);
