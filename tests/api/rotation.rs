//! Key rotation with a grace period (ROTATION_GRACE_SECS): after an upload the previous key
//! shows the previous file, read-only, for the grace period, then nothing; the new key alone
//! sees the new file; forget removes both; a lost reply never leaves a visitor with nothing
//! (a crash: `faults::kill_9_during_writes_leaves_every_session_whole`; no grace:
//! `safety::every_upload_rotates_the_key_and_old_keys_show_nothing`).

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    first_upload, metric_value, page_with_cookie, spawn_app, upload_as, TestApp, TestDb,
};

/// The grace period of these tests, short enough to wait out.
const GRACE: &str = "2";

async fn action_with(app: &TestApp, cookie: &str) -> String {
    page_with_cookie(&format!("{}/action", app.address), cookie).await
}

/// The uses of superseded keys after their grace period the app counted.
fn late_uses(app: &TestApp) -> f64 {
    metric_value(&app.metrics.render(), "textdrop_superseded_key_uses_total")
        .expect("the superseded key counter is exported")
}

/// The reply to an upload is lost (the browser keeps the old key): the old key shows the
/// previous file, never the new one, for the grace period, then nothing, and that late use is
/// counted. The new key shows the new file.
async fn a_lost_reply_leaves_the_old_key_on_the_previous_file_for_the_grace(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", GRACE)]).await;
    let old = first_upload(&app, "version one\n").await;
    let (status, new) = upload_as(&app, &old, "second.txt", "version two\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let new = new.expect("the upload rotates the key");
    assert_ne!(new, old);

    let by_old = action_with(&app, &old).await;
    assert!(by_old.contains("version one"), "{by_old:.400}");
    assert!(!by_old.contains("version two"));
    let by_new = action_with(&app, &new).await;
    assert!(by_new.contains("version two"), "{by_new:.400}");
    assert!(!by_new.contains("version one"));
    // Read-only: reading with the old key within the grace does not extend it.
    assert_eq!(late_uses(&app), 0.0);

    actix_web::rt::time::sleep(Duration::from_millis(2_300)).await;
    let late = action_with(&app, &old).await;
    assert!(!late.contains("version one"), "{late:.400}");
    assert!(
        late.contains("You have not yet uploaded a file"),
        "{late:.400}"
    );
    assert_eq!(
        late_uses(&app),
        1.0,
        "the late use of a superseded key is counted"
    );
    assert!(action_with(&app, &new).await.contains("version two"));
    app.stop().await;
}

/// The client closes its socket as soon as its upload is written, never reading the answer:
/// the key it keeps shows the previous file within the grace (whether or not the rotation
/// happened), then either the previous file (no rotation) or nothing.
async fn a_client_that_hangs_up_after_its_upload_keeps_its_previous_file(db: TestDb) {
    use std::io::Write;
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", GRACE)]).await;
    let old = first_upload(&app, "kept version\n").await;
    let port = app.port;
    let cookie = old.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let head = crate::helpers::multipart_head("lost.txt");
        let body = format!("{head}in flight version\n{}", crate::helpers::MULTIPART_TAIL);
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
            crate::helpers::MULTIPART,
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        // Gone before the answer.
    })
    .await
    .expect("upload");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let page = action_with(&app, &old).await;
    assert!(page.contains("kept version"), "{page:.400}");
    assert!(!page.contains("in flight version"), "{page:.400}");
    app.stop().await;
}

