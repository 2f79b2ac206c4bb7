//! The file page's viewer in the browser: a line link lands on its line and highlights it, a
//! range is highlighted, copying the text copies no numbers, the raw file opens, search pages
//! through its matches, files in windows-1252 and UTF-16 read right, and wrapping switches.

use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use super::{browser, click_and_wait, save_screenshot, text_of, upload_through_the_form, wait_for};
use crate::helpers::{spawn_app, TestApp, TestDb};

/// Runs `script` (a function body) in the page; its result.
async fn run(client: &Client, script: &str) -> Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Writes `bytes` to a file the file input can choose; its path.
fn file_of(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write file");
    path.display().to_string()
}

async fn goto(client: &Client, app: &TestApp, path: &str) {
    client
        .goto(&format!("{}{path}", app.address))
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
}

async fn a_line_link_lands_highlights_and_copies_no_numbers(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");
    let text: String = (1..=1_200)
        .map(|n| format!("row {n:04}\tafter a tab\n"))
        .collect();
    upload_through_the_form(
        client,
        &app,
        &file_of(files.path(), "rows.txt", text.as_bytes()),
    )
    .await;

    // Copying the shown lines copies the file's text, without a number.
    let copied = run(
        client,
        "const pre = document.querySelector('pre.file');
         const range = document.createRange(); range.selectNodeContents(pre);
         const selection = getSelection(); selection.removeAllRanges(); selection.addRange(range);
         return selection.toString();",
    )
    .await;
    let first_page: String = text.lines().take(500).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        copied.as_str().map(str::trim_end),
        Some(first_page.trim_end())
    );
    // One line per row: the line boxes are not doubled by the markup.
    let spacing = run(
        client,
        "const a = document.getElementById('L1').getBoundingClientRect().top;
         const b = document.getElementById('L2').getBoundingClientRect().top;
         const lh = parseFloat(getComputedStyle(document.querySelector('pre.file')).lineHeight);
         return [b - a, lh, getComputedStyle(document.querySelector('pre.file')).tabSize];",
    )
    .await;
    let (gap, line_height) = (
        spacing[0].as_f64().expect("gap"),
        spacing[1].as_f64().expect("line height"),
    );
    assert!(gap > 0.0 && gap < line_height * 1.5, "{spacing}");
    assert_eq!(spacing[2], json!("4"), "tabs are 4 wide");

    // The number of line 450 links to itself: the page scrolls there and highlights it.
    click_and_wait(client, "#L450 a.n", "#L450:target").await;
    let url = client.current_url().await.expect("url");
    assert_eq!(
        (url.query(), url.fragment()),
        (Some("line=450"), Some("L450"))
    );
    let landed = run(
        client,
        "const line = document.getElementById('L450');
         const box = line.getBoundingClientRect();
         return [document.querySelector(':target').id, window.scrollY > 0,
                 [box.top, box.bottom, window.innerHeight, window.scrollY],
                 getComputedStyle(line).backgroundColor,
                 getComputedStyle(document.getElementById('L449')).backgroundColor];",
    )
    .await;
    assert_eq!(landed[0], json!("L450"));
    assert_eq!(landed[1], json!(true), "scrolled");
    let (top, bottom, height) = (
        landed[2][0].as_f64().expect("top"),
        landed[2][1].as_f64().expect("bottom"),
        landed[2][2].as_f64().expect("height"),
    );
    assert!(
        top >= -1.0 && bottom <= height + 1.0,
        "line 450 is in view: {landed}"
    );
    assert_ne!(
        landed[3], landed[4],
        "the target line is highlighted: {landed}"
    );

    // A link into the third page opens that page; a range is highlighted, nothing else.
    goto(client, &app, "/action?lines=1001-1003").await;
    assert!(text_of(client, "nav.pages").await.contains("page 3 of 3"));
    let lit = run(
        client,
        "return [...document.querySelectorAll('.line.hl')].map(l => l.id);",
    )
    .await;
    assert_eq!(lit, json!(["L1001", "L1002", "L1003"]));
    save_screenshot(client, "desktop-lines").await;

    // Several ranges in one link; a click on a line number starts another range, a second
    // click ends it there.
    goto(client, &app, "/action?lines=3-5,10-12").await;
    let lit_ids = "return [...document.querySelectorAll('.line.hl')].map(l => l.id);";
    assert_eq!(
        run(client, lit_ids).await,
        json!(["L3", "L4", "L5", "L10", "L11", "L12"])
    );
    click_and_wait(client, "#L20 a.n", "#L20:target").await;
    click_and_wait(client, "#L22 a.n", "#L22:target").await;
    let url = client.current_url().await.expect("url");
    assert_eq!(url.query(), Some("lines=3-5,10-12,20-22"));
    assert_eq!(
        run(client, lit_ids).await,
        json!(["L3", "L4", "L5", "L10", "L11", "L12", "L20", "L21", "L22"])
    );
    assert!(text_of(client, "#selection")
        .await
        .starts_with("Selected: lines 3–5, 10–12 and 20–22."));
    save_screenshot(client, "desktop-ranges").await;

    // The raw file, as text.
    goto(client, &app, "/action").await;
    let download = client
        .find(Locator::Css("a#download"))
        .await
        .expect("download link")
        .attr("href")
        .await
        .expect("href");
    assert_eq!(download.as_deref(), Some("/action/raw?download=1"));
    click_and_wait(client, "a#raw", "body").await;
    assert_eq!(
        client.current_url().await.expect("url").path(),
        "/action/raw"
    );
    let raw = run(
        client,
        "return [document.contentType, document.body.innerText];",
    )
    .await;
    assert_eq!(raw[0], json!("text/plain"));
    assert_eq!(raw[1].as_str().map(str::trim_end), Some(text.trim_end()));
    client.clone().close().await.expect("close");
    app.stop().await;
}

