//! PREVIOUS_SECRET_KEYS: SECRET_KEY changes with no one logged out, and no response ever sets a
//! cookie made under a previous key (Flask 3.1.0 did: CVE-2025-47278).

use reqwest::StatusCode;
use textdrop::startup::SESSION_COOKIE;

use crate::helpers::{
    cookie_for, session_cookie_pair, session_key_in, spawn_app, upload_as, upload_with, TestDb,
    TEST_SECRET,
};

const NEW_KEY: &str = "the-new-secret-key-material-after-the-rotation-0123456789";
const STRANGER: &str = "a-key-neither-list-holds-for-this-app-0123456789-abcdefgh";

/// The session key of a cookie `name=value` a response set: it opens under NEW_KEY and under no
/// previous key.
fn only_under_the_new_key(pair: Option<String>) -> Option<String> {
    let pair = pair?;
    assert!(
        session_key_in(&pair, TEST_SECRET).is_none(),
        "a cookie made under the previous key was set"
    );
    Some(session_key_in(&pair, NEW_KEY).expect("a cookie made under SECRET_KEY"))
}

async fn get_with(url: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("GET")
}

/// A visitor with a cookie of the previous key keeps their file and gets it re-made under the
/// new key, persistent cookie (`permanent`) or browser-session cookie.
async fn a_cookie_under_a_previous_key_is_kept_and_remade(db: TestDb, permanent: &str) {
    let before = spawn_app(&db, &[("SESSION_PERMANENT", permanent)]).await;
    let client = crate::helpers::cookie_client();
    let response = upload_with(
        &client,
        &before.address,
        "kept.txt",
        "kept across the key\n",
    )
    .await
    .expect("upload");
    let old_cookie = session_cookie_pair(&response).expect("a cookie");
    let session_key = session_key_in(&old_cookie, TEST_SECRET).expect("under the old key");
    before.stop().await;

    let after = spawn_app(
        &db,
        &[
            ("SESSION_PERMANENT", permanent),
            ("SECRET_KEY", NEW_KEY),
            ("PREVIOUS_SECRET_KEYS", TEST_SECRET),
        ],
    )
    .await;
    let action = format!("{}/action", after.address);

    let response = get_with(&action, &old_cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let remade =
        only_under_the_new_key(session_cookie_pair(&response)).expect("the cookie is re-made");
    assert_eq!(remade, session_key, "the same session, under the new key");
    let page = response.text().await.expect("body");
    assert!(page.contains("kept across the key"), "{page:.300}");

    // The re-made cookie alone shows the file.
    let new_cookie = cookie_for(SESSION_COOKIE, &session_key, NEW_KEY);
    let response = get_with(&action, &new_cookie).await;
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("kept across the key"));

    // An upload with the old cookie rotates the key: the new cookie is under the new key only.
    let (status, rotated) = upload_as(&after, &old_cookie, "b.txt", "second\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    only_under_the_new_key(rotated).expect("the rotated key's cookie");

    // A new visitor's cookie is made under the new key (the Flask CVE).
    let fresh = crate::helpers::cookie_client();
    let response = upload_with(&fresh, &after.address, "new.txt", "new visitor\n")
        .await
        .expect("upload");
    only_under_the_new_key(session_cookie_pair(&response)).expect("a new visitor's cookie");

    // A cookie under a key neither list holds is a fresh session, and nothing is re-made.
    let stranger = cookie_for(SESSION_COOKIE, &session_key, STRANGER);
    let response = get_with(&action, &stranger).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(session_cookie_pair(&response).is_none_or(|pair| {
        session_key_in(&pair, NEW_KEY).is_none_or(|key| key != session_key)
    }));
    let page = response.text().await.expect("body");
    assert!(
        page.contains("You have not yet uploaded a file"),
        "{page:.300}"
    );
    after.stop().await;
}

async fn with_a_persistent_cookie(db: TestDb) {
    a_cookie_under_a_previous_key_is_kept_and_remade(db, "true").await
}

async fn with_a_browser_session_cookie(db: TestDb) {
    a_cookie_under_a_previous_key_is_kept_and_remade(db, "false").await
}

tests_on!(sqlite: Sqlite; with_a_persistent_cookie, with_a_browser_session_cookie);
tests_on!(postgres: Postgres; with_a_persistent_cookie);
