//! Bad input from the whole internet: malformed uploads, forged cookies, absurd requests, many
//! clients at once. Each case gets a 4xx (never a 500), the stored file survives, and the server
//! keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::StatusCode;
use textdrop::startup::SESSION_COOKIE;

use crate::helpers::{
    cookie_client, multipart_head, page_at, session_cookie, session_cookie_pair, spawn_app,
    trickled_body, upload_with, ServerProcess, TestApp, TestDb, MULTIPART, MULTIPART_TAIL,
};

/// POSTs a hand-made body with a given content type.
async fn post_raw(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(format!("{}/", app.address))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .expect("POST")
}

/// Sends raw bytes over a fresh connection and returns what comes back before the server
/// closes or `patience` passes.
async fn raw_exchange(port: u16, request: Vec<u8>, patience: Duration) -> String {
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(patience)).expect("timeout");
        let _ = stream.write_all(&request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("raw exchange")
}

async fn malformed_multipart_bodies_are_400s_that_keep_the_stored_file(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("keep.txt", "keep me\n").await;
    let part_head = multipart_head("a.txt");

    let cases: Vec<(&str, String, String)> = vec![
        (
            "truncated body",
            MULTIPART.into(),
            format!("{part_head}half a fi"),
        ),
        (
            "missing boundary",
            "multipart/form-data".into(),
            format!("{part_head}x{MULTIPART_TAIL}"),
        ),
        (
            "bogus boundary",
            "multipart/form-data; boundary=NotInTheBody".into(),
            format!("{part_head}x{MULTIPART_TAIL}"),
        ),
        ("garbage", MULTIPART.into(), "\u{0}\u{1}garbage".into()),
        (
            "no content disposition",
            MULTIPART.into(),
            "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n".into(),
        ),
        (
            "json",
            "application/json".into(),
            "{\"textfile\": \"x\"}".into(),
        ),
        ("no content type", String::new(), "textfile=x".into()),
    ];
    for (case, content_type, body) in cases {
        let response = if content_type.is_empty() {
            app.client
                .post(format!("{}/", app.address))
                .body(body)
                .send()
                .await
                .expect("POST")
        } else {
            post_raw(&app, &content_type, body).await
        };

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let page = response.text().await.expect("body");
        assert!(page.contains("class=\"error\""), "{case}: {page}");
    }

    assert!(app.get_text("/action").await.contains("keep me"));
    app.stop().await;
}

async fn bom_and_crlf_are_handled_like_a_text_editor(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    app.upload("win.txt", b"\xEF\xBB\xBFfirst\r\nsecond\r\n".to_vec())
        .await;

    let page = app.get_text("/action").await;
    assert_eq!(
        crate::helpers::shown_lines(&page),
        [
            (Some(1), "first".to_owned()),
            (Some(2), "second".to_owned())
        ],
        "{page}"
    );
    assert!(!page.contains('\u{feff}') && !page.contains('\r'));
    app.stop().await;
}

async fn forged_or_broken_cookies_get_a_fresh_session_never_a_500(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let first = app.upload("a.txt", "mine\n").await;
    let real_value = session_cookie(&first).expect("cookie").value().to_owned();
    let id = SESSION_COOKIE;
    let forged = "A".repeat(120);
    let garbage = "x".repeat(4096);

    for (case, cookie) in [
        ("forged", format!("{id}={forged}")),
        (
            "truncated",
            format!("{id}={}", &real_value[..real_value.len() / 2]),
        ),
        ("4 KB of garbage", format!("{id}={garbage}")),
        ("not base64", format!("{id}=%%%%;;==")),
        (
            "several session cookies",
            format!("{id}={forged}; {id}=other; {id}={garbage}"),
        ),
        ("empty", format!("{id}=")),
    ] {
        let response = reqwest::Client::new()
            .get(format!("{}/action", app.address))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("GET");

        assert_eq!(response.status(), StatusCode::OK, "{case}");
        let page = response.text().await.expect("body");
        assert!(page.contains("You have not yet uploaded a file"), "{case}");
    }
    // The owner of the real cookie still sees their file.
    assert!(app.get_text("/action").await.contains("mine"));
    app.stop().await;
}

async fn a_cookie_for_an_unknown_session_is_never_adopted(db: TestDb) {
    let app = spawn_app(&db, &[("SESSION_LIFETIME_SECS", "60")]).await;
    let first = session_cookie_pair(&app.upload("a.txt", "one\n").await).expect("cookie");
    app.clock.advance(Duration::from_secs(61));

    let second = session_cookie_pair(&app.upload("b.txt", "two\n").await).expect("cookie");

    assert_ne!(
        first, second,
        "an expired key gets a new one on the next write"
    );
    assert_eq!(
        db.row_count(),
        2,
        "the old row waits for cleanup; a new row holds the new file"
    );
    app.stop().await;
}