async fn search_encodings_and_wrapping_in_the_browser(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");

    // Search: 600 matching lines, two pages of results, the matches marked.
    let text: String = (1..=1_200)
        .map(|n| {
            if n % 2 == 0 {
                format!("{n}: a Needle here\n")
            } else {
                format!("{n}: hay\n")
            }
        })
        .collect();
    upload_through_the_form(
        client,
        &app,
        &file_of(files.path(), "hay.txt", text.as_bytes()),
    )
    .await;
    client
        .find(Locator::Css("input#q"))
        .await
        .expect("the search box")
        .send_keys("NEEDLE")
        .await
        .expect("type");
    click_and_wait(client, "form.find button", "#search-summary").await;
    assert!(text_of(client, "#search-summary")
        .await
        .starts_with("600 lines match “NEEDLE”"));
    let marks = run(
        client,
        "return [document.querySelectorAll('pre.file mark').length,
                 document.querySelector('pre.file mark').textContent];",
    )
    .await;
    assert_eq!(marks, json!([500, "Needle"]));
    save_screenshot(client, "desktop-search").await;
    click_and_wait(client, "nav.pages a[rel=next]", "a[rel=prev]").await;
    assert_eq!(
        client.current_url().await.expect("url").query(),
        Some("q=NEEDLE&page=2")
    );
    let second = run(
        client,
        "return [document.querySelectorAll('pre.file mark').length,
                 [...document.querySelectorAll('pre.file a.n')].pop().dataset.n];",
    )
    .await;
    assert_eq!(second, json!([100, "1200"]));
    // A result's number leads to its line in the file.
    click_and_wait(client, "pre.file a.n[data-n='1002']", "#L1002:target").await;
    assert!(text_of(client, "nav.pages").await.contains("page 3 of 3"));

    // windows-1252 and UTF-16 files are shown as their text.
    let latin = b"Caf\xE9 cr\xE8me \x93quoted\x94 \x80 5\r\nna\xEFve fa\xE7ade\r\n";
    upload_through_the_form(client, &app, &file_of(files.path(), "latin.txt", latin)).await;
    assert_eq!(
        text_of(client, "#converted").await,
        "(converted from windows-1252 to UTF-8)"
    );
    let shown = text_of(client, "pre.file").await;
    assert!(shown.contains("Café crème “quoted” € 5"), "{shown}");
    assert!(shown.contains("naïve façade"), "{shown}");
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "Привет, мир — 你好\n".encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    upload_through_the_form(client, &app, &file_of(files.path(), "utf16.txt", &utf16)).await;
    assert_eq!(
        text_of(client, "#converted").await,
        "(converted from UTF-16LE to UTF-8)"
    );
    assert!(text_of(client, "pre.file")
        .await
        .contains("Привет, мир — 你好"));

    // Wrapping: a long line wraps by default, scrolls sideways without it; the page itself
    // never scrolls sideways.
    let long = format!("short\n{}\n", "word ".repeat(600));
    upload_through_the_form(
        client,
        &app,
        &file_of(files.path(), "long.txt", long.as_bytes()),
    )
    .await;
    let layout = "const pre = document.querySelector('pre.file');
                  return [getComputedStyle(pre).whiteSpace, pre.scrollWidth > pre.clientWidth,
                          document.documentElement.scrollWidth > window.innerWidth];";
    assert_eq!(run(client, layout).await, json!(["pre-wrap", false, false]));
    click_and_wait(client, "a#wrap-switch", "pre.file.nowrap").await;
    assert_eq!(run(client, layout).await, json!(["pre", true, false]));
    assert_eq!(text_of(client, "a#wrap-switch").await, "Wrap lines");
    click_and_wait(client, "a#wrap-switch", "pre.file:not(.nowrap)").await;
    assert_eq!(run(client, layout).await, json!(["pre-wrap", false, false]));
    wait_for(client, "a#wrap-switch").await;

    // 360 px wide (a small phone): no page scrolls sideways, wrapped or not, nor a search.
    client.set_window_size(360, 740).await.expect("resize");
    for path in ["/action", "/action?wrap=0", "/action?q=word"] {
        goto(client, &app, path).await;
        let overflow = run(
            client,
            "return document.documentElement.scrollWidth > window.innerWidth",
        )
        .await;
        assert_eq!(overflow, json!(false), "{path} at 360 px");
    }
    client.clone().close().await.expect("close");
    app.stop().await;
}

