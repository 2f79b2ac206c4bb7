//! The file page as a text viewer, over HTTP: numbered lines a link can point at, the raw file
//! and its download, search, files in other encodings, the wrap switch.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;

use crate::helpers::{shown_lines, spawn_app, TestApp, TestDb};

/// `count` lines "line N", N from 1.
fn numbered(count: usize) -> String {
    (1..=count).map(|n| format!("line {n}\n")).collect()
}

/// A shown line's HTML without its tags (the highlighter's spans): its text, escaped.
fn untagged(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = rest[open..].split_once('>').map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    text
}

/// The numbers of the lines a page highlights (`class="line hl"`).
fn highlighted(page: &str) -> Vec<usize> {
    page.split("<span class=\"line hl\" id=\"L")
        .skip(1)
        .filter_map(|rest| rest.split_once('"')?.0.parse().ok())
        .collect()
}

async fn a_line_number_links_to_the_page_that_holds_the_line(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("long.txt", numbered(1_200)).await;

    let first = app.get_text("/action").await;
    let lines = shown_lines(&first);
    assert_eq!(lines.len(), 500);
    assert_eq!(lines[0], (Some(1), "line 1".to_owned()));
    assert!(
        first.contains(
            "<span class=\"line\" id=\"L7\"><a class=\"n\" data-n=\"7\" aria-label=\"Line 7\" \
             href=\"/action?line=7#L7\"></a>line 7</span>"
        ),
        "each line has its id and a link to itself, its number outside the text"
    );

    let page = app.get_text("/action?line=700").await;
    assert!(page.contains("page 2 of 3"), "{page}");
    assert!(page.contains("id=\"L700\""));
    assert!(highlighted(&page).contains(&700));

    let range = app.get_text("/action?lines=1001-1003").await;
    assert!(range.contains("page 3 of 3"));
    assert_eq!(highlighted(&range), [1001, 1002, 1003]);
    let reversed = app.get_text("/action?lines=1003-1001").await;
    assert_eq!(highlighted(&reversed), [1001, 1002, 1003]);

    for past in [
        "/action?line=5000",
        "/action?lines=1300-1400",
        "/action?line=0",
    ] {
        let response = app.get(past).await;
        assert_eq!(response.status(), StatusCode::OK, "{past}");
        let page = response.text().await.expect("page");
        assert!(page.contains("page 3 of 3"), "{past}: the last page");
        assert!(
            page.contains("the file has 1200 lines. This is its last page."),
            "{past}: {page}"
        );
        assert!(highlighted(&page).is_empty());
    }
    for bad in ["/action?line=seven", "/action?lines=1-x", "/action?wrap=2"] {
        let response = app.get(bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.text().await.expect("page").contains("Bad address"));
    }
    app.stop().await;
}

