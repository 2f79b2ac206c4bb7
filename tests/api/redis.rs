//! The Redis backend (`DATABASE_URL=redis://…`): actix-session's own RedisSessionStore behind
//! the same pages, limits and cookie settings. Redis expires keys itself.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, session_set_cookie, spawn_app, spawn_app_with, Backend, TestClock, TestDb,
};

#[actix_web::test]
async fn on_redis_an_upload_is_shown_replaced_and_escaped() {
    let Some(db) = TestDb::new(Backend::Redis) else {
        return;
    };
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "600")]).await;

    let first = app.upload("a.txt", "<b>alpha</b>\n").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = session_set_cookie(&first).expect("cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    let page = app.get_text("/action").await;
    assert!(page.contains("&lt;b&gt;alpha&lt;&#x2F;b&gt;"), "{page}");
    assert!(page.contains("id=\"kept-until\""), "{page}");

    app.upload("b.txt", "beta\n").await;
    let page = app.get_text("/action").await;
    assert!(page.contains("beta") && !page.contains("alpha"), "{page}");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.stop().await;
}

#[actix_web::test]
async fn on_redis_mistakes_keep_the_stored_file_and_readers_get_no_cookie() {
    let Some(db) = TestDb::new(Backend::Redis) else {
        return;
    };
    let app = spawn_app(
        &db,
        &[("MAX_UPLOAD_BYTES", "16"), ("SESSION_LIFETIME_SECS", "600")],
    )
    .await;
    let reader = reqwest::Client::new()
        .get(format!("{}/action", app.address))
        .send()
        .await;
    assert!(session_set_cookie(&reader.expect("GET")).is_none());

    app.upload("keep.txt", "keep\n").await;
    let too_large = app.upload("big.txt", vec![b'a'; 17]).await;
    let not_text = app.upload("bin.txt", b"\0\0".to_vec()).await;

    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(not_text.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.get_text("/action").await.contains("keep"));
    app.stop().await;
}

#[actix_web::test]
async fn on_redis_a_session_expires_and_survives_a_restart() {
    let Some(db) = TestDb::new(Backend::Redis) else {
        return;
    };
    let client = cookie_client();
    let vars = [("SESSION_LIFETIME_SECS", "2")];
    let first = spawn_app_with(&db, &vars, TestClock::default(), client.clone()).await;
    let upload = first.upload("a.txt", "short lived\n").await;
    let cookie = session_set_cookie(&upload).expect("cookie");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    first.stop().await;

    let second = spawn_app_with(&db, &vars, TestClock::default(), client).await;
    let with_old_cookie = || async {
        reqwest::Client::new()
            .get(format!("{}/action", second.address))
            .header("cookie", pair.as_str())
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    };
    assert!(
        with_old_cookie().await.contains("short lived"),
        "a restart keeps it"
    );
    // Redis counts real time: a lifetime with no visit, and the key is gone.
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let page = with_old_cookie().await;
    assert!(page.contains("You have not yet uploaded a file"), "{page}");
    second.stop().await;
}

#[test]
fn maintenance_commands_have_nothing_to_do_on_redis() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_textdrop"))
        .arg("cleanup")
        .env_clear()
        .env("DATABASE_URL", "redis://127.0.0.1:1/0")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");

    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("expires sessions itself"));
}