/// The headers every response must carry.
pub fn assert_security_headers(page: &str, response: &reqwest::Response) {
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'none'"),
        "{page}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{page}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{page}");
    assert_eq!(headers["referrer-policy"], "same-origin", "{page}");
    assert_eq!(headers["x-frame-options"], "DENY", "{page}");
}

async fn every_page_carries_the_security_headers_and_action_is_not_cached(db: TestDb) {
    let app = spawn_app(&db, &[("MAX_UPLOAD_BYTES", "10")]).await;
    let too_large = app.upload("a.txt", "01234567890\n").await;
    let not_found = app.get("/missing").await;
    let form = app.get("/").await;
    let action = app.get("/action").await;

    for (page, response) in [
        ("/", &form),
        ("/action", &action),
        ("413", &too_large),
        ("404", &not_found),
    ] {
        assert_security_headers(page, response);
    }
    assert_eq!(action.headers()["cache-control"], "no-store");
    assert!(action.text().await.expect("body").contains("stylesheet"));
    app.stop().await;
}

async fn absurd_requests_meet_limits_and_the_server_keeps_serving(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let port = app.port;

    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let answer = raw_exchange(port, huge_header.into_bytes(), Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "huge header: {answer:.80}"
    );

    let negative = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n";
    let answer = raw_exchange(port, negative.into(), Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "negative length: {answer:.80}"
    );

    // Slowloris: headers that never finish. The server hangs up after its request timeout,
    // and serves everyone else meanwhile.
    let started = Instant::now();
    let slow = actix_web::rt::spawn(raw_exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
        Duration::from_secs(30),
    ));
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let answer = slow.await.expect("slow client");
    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(10),
        "the trickle was cut after {held:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:.80}"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.stop().await;
}

