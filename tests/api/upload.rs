//! The upload flow over a real socket: POST / → 303 → GET /action, and its mistakes.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;

use crate::helpers::{shown_lines, spawn_app, TestDb};

async fn an_upload_redirects_to_action_which_shows_its_lines(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    let response = app
        .upload("notes.txt", "first line\r\n  indented second\n")
        .await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/action");
    let page = app.get_text("/action").await;
    assert_eq!(
        shown_lines(&page),
        [
            (Some(1), "first line".to_owned()),
            (Some(2), "  indented second".to_owned())
        ],
        "{page}"
    );
    assert!(page.contains("notes.txt"));
    assert_eq!(db.row_count(), 1);
    app.stop().await;
}

async fn a_second_upload_replaces_the_first(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    app.upload("a.txt", "alpha\n").await;
    app.upload("b.txt", "beta\n").await;

    let page = app.get_text("/action").await;
    assert!(page.contains("beta") && !page.contains("alpha"), "{page}");
    assert_eq!(
        db.row_count(),
        2,
        "one current record, and the one it superseded for the grace period"
    );
    app.stop().await;
}

async fn html_in_the_file_is_shown_escaped(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    app.upload(
        "x.html",
        "<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n</pre>{{ 7*7 }}{% raw %}\n",
    )
    .await;

    // Highlighted as HTML: its tags are tokens, escaped.
    let page = app.get_text("/action").await;
    assert!(page.contains("<dd id=\"language\">HTML</dd>"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(!page.contains("</pre>{{"), "{page}");
    // Plain, every character as it was.
    let page = app.get_text("/action?lang=plain").await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;&#x2F;pre&gt;{{ 7*7 }}{% raw %}"),
        "{page}"
    );
    app.stop().await;
}

async fn visitors_who_only_read_create_no_row_and_get_no_cookie(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    for path in ["/", "/action", "/healthz", "/nope", "/static/style.css"] {
        let response = app.get(path).await;
        assert!(response.headers().get("set-cookie").is_none(), "{path}");
    }

    assert_eq!(db.row_count(), 0);
    assert!(app
        .get_text("/action")
        .await
        .contains("You have not yet uploaded a file"));
    app.stop().await;
}

async fn the_form_links_to_action_once_a_file_is_stored(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let before = app.get_text("/").await;
    assert!(before.contains("name=\"textfile\"") && before.contains("multipart/form-data"));
    assert!(!before.contains("your previous upload"));

    app.upload("a.txt", "alpha\n").await;

    assert!(app.get_text("/").await.contains("your previous upload"));
    app.stop().await;
}

/// Each mistake renders the form with its status and sentence, and the stored file survives.
async fn upload_mistakes_are_answered_on_the_form_and_keep_the_stored_file(db: TestDb) {
    let app = spawn_app(&db, &[("MAX_UPLOAD_BYTES", "1024")]).await;
    app.upload("keep.txt", "keep me\n").await;

    let too_large = app.upload("big.txt", vec![b'a'; 1025]).await;
    let at_limit_is_fine = vec![b'b'; 1024];
    let noise = app
        .upload(
            "noise.txt",
            (1u8..32).cycle().take(600).collect::<Vec<u8>>(),
        )
        .await;
    let binary = app.upload("bin.txt", b"abc\0def".to_vec()).await;
    let other_part = app.post_form(Form::new().text("other", "value")).await;
    let not_a_file = app.post_form(Form::new().text("textfile", "hello")).await;
    let nothing_chosen = app
        .post_form(Form::new().part("textfile", Part::bytes(Vec::new()).file_name("")))
        .await;

    for (response, status, sentence) in [
        (
            too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
            "accepts files up to 1 KiB",
        ),
        (noise, StatusCode::UNPROCESSABLE_ENTITY, "looks binary"),
        (binary, StatusCode::UNPROCESSABLE_ENTITY, "looks binary"),
        (
            other_part,
            StatusCode::BAD_REQUEST,
            "takes only its textfile part",
        ),
        (not_a_file, StatusCode::BAD_REQUEST, "must be a file"),
        (
            nothing_chosen,
            StatusCode::BAD_REQUEST,
            "Choose a text file",
        ),
    ] {
        assert_eq!(response.status(), status, "{sentence}");
        let page = response.text().await.expect("body");
        assert!(page.contains(sentence), "{status}: {page}");
        assert!(page.contains("<form"), "the form is shown again");
    }
    let page = app.get_text("/action").await;
    assert!(
        page.contains("keep me"),
        "the stored file is untouched: {page}"
    );

    let response = app.upload("exact.txt", at_limit_is_fine).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

page_tests!(
    an_upload_redirects_to_action_which_shows_its_lines,
    a_second_upload_replaces_the_first,
    html_in_the_file_is_shown_escaped,
    visitors_who_only_read_create_no_row_and_get_no_cookie,
    the_form_links_to_action_once_a_file_is_stored,
    upload_mistakes_are_answered_on_the_form_and_keep_the_stored_file,
);

async fn health_and_unknown_pages_answer_without_a_database_write(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let missing = app.get("/no/such/page").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing
        .text()
        .await
        .expect("body")
        .contains("Page not found"));
    app.stop().await;
}

async fn a_body_that_is_not_multipart_is_a_400_with_the_form(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    let response = app
        .client
        .post(format!("{}/", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("textfile=hello")
        .send()
        .await
        .expect("POST");

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("multipart/form-data"));
    app.stop().await;
}

async fn several_textfile_parts_are_refused(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let part = |text: &str| Part::bytes(text.as_bytes().to_vec()).file_name("a.txt");

    let response = app
        .post_form(
            Form::new()
                .part("textfile", part("one"))
                .part("textfile", part("two")),
        )
        .await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("one file at a time"));
    assert_eq!(db.row_count(), 0);
    app.stop().await;
}

async fn an_empty_file_is_stored_and_shown_as_empty(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    let response = app.upload("empty.txt", Vec::new()).await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = app.get_text("/action").await;
    assert!(
        page.contains("empty.txt") && page.contains("The file is empty."),
        "{page}"
    );
    app.stop().await;
}

/// A file name sent in a legacy encoding (a Latin-1 `é`, as some clients send it) is read as
/// windows-1252, not refused as a malformed upload.
async fn a_latin_1_file_name_is_taken_as_it_was_meant(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"textfile\"; \
                     filename=\"caf\xe9 cr\xe8me.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        .to_vec();
    body.extend_from_slice(b"the file's own text\n");
    body.extend_from_slice(crate::helpers::MULTIPART_TAIL.as_bytes());

    let response = app
        .client
        .post(format!("{}/", app.address))
        .header("content-type", crate::helpers::MULTIPART)
        .body(body)
        .send()
        .await
        .expect("POST");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = app.get_text("/action").await;
    assert!(page.contains("café crème.txt"), "{page:.600}");
    assert!(page.contains("the file&#x27;s own text"), "{page:.1200}");
    app.stop().await;
}

tests_on!(sqlite_only: Sqlite;
    a_latin_1_file_name_is_taken_as_it_was_meant,
    health_and_unknown_pages_answer_without_a_database_write,
    a_body_that_is_not_multipart_is_a_400_with_the_form,
    several_textfile_parts_are_refused,
    an_empty_file_is_stored_and_shown_as_empty,
);
