//! Session lifetime end to end: cookie attributes in both modes, expiry, sliding, the cleanup
//! task, and a restart with the same SECRET_KEY.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, eventually, session_set_cookie, spawn_app, spawn_app_with, Backend, TestDb,
};

async fn a_permanent_session_sets_a_persistent_http_only_cookie(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(
        &db,
        &[
            ("SESSION_PERMANENT", "true"),
            ("SESSION_LIFETIME_SECS", "600"),
        ],
    )
    .await;

    let response = app.upload("a.txt", "a\n").await;

    let cookie = session_set_cookie(&response).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "COOKIE_SECURE defaults to false: {cookie}"
    );
    // Reads re-send the cookie so its Max-Age slides with the session.
    let read = app.get("/action").await;
    assert!(session_set_cookie(&read).is_some_and(|c| c.contains("Max-Age=600")));
    app.stop().await;
}

async fn a_non_permanent_session_sets_a_browser_session_cookie(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(
        &db,
        &[("SESSION_PERMANENT", "false"), ("COOKIE_SECURE", "true")],
    )
    .await;

    let response = app.upload("a.txt", "a\n").await;

    let cookie = session_set_cookie(&response).expect("a session cookie");
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // The row still expires: SESSION_LIFETIME_SECS after the last request.
    let (_, expires_at) = db.expiries().pop().expect("a row");
    let ahead = (expires_at - chrono::Utc::now().naive_utc()).num_seconds();
    assert!((86_390..=86_400).contains(&ahead), "{ahead}");
    app.stop().await;
}

/// A secure cookie is not sent back over plain HTTP, so the non-permanent test above cannot
/// read its page; this one checks that a browser-session cookie works on the next request.
async fn a_browser_session_cookie_keeps_the_file_across_requests(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(&db, &[("SESSION_PERMANENT", "false")]).await;

    app.upload("a.txt", "still here\n").await;

    assert!(app.get_text("/action").await.contains("still here"));
    app.stop().await;
}

async fn an_expired_session_is_not_served(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "60")]).await;
    app.upload("a.txt", "secret plans\n").await;

    app.clock.advance(Duration::from_secs(61));

    let page = app.get_text("/action").await;
    assert!(!page.contains("secret plans"), "{page}");
    assert!(page.contains("You have not yet uploaded a file"));
    app.stop().await;
}

async fn requests_slide_the_lifetime_of_a_live_session(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
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

async fn the_cleanup_task_deletes_expired_rows_and_keeps_live_ones(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
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
    let other = crate::helpers::cookie_client();
    let part = reqwest::multipart::Part::bytes(b"fresh\n".to_vec()).file_name("b.txt");
    other
        .post(format!("{}/", app.address))
        .multipart(reqwest::multipart::Form::new().part("textfile", part))
        .send()
        .await
        .expect("upload");
    // (The sweeper may already have run: its first tick comes within 0.1 s of startup.)

    let swept = eventually(Duration::from_secs(5), || db.row_count() == 1).await;

    assert!(swept, "the expired row is deleted within a few ticks");
    assert!(db.states()[0].contains("fresh"), "the live row is kept");
    app.stop().await;
}

async fn a_restart_with_the_same_secret_key_keeps_the_session(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
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

async fn the_action_page_says_when_the_data_will_be_deleted(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "6000")]).await;
    app.upload("a.txt", "a\n").await;
    let kept_until = |page: &str| {
        let start = page.find("id=\"kept-until\">").expect("kept-until") + 16;
        page[start..start + 20].to_owned()
    };
    let expected = |from_now: i64| {
        (app.clock.clock().now() + chrono::Duration::seconds(from_now))
            .format("%Y-%m-%d %H:%M UTC")
            .to_string()
    };

    let first = kept_until(&app.get_text("/action").await);
    // Ten minutes on, most of the lifetime is left: the row keeps its expiry, and the page too.
    app.clock.advance(Duration::from_secs(600));
    let later = kept_until(&app.get_text("/action").await);
    // Past a fifth of the lifetime, the visit moves the expiry to a full lifetime from now.
    app.clock.advance(Duration::from_secs(1200));
    let before = expected(6000);
    let moved = kept_until(&app.get_text("/action").await);
    let after = expected(6000);

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

async fn forget_deletes_the_row_and_the_cookie_and_the_old_cookie_finds_nothing(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(&db, &[]).await;
    let upload = app.upload("a.txt", "forget me\n").await;
    let old_cookie = session_set_cookie(&upload).expect("cookie");

    let response = app
        .client
        .post(format!("{}/forget", app.address))
        .send()
        .await
        .expect("POST /forget");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/?forgotten=1");
    let removal = session_set_cookie(&response).expect("a removal cookie");
    assert!(
        removal.contains("Max-Age=0") || removal.contains("Expires="),
        "{removal}"
    );
    assert_eq!(db.row_count(), 0);
    assert!(app
        .get_text("/?forgotten=1")
        .await
        .contains("Your data was deleted"));
    // A late request carrying the old cookie cannot bring the data back.
    let late = reqwest::Client::new()
        .get(format!("{}/action", app.address))
        .header("cookie", old_cookie.split(';').next().expect("pair"))
        .send()
        .await
        .expect("GET");
    assert!(late
        .text()
        .await
        .expect("body")
        .contains("You have not yet uploaded a file"));
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

backend_tests!(
    the_action_page_says_when_the_data_will_be_deleted,
    forget_deletes_the_row_and_the_cookie_and_the_old_cookie_finds_nothing,
    a_permanent_session_sets_a_persistent_http_only_cookie,
    a_non_permanent_session_sets_a_browser_session_cookie,
    a_browser_session_cookie_keeps_the_file_across_requests,
    an_expired_session_is_not_served,
    requests_slide_the_lifetime_of_a_live_session,
    the_cleanup_task_deletes_expired_rows_and_keeps_live_ones,
    a_restart_with_the_same_secret_key_keeps_the_session,
);

#[actix_web::test]
async fn a_restart_with_another_secret_key_starts_a_fresh_session() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
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