/// Reading stops at the limit: a 1 GiB upload costs the server process a few MiB at most.
async fn a_1_gib_upload_is_refused_with_413_in_bounded_server_memory(db: TestDb) {
    let server = ServerProcess::start(&db, &[]);
    let client = cookie_client();
    upload_with(&client, &server.address(), "keep.txt", "keep me\n")
        .await
        .expect("upload");
    let port = server.port;
    let before = server.peak_rss_kib();

    let answer = actix_web::rt::task::spawn_blocking(move || {
        let total: usize = 1 << 30;
        let head = multipart_head("big.txt");
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n\
             Content-Length: {}\r\n\r\n{head}",
            head.len() + total + MULTIPART_TAIL.len()
        );
        stream.write_all(request.as_bytes()).expect("send head");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..(total / chunk.len()) {
            if stream.write_all(&chunk).is_err() {
                break; // the server may hang up once it has answered
            }
        }
        let mut answer = vec![0; 64];
        let n = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .expect("upload");

    let grown_kib = server.peak_rss_kib().saturating_sub(before);
    eprintln!("1 GiB upload: the server's peak resident memory grew by {grown_kib} KiB");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(grown_kib < 16 * 1024, "grew by {grown_kib} KiB");
    let page = page_at(&client, &format!("{}/action", server.address())).await;
    assert!(page.contains("keep me"));
}

async fn many_clients_at_once_each_see_only_their_own_file(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let clients = 200;

    let outcomes = join_all((0..clients).map(|n| {
        let address = app.address.clone();
        async move {
            let client = cookie_client();
            let body = format!("client {n} line one\nclient {n} line two\n");
            let upload = upload_with(&client, &address, &format!("{n}.txt"), body).await;
            let status = upload.map(|r| r.status()).map_err(|e| e.to_string())?;
            if status != StatusCode::SEE_OTHER {
                return Err(format!("client {n}: upload answered {status}"));
            }
            let page = client
                .get(format!("{address}/action"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let mine = page.contains(&format!(">client {n} line two<"));
            let others = page.matches("client ").count();
            if !mine || others != 2 {
                return Err(format!("client {n} saw the wrong file"));
            }
            Ok(())
        }
    }))
    .await;

    let errors: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(db.row_count(), clients);
    app.stop().await;
}

async fn two_tabs_uploading_at_once_leave_one_whole_file(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("start.txt", "start\n").await;
    // 400 lines: one page of /action.
    let file = |letter: &str| format!("{letter}\n").repeat(400);

    let (a, b) = futures_util::join!(
        app.upload("a.txt", file("A")),
        app.upload("b.txt", file("B"))
    );

    // One rotates the start session; the other, another file sent with the key it superseded,
    // is refused with 409 (or, when one ran after the other, rotates the first one's result).
    let statuses = [a.status(), b.status()];
    assert!(statuses.contains(&StatusCode::SEE_OTHER), "{statuses:?}");
    for (status, response) in [(statuses[0], a), (statuses[1], b)] {
        if status != StatusCode::SEE_OTHER {
            assert_eq!(status, StatusCode::CONFLICT);
            let page = response.text().await.expect("body");
            assert!(page.contains("A newer upload replaced"), "{page:.400}");
            assert!(page.contains("was not stored"), "{page:.400}");
        }
    }
    let page = app.get_text("/action").await;
    let a_lines = page.matches(">A<").count();
    let b_lines = page.matches(">B<").count();
    assert!(
        (a_lines, b_lines) == (400, 0) || (a_lines, b_lines) == (0, 400),
        "a mix: {a_lines} A lines and {b_lines} B lines"
    );
    // One chain: the current record and the one it superseded; forget removes both.
    assert_eq!(db.row_count(), 2);
    app.client
        .post(format!("{}/forget", app.address))
        .send()
        .await
        .expect("forget");
    assert_eq!(db.row_count(), 0, "forget removed the whole chain");
    app.stop().await;
}

/// Cleanup (or expiry) removes the row while an upload is still arriving: the upload completes
/// under a new key, and the deleted session's row is not written again.
async fn a_session_deleted_mid_request_is_not_resurrected(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let first = session_cookie_pair(&app.upload("a.txt", "old data\n").await).expect("cookie");
    let (old_id, _) = db.expiries().pop().expect("row");
    let slow_body = trickled_body("b.txt", &["new data\n"], Duration::from_millis(300));
    let upload = app
        .client
        .post(format!("{}/", app.address))
        .header(CONTENT_TYPE, MULTIPART)
        .body(slow_body)
        .send();

    let (response, ()) = futures_util::join!(upload, async {
        actix_web::rt::time::sleep(Duration::from_millis(400)).await;
        db.connect()
            .execute(&format!("DELETE FROM sessions WHERE id = '{old_id}'"))
            .expect("delete mid-request");
    });

    let response = response.expect("upload completes");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let second = session_cookie_pair(&response).expect("a new cookie");
    assert_ne!(first, second, "a new key was issued");
    let ids: Vec<String> = db.expiries().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], old_id, "the deleted row stays deleted");
    let page = app.get_text("/action").await;
    assert!(
        page.contains("new data") && !page.contains("old data"),
        "{page}"
    );
    app.stop().await;
}

/// The store answers but a statement fails (here: a column renamed under the app's feet): not
/// the "try again" 503 of an outage but an opaque 500 page, with the same security headers as
/// every other page, and the cause only in the log.
async fn a_failing_store_statement_gets_a_500_page_not_a_503(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("a.txt", "fine\n").await;
    db.connect()
        .execute("ALTER TABLE sessions RENAME COLUMN state TO state_moved")
        .expect("break the table");

    let response = app.get("/action").await;

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers("500", &response);
    let page = response.text().await.expect("body");
    assert!(page.contains("Something went wrong"), "{page}");
    assert!(!page.contains("state"), "no error text on the page: {page}");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.stop().await;
}

/// A row whose state no longer parses counts as an empty session (actix-session's rule), not
/// an error: the visitor can upload again and the row is replaced.
async fn a_session_that_no_longer_parses_is_an_empty_one(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("a.txt", "fine\n").await;
    db.connect()
        .execute("UPDATE sessions SET state = 'not json'")
        .expect("corrupt the row");

    let page = app.get_text("/action").await;
    assert!(page.contains("You have not yet uploaded a file"), "{page}");
    assert_eq!(
        app.upload("b.txt", "again\n").await.status(),
        StatusCode::SEE_OTHER
    );

    assert!(app.get_text("/action").await.contains("again"));
    assert_eq!(
        db.row_count(),
        2,
        "the new record and the unparsable one, superseded for the grace period"
    );
    app.stop().await;
}

sql_tests!(
    a_failing_store_statement_gets_a_500_page_not_a_503,
    a_session_that_no_longer_parses_is_an_empty_one,
    a_session_deleted_mid_request_is_not_resurrected,
    many_clients_at_once_each_see_only_their_own_file,
    two_tabs_uploading_at_once_leave_one_whole_file,
);

tests_on!(sqlite_only: Sqlite;
    malformed_multipart_bodies_are_400s_that_keep_the_stored_file,
    bom_and_crlf_are_handled_like_a_text_editor,
    forged_or_broken_cookies_get_a_fresh_session_never_a_500,
    a_cookie_for_an_unknown_session_is_never_adopted,
    every_page_carries_the_security_headers_and_action_is_not_cached,
    absurd_requests_meet_limits_and_the_server_keeps_serving,
    a_1_gib_upload_is_refused_with_413_in_bounded_server_memory,
);