/// `?lines=3-5,10-12,40` highlights each range and lands on the first; while a selection is
/// shown, a line number's link ends its open range there or starts another; the page links
/// keep the selection; more than 16 ranges is a bad address.
async fn several_ranges_are_highlighted_and_two_clicks_make_one(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("long.txt", numbered(1_200)).await;

    let page = app.get_text("/action?lines=3-5,10-12,40").await;
    assert_eq!(highlighted(&page), [3, 4, 5, 10, 11, 12, 40]);
    assert!(page.contains("page 1 of 3"));
    assert!(
        page.contains("Selected: lines 3–5, 10–12 and 40."),
        "{page}"
    );
    assert!(
        page.contains("href=\"/action?lines=3-5,10-12,40-7#L7\""),
        "the open range ends where the next click is"
    );
    assert!(page.contains("href=\"/action\">Clear the selection</a>"));

    // Two clicks: a line, then another, make a range; a third starts another range.
    let one = app.get_text("/action?line=10").await;
    assert!(
        one.contains("href=\"/action?lines=10-14#L14\""),
        "{one:.3000}"
    );
    let range = app.get_text("/action?lines=10-14").await;
    assert_eq!(highlighted(&range), [10, 11, 12, 13, 14]);
    assert!(range.contains("href=\"/action?lines=10-14,20#L20\""));
    let two = app.get_text("/action?lines=10-14,20").await;
    assert_eq!(highlighted(&two), [10, 11, 12, 13, 14, 20]);

    // Ranges on several pages: the page of the first, and the page links keep the selection.
    let across = app.get_text("/action?lines=700-702,3").await;
    assert!(across.contains("page 2 of 3"));
    assert_eq!(highlighted(&across), [700, 701, 702]);
    assert!(across.contains("href=\"/action?lines=700-702,3&amp;page=1\">Previous page"));
    let first = app.get_text("/action?lines=700-702,3&page=1").await;
    assert!(first.contains("page 1 of 3"));
    assert_eq!(highlighted(&first), [3]);

    let most = vec!["1"; 16].join(",");
    assert_eq!(
        app.get(&format!("/action?lines={most}")).await.status(),
        StatusCode::OK
    );
    for bad in [
        format!("/action?lines={most},2"),
        "/action?lines=3-5,x".into(),
    ] {
        let response = app.get(&bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let text = response.text().await.expect("page");
        assert!(text.contains("Bad address"), "{bad}");
        assert!(
            text.contains("at most 16 ranges") || text.contains("ranges such as 3-5,10-12,40"),
            "{bad}: {text}"
        );
    }
    app.stop().await;
}

/// A Markdown file is shown rendered: headings with anchors, lists, code blocks; raw HTML only
/// as text, images as links, links `nofollow`. "Show the source" gives the numbered lines,
/// which a link to a line, a page or a search shows by default. One too long to render is
/// shown as source, with a sentence saying why.
async fn markdown_is_rendered_and_its_source_is_a_click_away(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let document = "# Read me\n\n- first\n- second\n\n```sh\necho hi\n```\n\n\
                    <script>alert(1)</script>\n\nText <img src=x onerror=alert(2)> here.\n\n\
                    ![a cat](https://example.com/cat.png) [site](https://example.com)\n";
    app.upload("README.md", document).await;
    let page = app.get_text("/action").await;
    assert!(
        page.contains("<div class=\"markdown\" id=\"rendered\">"),
        "{page}"
    );
    assert!(
        page.contains("<h1 id=\"md-read-me\">Read me <a class=\"anchor\" href=\"#md-read-me\""),
        "{page}"
    );
    assert!(page.contains("<li>first</li>") && page.contains("<pre><code>echo hi\n</code></pre>"));
    assert!(
        !page.contains("<script>alert") && !page.contains("<img"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "as text: {page}"
    );
    assert!(page.contains("onerror=alert(2)&gt;"), "as text: {page}");
    assert!(page.contains(
        "<a href=\"https://example.com/cat.png\" rel=\"nofollow noopener noreferrer\">image: a cat</a>"
    ));
    assert!(page.contains("href=\"/action?view=source\" id=\"view-switch\">Show the source"));
    assert!(!page.contains("id=\"wrap-switch\""), "nothing to wrap");

    let source = app.get_text("/action?view=source").await;
    let (number, first) = shown_lines(&source).swap_remove(0);
    assert_eq!(
        (number, untagged(&first)),
        (Some(1), "# Read me".to_owned())
    );
    assert!(source.contains("href=\"/action\" id=\"view-switch\">Show it rendered"));
    assert!(
        source.contains("<input type=\"hidden\" name=\"view\" value=\"source\">"),
        "the language form keeps to the source"
    );
    let line = app.get_text("/action?line=3").await;
    assert_eq!(highlighted(&line), [3]);
    assert!(!line.contains("id=\"rendered\""));

    let response = app.get("/action?view=pretty").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("view takes rendered or source"));

    // Past the highlighting budget (64 KiB), the source offers to highlight it, as source.
    let mid = "Some *text* here.\n".repeat(4 * 1024); // 72 KiB
    app.upload("mid.md", mid).await;
    let source = app.get_text("/action?view=source").await;
    assert!(
        source.contains(
            "<a href=\"/action?view=source&amp;lang=Markdown\">Highlight it as Markdown anyway</a>"
        ),
        "{source:.3000}"
    );
    let tried = app.get_text("/action?view=source&lang=Markdown").await;
    assert!(
        tried.contains("<dd id=\"language\">Markdown</dd>") && !tried.contains("id=\"rendered\"")
    );

    let long = "Some *text* here.\n".repeat(16 * 1024); // 288 KiB
    app.upload("long.markdown", long).await;
    let page = app.get_text("/action").await;
    assert!(
        page.contains(
            "This Markdown file is longer than 256 KiB, so it is shown as numbered source."
        ),
        "{page:.2000}"
    );
    assert_eq!(
        shown_lines(&page)[0],
        (Some(1), "Some *text* here.".to_owned())
    );
    assert!(page.contains("page 1 of"));
    app.stop().await;
}

/// Uploads `data` under `name` as the browser would send it (the name as a UTF-8 filename).
async fn upload_named(app: &TestApp, name: &str, data: &[u8]) {
    let part = Part::bytes(data.to_vec())
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .expect("mime");
    let response = app.post_form(Form::new().part("textfile", part)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
}

async fn the_raw_file_comes_back_as_text_and_as_a_download(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let missing = app.get("/action/raw").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing
        .text()
        .await
        .expect("page")
        .contains("Page not found"));

    let text = "<script>alert(1)</script>\r\nsecond line\n";
    upload_named(&app, "naïve \"quoted\"; name.txt", text.as_bytes()).await;

    let raw = app.get("/action/raw").await;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    assert!(raw.headers().get("content-disposition").is_none());
    assert_eq!(raw.text().await.expect("body"), text);

    let download = app.get("/action/raw?download=1").await;
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(
        disposition,
        "attachment; filename=\"na_ve _quoted__ name.txt\"; \
         filename*=UTF-8''na%C3%AFve%20%22quoted%22%3B%20name.txt"
    );
    assert_eq!(download.text().await.expect("body"), text);

    let bad = app.get("/action/raw?download=yes").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let page = app.get_text("/action").await;
    assert!(page.contains("href=\"/action/raw\"") && page.contains("/action/raw?download=1"));
    app.stop().await;
}

/// A name with a control character and a header's worth of text comes back as one harmless
/// parameter (names lose control characters at upload; CR and LF cannot reach a name through
/// a multipart header, and the unit tests feed them to the header's builder directly).
async fn a_download_name_never_breaks_its_header(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"textfile\"; \
                filename=\"evil\tSet-Cookie: x=1.txt\"\r\n\
                Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";
    let response = app
        .client
        .post(format!("{}/", app.address))
        .header("content-type", crate::helpers::MULTIPART)
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let download = app.get("/action/raw?download=1").await;
    assert!(
        download
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|cookie| cookie.as_bytes().starts_with(b"id=")),
        "only the session's own cookie"
    );
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .expect("ASCII");
    assert!(!disposition.contains(['\r', '\n']), "{disposition}");
    assert!(
        disposition.starts_with("attachment; filename=\"evilSet-Cookie: x=1.txt\";"),
        "{disposition}"
    );
    app.stop().await;
}