/// Session fixation: an attacker plants its key in a victim's browser; the victim's upload
/// rotates it, and the planted key never shows the victim's file, within the grace or after.
async fn a_planted_key_never_shows_the_victims_upload(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", GRACE)]).await;
    let planted = first_upload(&app, "the attacker bait\n").await;
    let (status, victims) = upload_as(&app, &planted, "secret.txt", "the victim secret\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let victims = victims.expect("the victim's own key");

    let within = action_with(&app, &planted).await;
    assert!(!within.contains("the victim secret"), "{within:.400}");
    // An upload with the planted key after the victim's is refused (a key has one successor):
    // the attacker cannot supersede the victim's session either.
    let (status, attackers) = upload_as(&app, &planted, "probe.txt", "the attacker again\n").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(attackers, None, "no key for the refused upload");
    actix_web::rt::time::sleep(Duration::from_millis(2_300)).await;
    assert!(!action_with(&app, &planted)
        .await
        .contains("the victim secret"));
    let page = action_with(&app, &victims).await;
    assert!(page.contains("the victim secret"), "{page:.400}");
    app.stop().await;
}

/// "Forget my data now" within the grace deletes the current record and the one it superseded:
/// neither key shows anything, and nothing is stored.
async fn forget_within_the_grace_empties_both_keys(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "60")]).await;
    let old = first_upload(&app, "first version\n").await;
    let (_, new) = upload_as(&app, &old, "second.txt", "second version\n").await;
    let new = new.expect("new key");
    assert!(action_with(&app, &old).await.contains("first version"));
    assert_eq!(
        db.row_count(),
        2,
        "the current record and the superseded one"
    );

    let forgot = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/forget", app.address))
        .header(reqwest::header::COOKIE, &new)
        .send()
        .await
        .expect("POST /forget");
    assert_eq!(forgot.status(), StatusCode::SEE_OTHER);
    for key in [&old, &new] {
        let page = action_with(&app, key).await;
        assert!(!page.contains("version"), "{page:.400}");
    }
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

/// A rotation keeps one superseded record per session: the one before it goes.
async fn each_session_keeps_one_superseded_record(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "60")]).await;
    let first = first_upload(&app, "version 1\n").await;
    let (_, second) = upload_as(&app, &first, "2.txt", "version 2\n").await;
    let second = second.expect("key 2");
    let (_, third) = upload_as(&app, &second, "3.txt", "version 3\n").await;
    let third = third.expect("key 3");
    assert_eq!(
        db.row_count(),
        2,
        "the current record and the one it superseded"
    );
    assert!(!action_with(&app, &first).await.contains("version"));
    assert!(action_with(&app, &second).await.contains("version 2"));
    assert!(action_with(&app, &third).await.contains("version 3"));
    app.stop().await;
}

/// POST /forget with only `cookie`; the status.
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