/// A Markdown file in the browser: rendered headings, list and code block; a `<script>` and an
/// `onerror=` inside it only as text (nothing runs, no image loads); the switch to the numbered
/// source and back.
async fn markdown_renders_and_switches_to_its_source(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");
    let document = "# Notes\n\n## Steps\n\n- one\n- two\n\n```\nlet x = 1;\n```\n\n\
                    <script>document.title = 'ran'</script>\n\n\
                    Text <img src=/nowhere onerror=\"document.title='ran'\"> after.\n";
    upload_through_the_form(
        client,
        &app,
        &file_of(files.path(), "notes.md", document.as_bytes()),
    )
    .await;
    let shown = run(
        client,
        "const r = document.getElementById('rendered');
         return [[...r.querySelectorAll('h1, h2')].map(h => h.id),
                 [...r.querySelectorAll('li')].map(l => l.textContent),
                 r.querySelector('pre code').textContent,
                 r.querySelectorAll('script, img, [onerror]').length,
                 r.textContent.includes(\"<script>document.title = 'ran'</script>\"),
                 document.title];",
    )
    .await;
    assert_eq!(shown[0], json!(["md-notes", "md-steps"]), "{shown}");
    assert_eq!(shown[1], json!(["one", "two"]));
    assert_eq!(shown[2], json!("let x = 1;\n"));
    assert_eq!(
        shown[3],
        json!(0),
        "no script, image or handler in the page"
    );
    assert_eq!(shown[4], json!(true), "the script shown as text");
    assert_ne!(shown[5], json!("ran"));
    save_screenshot(client, "desktop-markdown").await;

    click_and_wait(client, "a#view-switch", "pre.file").await;
    assert_eq!(
        client.current_url().await.expect("url").query(),
        Some("view=source")
    );
    assert_eq!(
        run(client, "return document.getElementById('L1').textContent").await,
        json!("# Notes")
    );
    click_and_wait(client, "a#view-switch", "#rendered").await;
    client.clone().close().await.expect("close");
    app.stop().await;
}

/// What the highlighter's spans in a page hold, by kind: `[keywords, strings]` as texts.
const TOKENS: &str = "const of = c => [...document.querySelectorAll('pre.file .hl-' + c)]
                                 .map(t => t.textContent);
                      return [of('keyword'), of('string')];";

/// A Rust, a Python and a shell file in the browser: keywords and strings carry their classes
/// (and a colour of their own), line links land on their line, search marks its matches, and
/// copying the lines copies the text without numbers.
async fn source_files_are_highlighted_and_the_viewer_still_works(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");
    let rust = "use std::fmt;\n\n/// Greets.\nfn main() {\n    let name = \"world\";\n    \
                if name.is_empty() { return; }\n    println!(\"hello {name}\");\n}\n";
    let python = "import sys\n\ndef greet(name):\n    \"\"\"Say hello.\"\"\"\n    \
                  return f'hello {name}'\n\nif __name__ == '__main__':\n    print(greet(sys.argv[1]))\n";
    let shell = "#!/bin/sh\nset -eu\nfor f in \"$@\"; do\n  echo 'file:' \"$f\"\ndone\n";
    let cases = [
        (
            "main.rs",
            rust,
            "Rust",
            vec!["use", "fn", "let", "if", "return"],
            "\"world\"",
        ),
        (
            "greet.py",
            python,
            "Python",
            vec!["import", "def", "return", "if"],
            "'__main__'",
        ),
        (
            "each.sh",
            shell,
            "Bourne Again Shell (bash)",
            vec!["for", "in", "do", "done"],
            "'file:'",
        ),
    ];
    for (name, text, language, keywords, string) in cases {
        upload_through_the_form(client, &app, &file_of(files.path(), name, text.as_bytes())).await;
        assert_eq!(text_of(client, "#language").await, language, "{name}");
        let tokens = run(client, TOKENS).await;
        let found: Vec<&str> = tokens[0]
            .as_array()
            .expect("keywords")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for keyword in &keywords {
            assert!(found.contains(keyword), "{name}: {keyword} in {tokens}");
        }
        assert!(
            tokens[1]
                .as_array()
                .expect("strings")
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.contains(string))),
            "{name}: {string} in {tokens}"
        );
        let colours = run(
            client,
            "const k = document.querySelector('pre.file .hl-keyword');
             const s = document.querySelector('pre.file .hl-string');
             return [getComputedStyle(k).color, getComputedStyle(s).color,
                     getComputedStyle(document.querySelector('pre.file')).color];",
        )
        .await;
        assert_ne!(colours[0], colours[1], "{name}: {colours}");
        assert_ne!(colours[0], colours[2], "{name}: {colours}");

        // Copying copies the text, no numbers.
        let copied = run(
            client,
            "const pre = document.querySelector('pre.file');
             const range = document.createRange(); range.selectNodeContents(pre);
             const selection = getSelection(); selection.removeAllRanges();
             selection.addRange(range); return selection.toString();",
        )
        .await;
        assert_eq!(
            copied.as_str().map(str::trim_end),
            Some(text.trim_end()),
            "{name}"
        );
        // A line link lands on its highlighted line.
        click_and_wait(client, "#L4 a.n", "#L4:target").await;
        assert_eq!(
            client.current_url().await.expect("url").query(),
            Some("line=4")
        );
        assert!(run(
            client,
            "return document.querySelectorAll('#L4 [class^=hl-]').length"
        )
        .await
        .as_u64()
        .is_some_and(|n| n > 0));
    }
    save_screenshot(client, "desktop-shell").await;

    // Search marks its matches in a highlighted file's lines.
    upload_through_the_form(
        client,
        &app,
        &file_of(files.path(), "main.rs", rust.as_bytes()),
    )
    .await;
    save_screenshot(client, "desktop-rust").await;
    goto(client, &app, "/action?q=name").await;
    let marks = run(
        client,
        "return [...document.querySelectorAll('pre.file mark')].map(m => m.textContent);",
    )
    .await;
    assert_eq!(marks, json!(["name", "name", "name"]));
    client.clone().close().await.expect("close");
    app.stop().await;
}

tests_on!(on_sqlite: Sqlite needs Browser;
    source_files_are_highlighted_and_the_viewer_still_works,
    markdown_renders_and_switches_to_its_source,
    a_line_link_lands_highlights_and_copies_no_numbers,
    search_encodings_and_wrapping_in_the_browser,
);