async fn search_lists_the_matching_lines_a_page_at_a_time(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    // 1,200 lines, every other one with the word: 600 matches, two pages of results.
    let text: String = (1..=1_200)
        .map(|n| {
            if n % 2 == 0 {
                format!("{n}: a Needle <here>\n")
            } else {
                format!("{n}: hay\n")
            }
        })
        .collect();
    app.upload("hay.txt", text).await;

    let first = app.get_text("/action?q=needle").await;
    assert!(first.contains("600 lines match “needle”"), "{first}");
    assert!(first.contains("page 1 of 2"));
    let lines = shown_lines(&first);
    assert_eq!(lines.len(), 500);
    assert_eq!(
        lines[0],
        (Some(2), "2: a <mark>Needle</mark> &lt;here&gt;".to_owned())
    );
    assert!(first.contains("href=\"/action?line=2#L2\""));
    let second = app.get_text("/action?q=needle&page=2").await;
    let lines = shown_lines(&second);
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[99].0, Some(1_200));
    let past = app.get_text("/action?q=needle&page=3").await;
    assert!(
        past.contains("There is no page 3: the file has 2 pages.")
            && shown_lines(&past).len() == 100,
        "{past:.600}"
    );

    let exact = app.get_text("/action?q=needle&case=1").await;
    assert!(exact.contains("0 lines match"), "{exact}");
    let exact = app.get_text("/action?q=Needle&case=1").await;
    assert!(exact.contains("600 lines match"));
    let literal = app.get_text("/action?q=%3Chere%3E").await;
    assert!(
        literal.contains("600 lines match"),
        "the query is text, not HTML or a pattern"
    );

    let whole = app.get_text("/action?q=").await;
    assert!(whole.contains("page 1 of 3") && !whole.contains("lines match"));

    let long = format!("/action?q={}", "x".repeat(201));
    let response = app.get(&long).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("Search for at most 200 characters"));
    let at_limit = format!("/action?q={}", "x".repeat(200));
    assert_eq!(app.get(&at_limit).await.status(), StatusCode::OK);
    app.stop().await;
}

