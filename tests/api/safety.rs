//! What an anonymous visitor cannot do to another, or to the data: plant or replay a session
//! key, post from another site, keep a file forever, make it take more room than its size, or
//! disguise a file name.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, multipart_head, page_with_cookie, session_cookie, session_cookie_pair,
    spawn_app, upload_with, TestApp, TestDb, MULTIPART, MULTIPART_TAIL,
};

/// Without a grace period (ROTATION_GRACE_SECS=0), the old key shows nothing at once.
async fn every_upload_rotates_the_key_and_old_keys_show_nothing(db: TestDb) {
    let app = spawn_app(&db, &[("ROTATION_GRACE_SECS", "0")]).await;
    let action = format!("{}/action", app.address);
    let first = session_cookie_pair(&app.upload("a.txt", "first\n").await).expect("cookie");

    let second = session_cookie_pair(&app.upload("b.txt", "second\n").await).expect("cookie");

    assert_ne!(first, second, "a new key for the new upload");
    let with_old = page_with_cookie(&action, &first).await;
    assert!(
        with_old.contains("You have not yet uploaded a file"),
        "{with_old}"
    );
    assert!(page_with_cookie(&action, &second).await.contains("second"));
    // The old session's data is gone at once: what is left of it is a tombstone (its link to
    // the new record, no file), kept for a few seconds so that a key has one successor.
    let mut file_sizes: Vec<u64> = db.stored_sizes().iter().map(|(file, _)| *file).collect();
    file_sizes.sort_unstable();
    // "second\n" sealed: the prefix, then the base64 of 5 header bytes, a 12-byte nonce, the
    // 7 bytes and a 16-byte tag.
    assert_eq!(file_sizes, [0, 3 + 54], "the old session's file is gone");

    // Forget leaves no usable key either.
    app.client
        .post(format!("{}/forget", app.address))
        .send()
        .await
        .expect("forget");
    let after_forget = page_with_cookie(&action, &second).await;
    assert!(after_forget.contains("You have not yet uploaded a file"));
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

/// POSTs a small upload with extra headers; returns the status and the body.
async fn post_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", MULTIPART)
        .body(format!(
            "{}cross\n{MULTIPART_TAIL}",
            multipart_head("x.txt")
        ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    (response.status(), response.text().await.expect("body"))
}

async fn posts_from_other_sites_get_403_and_same_origin_ones_pass(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("keep.txt", "keep me\n").await;
    let own = format!("http://127.0.0.1:{}", app.port);

    for (case, headers) in [
        ("cross-site fetch", vec![("sec-fetch-site", "cross-site")]),
        ("same-site fetch", vec![("sec-fetch-site", "same-site")]),
        ("another origin", vec![("origin", "https://evil.example")]),
        ("another port", vec![("origin", "http://127.0.0.1:1")]),
        ("opaque origin", vec![("origin", "null")]),
    ] {
        for path in ["/", "/forget"] {
            let (status, page) = post_with(&app, path, &headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{case} on {path}");
            assert!(
                page.contains("must be sent from textdrop"),
                "{case}: {page}"
            );
        }
    }
    assert!(
        app.get_text("/action").await.contains("keep me"),
        "nothing changed"
    );

    for (case, headers) in [
        (
            "same-origin fetch",
            vec![("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
        ),
        (
            "typed into the address bar",
            vec![("sec-fetch-site", "none")],
        ),
        ("no headers (curl)", vec![]),
    ] {
        let (status, _) = post_with(&app, "/", &headers).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{case}");
    }
    let (status, _) = post_with(&app, "/forget", &[("origin", own.as_str())]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "forget from the page itself");
    app.stop().await;
}

/// SQL: a file visited every day is still deleted at most SESSION_MAX_LIFETIME_SECS after its
/// upload, and the page says when.
async fn a_visited_session_still_ends_at_its_absolute_bound(db: TestDb) {
    let app = spawn_app(
        &db,
        &[
            ("SESSION_LIFETIME_SECS", "200"),
            ("SESSION_MAX_LIFETIME_SECS", "300"),
        ],
    )
    .await;
    app.upload("a.txt", "bounded\n").await;
    let deadline = (app.clock.clock().now() + chrono::Duration::seconds(300))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();

    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(100));
        let page = app.get_text("/action").await;
        assert!(page.contains("bounded"), "{page}");
        assert!(
            page.contains(&format!("deleted on {deadline} at the latest")),
            "{page}"
        );
    }
    // 250 s: a visit would give 200 s more, but the bound is 300 s after the upload.
    app.clock.advance(Duration::from_secs(50));
    let page = app.get_text("/action").await;
    assert!(
        page.contains(&format!("id=\"kept-until\">{deadline}")),
        "{page}"
    );
    app.clock.advance(Duration::from_secs(51));
    assert!(app
        .get_text("/action")
        .await
        .contains("You have not yet uploaded a file"));
    // The stored expiry never passed the bound either, so cleanup deletes it then.
    let (_, expires_at) = db.expiries().pop().expect("the row");
    let bound =
        chrono::NaiveDateTime::parse_from_str(&deadline, "%Y-%m-%d %H:%M UTC").expect("time");
    assert!(
        expires_at < bound + chrono::Duration::minutes(1),
        "{expires_at} vs {bound}"
    );
    app.stop().await;
}

/// Redis: the key's TTL never reaches past the bound, however often it is read.
async fn on_redis_the_ttl_is_capped_by_the_absolute_bound(db: TestDb) {
    let app = spawn_app(
        &db,
        &[
            ("SESSION_LIFETIME_SECS", "3"),
            ("SESSION_MAX_LIFETIME_SECS", "4"),
        ],
    )
    .await;
    app.upload("a.txt", "bounded\n").await;
    for _ in 0..3 {
        actix_web::rt::time::sleep(Duration::from_millis(1_200)).await;
        let page = app.get_text("/action").await;
        assert!(
            page.contains("bounded"),
            "read and extended while young: {page}"
        );
    }
    actix_web::rt::time::sleep(Duration::from_millis(1_000)).await;
    assert!(app
        .get_text("/action")
        .await
        .contains("You have not yet uploaded a file"));
    assert_eq!(db.row_count(), 0, "Redis expired the key itself");
    app.stop().await;
}

/// Worst cases of escaping: whatever the content, a file is stored in its own size plus a
/// small state.
async fn files_are_stored_compactly_whatever_they_hold(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let mib = 1 << 20;
    let mut normal: Vec<u8> =
        "The quick brown fox jumps over the lazy dog; \"quoted\", tab\there.\n"
            .repeat(mib / 32)
            .into_bytes();
    normal.truncate(mib);
    // Control characters as a text may hold them (1 in 200; past 1 in 100 it is taken for
    // binary).
    let control: Vec<u8> = (0..mib)
        .map(|i| match i % 200 {
            100 => 0x1b,
            199 => b'\n',
            _ => b'a',
        })
        .collect();
    for (case, data, at_most) in [
        ("newlines", vec![b'\n'; mib], 2.5),
        ("quotes", vec![b'"'; mib], 2.5),
        ("backslashes", vec![b'\\'; mib], 2.5),
        ("control characters", control, 2.5),
        ("ordinary text", normal, 1.2),
    ] {
        let client = cookie_client();
        let response = upload_with(&client, &app.address, "f.txt", data.clone()).await;
        assert_eq!(
            response.expect("upload").status(),
            StatusCode::SEE_OTHER,
            "{case}"
        );
        let sizes = db.stored_sizes();
        let (file, state) = *sizes.iter().max().expect("a stored session");
        let ratio = (file + state) as f64 / data.len() as f64;
        eprintln!(
            "{case}: {} bytes stored for {} ({ratio:.3}x)",
            file + state,
            data.len()
        );
        assert!(ratio <= at_most, "{case}: {ratio:.3}x");
        client
            .post(format!("{}/forget", app.address))
            .send()
            .await
            .expect("forget");
    }
    app.stop().await;
}

async fn control_and_bidirectional_characters_are_removed_from_names(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    app.upload("invoice\u{202E}txt.exe", "x\n").await;

    let page = app.get_text("/action").await;
    assert!(page.contains("<dd>invoicetxt.exe</dd>"), "{page}");
    assert!(!page.contains('\u{202E}'));
    app.stop().await;
}

async fn a_secure_cookie_is_host_prefixed_and_pages_send_hsts(db: TestDb) {
    let secure = spawn_app(&db, &[("COOKIE_SECURE", "true")]).await;
    let response = secure.upload("a.txt", "a\n").await;
    let cookie = session_cookie(&response).expect("cookie");
    assert_eq!(cookie.name(), "__Host-id");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    let hsts = secure.get("/").await;
    assert_eq!(
        hsts.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    secure.stop().await;

    let plain = spawn_app(&db, &[]).await;
    let cookie = session_cookie(&plain.upload("a.txt", "a\n").await).expect("cookie");
    assert_eq!(cookie.name(), "id");
    assert!(plain
        .get("/")
        .await
        .headers()
        .get("strict-transport-security")
        .is_none());
    plain.stop().await;
}

/// A million-line file is shown a page at a time, with links between pages.
async fn a_big_file_is_shown_in_pages(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let text: String = (1..=1_200).map(|n| format!("line {n}\n")).collect();
    app.upload("lines.txt", text).await;

    let first = app.get_text("/action").await;
    let last = app.get_text("/action?page=3").await;

    assert!(
        first.contains("Lines 1 to 500 of 1200, page 1 of 3."),
        "{first}"
    );
    assert!(first.contains(">line 500<") && !first.contains(">line 501<"));
    assert!(first.contains("href=\"/action?page=2\"") && !first.contains("rel=\"prev\""));
    assert!(last.contains(">line 1200<") && last.contains("href=\"/action?page=2\""));
    assert!(!last.contains("rel=\"next\""));
    // A page past the end (or 0) shows the last page and says so; a page that is no number is
    // the 400 page.
    for past in ["4", "0", "99999999999"] {
        let response = app.get(&format!("/action?page={past}")).await;
        assert_eq!(response.status(), StatusCode::OK, "page {past}");
        let page = response.text().await.expect("body");
        assert!(
            page.contains(&format!("There is no page {past}: the file has 3 pages."))
                && page.contains(">line 1200<"),
            "page {past}: {page:.600}"
        );
    }
    let response = app.get("/action?page=two").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("body").contains("Bad address"));
    // A query the page cannot parse gets the app's 400 page, not actix's plain text.
    let repeated = app.get("/action?page=2&page=3").await;
    assert_eq!(repeated.status(), StatusCode::BAD_REQUEST);
    crate::hardening::assert_security_headers("400", &repeated);
    let page = repeated.text().await.expect("body");
    assert!(
        page.contains("Bad address") && page.contains("<html"),
        "{page:.300}"
    );
    assert_eq!(
        app.get("/?forgotten=1&forgotten=2").await.status(),
        StatusCode::BAD_REQUEST
    );

    // A line longer than a page (70,000 bytes to escape, rendered off the request's thread) is
    // shown in pieces, the later one marked as continuing it.
    let long = format!("short\n{}\nafter\n", "<".repeat(70_000));
    app.upload("long.txt", long).await;
    let pages = [
        app.get_text("/action").await,
        app.get_text("/action?page=2").await,
        app.get_text("/action?page=3").await,
    ];
    let lines = pages
        .each_ref()
        .map(|page| crate::helpers::shown_lines(page));
    assert_eq!(lines[0], [(Some(1), "short".to_owned())]);
    assert_eq!(lines[1].len(), 1);
    assert_eq!(lines[1][0], (Some(2), "&lt;".repeat(64 * 1024)));
    assert_eq!(lines[2].len(), 2, "{}", pages[2]);
    assert_eq!(lines[2][0], (None, "&lt;".repeat(70_000 - 64 * 1024)));
    assert_eq!(lines[2][1], (Some(3), "after".to_owned()));
    assert_eq!(pages[1].matches("&lt;").count(), 64 * 1024);
    assert_eq!(pages[2].matches("&lt;").count(), 70_000 - 64 * 1024);
    app.stop().await;
}

page_tests!(
    every_upload_rotates_the_key_and_old_keys_show_nothing,
    posts_from_other_sites_get_403_and_same_origin_ones_pass,
    files_are_stored_compactly_whatever_they_hold,
    control_and_bidirectional_characters_are_removed_from_names,
    a_secure_cookie_is_host_prefixed_and_pages_send_hsts,
    a_big_file_is_shown_in_pages,
);

tests_on!(sqlite_clock: Sqlite; a_visited_session_still_ends_at_its_absolute_bound);
tests_on!(postgres_clock: Postgres; a_visited_session_still_ends_at_its_absolute_bound);
tests_on!(mysql_clock: Mysql; a_visited_session_still_ends_at_its_absolute_bound);
tests_on!(redis_time: Redis; on_redis_the_ttl_is_capped_by_the_absolute_bound);
tests_on!(cluster_time: RedisCluster; on_redis_the_ttl_is_capped_by_the_absolute_bound);