/// The same upload sent again with the key it replaced (the second request of a double
/// click, a browser's retry after a lost reply) is answered as the success it was: 303 and a
/// cookie for the key it is stored under. Nothing is stored twice; the chain stays one.
async fn the_same_upload_sent_again_is_answered_with_its_key(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", GRACE)]).await;
    let old = first_upload(&app, "version one\n").await;
    let (status, first) = upload_as(&app, &old, "two.txt", "version two\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let first = first.expect("the upload's key");

    let (status, again) = upload_as(&app, &old, "two.txt", "version two\n").await;

    assert_eq!(status, StatusCode::SEE_OTHER, "the retry is a success");
    let again = again.expect("the retry gets the upload's key back");
    let page = action_with(&app, &again).await;
    assert!(page.contains("version two"), "{page:.400}");
    assert!(!page.contains("A newer upload replaced"), "{page:.400}");
    assert_eq!(
        db.row_count(),
        2,
        "the superseded record and the one upload"
    );
    // Both cookies name one record: forget with the retry's removes what the first shows.
    assert_eq!(forget_with(&app, &again).await, StatusCode::SEE_OTHER);
    assert!(!action_with(&app, &first).await.contains("version two"));
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

/// Another upload sent with a key an upload has replaced is refused with a page that says a
/// newer upload replaced this session, and changes nothing; the newer file stays.
async fn another_upload_with_a_replaced_key_is_refused_and_says_why(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", GRACE)]).await;
    let old = first_upload(&app, "version one\n").await;
    let (_, new) = upload_as(&app, &old, "two.txt", "version two\n").await;
    let new = new.expect("new key");

    let part = reqwest::multipart::Part::bytes(b"version three\n".to_vec())
        .file_name("three.txt")
        .mime_str("text/plain")
        .expect("mime");
    let refused = reqwest::Client::new()
        .post(format!("{}/", app.address))
        .header(reqwest::header::COOKIE, &old)
        .multipart(reqwest::multipart::Form::new().part("textfile", part))
        .send()
        .await
        .expect("POST");

    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(crate::helpers::session_cookie(&refused).is_none());
    let page = refused.text().await.expect("body");
    assert!(page.contains("A newer upload replaced"), "{page:.600}");
    assert!(page.contains("was not stored"), "{page:.600}");
    assert!(!page.contains("from this browser"), "{page:.600}");
    assert!(action_with(&app, &new).await.contains("version two"));
    assert_eq!(db.row_count(), 2);
    app.stop().await;
}

/// "Forget my data now" from a key an upload has replaced (a tab left on the previous
/// version) removes the whole chain, the newer record included, on every storage.
async fn forget_from_a_replaced_key_removes_the_newer_record_too(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "60")]).await;
    let old = first_upload(&app, "version one\n").await;
    let (_, new) = upload_as(&app, &old, "two.txt", "version two\n").await;
    let new = new.expect("new key");
    let (_, newest) = upload_as(&app, &new, "three.txt", "version three\n").await;
    let newest = newest.expect("newest key");
    assert_eq!(db.row_count(), 2);

    assert_eq!(forget_with(&app, &new).await, StatusCode::SEE_OTHER);

    assert_eq!(db.row_count(), 0, "the whole chain is gone");
    for key in [&old, &new, &newest] {
        let page = action_with(&app, key).await;
        assert!(!page.contains("version"), "{page:.400}");
    }
    app.stop().await;
}

/// A replaced key's page says it shows the previous version, and until when; its cookie is
/// sent back worth only that long, not a whole session lifetime.
async fn a_replaced_keys_page_says_it_is_the_previous_version_and_until_when(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "60")]).await;
    let old = first_upload(&app, "version one\n").await;
    let (_, new) = upload_as(&app, &old, "two.txt", "version two\n").await;
    let new = new.expect("new key");

    let response = reqwest::Client::new()
        .get(format!("{}/action", app.address))
        .header(reqwest::header::COOKIE, &old)
        .send()
        .await
        .expect("GET");
    let cookie = crate::helpers::session_cookie(&response);
    let page = response.text().await.expect("body");

    assert!(page.contains("version one"), "{page:.600}");
    assert!(
        page.contains("A newer upload replaced this file"),
        "{page:.600}"
    );
    assert!(page.contains("until"), "{page:.600}");
    assert!(!page.contains("each visit keeps it"), "{page:.600}");
    if let Some(cookie) = cookie {
        let age = cookie.max_age().expect("a persistent cookie's Max-Age");
        assert!(age.whole_seconds() <= 60, "Max-Age {age}");
    }
    let current = action_with(&app, &new).await;
    assert!(current.contains("each visit keeps it"), "{current:.600}");
    assert!(
        !current.contains("A newer upload replaced"),
        "{current:.600}"
    );
    app.stop().await;
}