async fn files_in_other_encodings_are_shown_converted(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    // windows-1252: curly quotes, the euro sign, accented letters; CRLF line endings.
    let latin = b"Caf\xE9 cr\xE8me \x93quoted\x94 \x80 5\r\nna\xEFve fa\xE7ade d\xE9j\xE0 vu\r\n";
    app.upload("latin.txt", latin.to_vec()).await;
    let page = app.get_text("/action").await;
    assert!(
        page.contains("(converted from windows-1252 to UTF-8)"),
        "{page}"
    );
    assert!(page.contains("CRLF line endings"));
    assert_eq!(
        shown_lines(&page),
        [
            (Some(1), "Café crème “quoted” € 5".to_owned()),
            (Some(2), "naïve façade déjà vu".to_owned())
        ]
    );
    assert_eq!(
        app.get_text("/action/raw").await,
        "Café crème “quoted” € 5\r\nnaïve façade déjà vu\r\n",
        "stored as UTF-8"
    );

    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "Привет, мир\nno newline at the end".encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    app.upload("utf16.txt", utf16).await;
    let page = app.get_text("/action").await;
    assert!(page.contains("(converted from UTF-16LE to UTF-8)"));
    assert!(page.contains("LF line endings") && page.contains("no newline at the end</span>"));
    assert_eq!(shown_lines(&page)[0], (Some(1), "Привет, мир".to_owned()));

    app.upload("plain.txt", "already UTF-8\n").await;
    let page = app.get_text("/action").await;
    assert!(!page.contains("converted from"));

    let binary = app
        .upload("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec())
        .await;
    assert_eq!(binary.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(binary.text().await.expect("page").contains("looks binary"));
    app.stop().await;
}

async fn the_wrap_switch_keeps_to_every_link(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("long.txt", numbered(600)).await;
    let wrapped = app.get_text("/action").await;
    assert!(wrapped.contains("<pre class=\"file\">"));
    assert!(wrapped.contains("href=\"/action?wrap=0\" id=\"wrap-switch\">Don't wrap lines"));

    let unwrapped = app.get_text("/action?wrap=0&page=2").await;
    assert!(unwrapped.contains("<pre class=\"file nowrap\" tabindex=\"0\">"));
    assert!(unwrapped.contains("href=\"/action?line=501&amp;wrap=0#L501\""));
    assert!(unwrapped.contains("href=\"/action?wrap=0\">Previous page"));
    assert!(unwrapped.contains("href=\"/action?page=2\" id=\"wrap-switch\">Wrap lines"));
    assert!(unwrapped.contains("<input type=\"hidden\" name=\"wrap\" value=\"0\">"));
    app.stop().await;
}

/// A UTF-8 file with a stray byte, or cut in the middle of a character, stays UTF-8 with the
/// bad bytes shown as U+FFFD and counted on the page; a log with colour codes is text, its
/// escape sequences removed and counted.
async fn mostly_utf8_files_and_colour_logs_are_shown_as_text(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    // Cut in the middle of the last "а" (two bytes), as `head -c` does.
    let text = "Привет, мир! Как дела\n".repeat(30);
    let cut = text.as_bytes()[..text.len() - 2].to_vec();
    assert_eq!(
        app.upload("cut.txt", cut).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.get_text("/action").await;
    assert!(!page.contains("converted from"), "{page:.1200}");
    assert!(
        page.contains("1 byte that was not UTF-8 shown as �"),
        "{page:.1200}"
    );
    assert_eq!(
        shown_lines(&page)[0],
        (Some(1), "Привет, мир! Как дела".to_owned())
    );

    let log = "\x1b[32m ok \x1b[0m step one\n\x1b[1;31mFAILED\x1b[0m step two\n".repeat(50);
    assert_eq!(
        app.upload("ci.log", log).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.get_text("/action").await;
    assert!(
        page.contains("200 terminal escape sequences (colours, cursor moves) removed"),
        "{page:.1200}"
    );
    assert_eq!(
        shown_lines(&page)[1],
        (Some(2), "FAILED step two".to_owned())
    );
    app.stop().await;
}

/// A file whose lines end in a lone carriage return (classic Mac OS) is shown a line per line,
/// numbered, searchable and linkable, and comes back raw as it was.
async fn old_mac_files_split_at_their_carriage_returns(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("old.txt", "first\rsecond\rthird\r").await;
    let page = app.get_text("/action").await;
    assert!(page.contains("CR (classic Mac) line endings"), "{page}");
    assert!(page.contains("<dt>Lines</dt><dd>3,"), "{page}");
    assert_eq!(
        shown_lines(&page),
        [
            (Some(1), "first".to_owned()),
            (Some(2), "second".to_owned()),
            (Some(3), "third".to_owned())
        ]
    );
    assert_eq!(highlighted(&app.get_text("/action?line=2").await), [2]);
    let found = app.get_text("/action?q=third").await;
    assert!(found.contains("1 line match"), "{found}");
    assert!(found.contains("href=\"/action?line=3#L3\""), "{found}");
    assert_eq!(
        app.get_text("/action/raw").await,
        "first\rsecond\rthird\r",
        "kept as uploaded"
    );
    app.stop().await;
}

tests_on!(sqlite_only: Sqlite;
    markdown_is_rendered_and_its_source_is_a_click_away,
    several_ranges_are_highlighted_and_two_clicks_make_one,
    old_mac_files_split_at_their_carriage_returns,
    mostly_utf8_files_and_colour_logs_are_shown_as_text,
    a_line_number_links_to_the_page_that_holds_the_line,
    a_download_name_never_breaks_its_header,
    search_lists_the_matching_lines_a_page_at_a_time,
    files_in_other_encodings_are_shown_converted,
    the_wrap_switch_keeps_to_every_link,
);
page_tests!(the_raw_file_comes_back_as_text_and_as_a_download);