/// Without a grace period, uploads sent at once with one key still give the key one
/// successor: the same file five times is one rotation whose key every request gets; five
/// different files are one rotation and four refusals. The replaced record keeps no data.
async fn at_grace_zero_a_key_still_has_one_successor(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "0")]).await;
    let old = first_upload(&app, "version one\n").await;

    let same = futures_util::future::join_all(
        (0..5).map(|_| upload_as(&app, &old, "same.txt", "the same file\n")),
    )
    .await;
    for (status, cookie) in &same {
        assert_eq!(*status, StatusCode::SEE_OTHER, "{same:?}");
        let page = action_with(&app, cookie.as_deref().expect("a key")).await;
        assert!(page.contains("the same file"), "{page:.400}");
    }
    assert_eq!(
        db.row_count(),
        2,
        "one chain: the record and the tombstone it replaced"
    );
    if !matches!(
        db.backend,
        crate::helpers::Backend::Redis | crate::helpers::Backend::RedisCluster
    ) {
        assert!(
            db.files().iter().filter(|f| f.is_some()).count() == 1,
            "the tombstone keeps no file"
        );
    }

    let current = same[0].1.clone().expect("key");
    let different = futures_util::future::join_all((0..5).map(|n| {
        upload_as(
            &app,
            &current,
            "n.txt",
            Box::leak(format!("file {n}\n").into_boxed_str()),
        )
    }))
    .await;
    let stored = different
        .iter()
        .filter(|(status, _)| *status == StatusCode::SEE_OTHER)
        .count();
    let refused = different
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    assert_eq!((stored, refused), (1, 4), "{different:?}");
    assert_eq!(db.row_count(), 2, "still one chain");
    app.stop().await;
}

page_tests!(
    the_same_upload_sent_again_is_answered_with_its_key,
    another_upload_with_a_replaced_key_is_refused_and_says_why,
    forget_from_a_replaced_key_removes_the_newer_record_too,
    a_replaced_keys_page_says_it_is_the_previous_version_and_until_when,
    at_grace_zero_a_key_still_has_one_successor,
    a_lost_reply_leaves_the_old_key_on_the_previous_file_for_the_grace,
    a_client_that_hangs_up_after_its_upload_keeps_its_previous_file,
    a_planted_key_never_shows_the_victims_upload,
    forget_within_the_grace_empties_both_keys,
    each_session_keeps_one_superseded_record,
);

/// The migration that moved the rotation links onto the new record upgrades a table the
/// previous version populated: sessions rotated before it (written without `predecessor`) are
/// linked, so "forget" still empties both keys of a session and its next upload still deletes
/// the record before (both found by primary key only), and nothing else is touched.
async fn the_links_migration_links_sessions_rotated_before_it(db: TestDb) {
    let grace = [("ROTATION_GRACE_SECS", "60")];
    let app = spawn_app(&db, &grace).await;
    let a1 = first_upload(&app, "a version 1\n").await;
    let (_, a2) = upload_as(&app, &a1, "a2.txt", "a version 2\n").await;
    let a2 = a2.expect("A's second key");
    let b1 = first_upload(&app, "b version 1\n").await;
    let (_, b2) = upload_as(&app, &b1, "b2.txt", "b version 2\n").await;
    let b2 = b2.expect("B's second key");
    app.stop().await;

    // The table as the previous version left it: no links column, the successor index back.
    let mut conn = db.connect();
    conn.revert_last_migration();
    assert!(
        conn.execute("SELECT predecessor FROM sessions").is_err(),
        "reverted"
    );
    assert_eq!(db.row_count(), 4);

    // The next start upgrades it.
    let app = spawn_app(&db, &grace).await;
    assert!(db.connect().pending_migrations().is_empty());
    assert!(
        action_with(&app, &b1).await.contains("b version 1"),
        "the grace holds"
    );

    assert_eq!(forget_with(&app, &a2).await, StatusCode::SEE_OTHER);
    for key in [&a1, &a2] {
        let page = action_with(&app, key).await;
        assert!(!page.contains("version"), "{page:.400}");
    }
    assert_eq!(db.row_count(), 2, "both of A's records went, B's stay");

    let (_, b3) = upload_as(&app, &b2, "b3.txt", "b version 3\n").await;
    let b3 = b3.expect("B's third key");
    assert_eq!(db.row_count(), 2, "B's first record went");
    assert!(!action_with(&app, &b1).await.contains("version"));
    assert!(action_with(&app, &b2).await.contains("b version 2"));
    assert!(action_with(&app, &b3).await.contains("b version 3"));
    app.stop().await;
}

crate::sql_tests!(links_migration: the_links_migration_links_sessions_rotated_before_it);
