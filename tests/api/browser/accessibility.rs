//! axe-core (from the npm registry: `npm ci --prefix tests/browser`), injected through
//! WebDriver, finds no serious or critical violation on the upload page, the file page, a search
//! and an error page, in the light and the dark colour scheme. Also takes the dark screenshots.

use std::path::Path;

use fantoccini::Client;
use serde_json::{json, Value};

use super::{browser, dark_browser, save_screenshot, upload_through_the_form, Browser};
use crate::helpers::{spawn_app, TestApp, TestDb};

/// Where `npm ci --prefix tests/browser` puts axe-core.
pub(crate) const AXE: &str = "tests/browser/node_modules/axe-core/axe.min.js";

/// axe's violations on the page `client` shows: `[{id, impact, nodes, help}]`.
async fn violations(client: &Client) -> Vec<Value> {
    let axe = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(AXE))
        .expect("axe-core: npm ci --prefix tests/browser");
    client.execute(&axe, vec![]).await.expect("inject axe-core");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
                .then(r => done(r.violations.map(v => ({
                    id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help,
                    targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))))
                .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e) }]));",
            vec![],
        )
        .await
        .expect("axe.run");
    found.as_array().cloned().unwrap_or_default()
}

/// The pages checked with the text file: the form, the file, a search, several ranges, an
/// error page.
const TEXT_PAGES: [&str; 6] = [
    "/",
    "/action",
    "/action?q=needle",
    "/action?lines=3-5,10-12",
    "/action?line=seven",
    "/nowhere",
];

/// The pages checked with the Markdown file: rendered, and its source.
const MARKDOWN_PAGES: [&str; 2] = ["/action", "/action?view=source"];

/// A Markdown document with what a README holds.
const README: &str = "# textdrop\n\nA *small* app. See [the site](https://example.com).\n\n\
                      ## Install\n\n1. Build it\n2. Run it\n\n```rust\nfn main() {}\n```\n\n\
                      > A quote, with `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";

/// Each of `paths`' violations of serious or critical impact, every violation printed.
async fn serious_violations(
    client: &Client,
    app: &TestApp,
    scheme: &str,
    paths: &[&str],
) -> Vec<Value> {
    let mut serious = Vec::new();
    for &path in paths {
        client
            .goto(&format!("{}{path}", app.address))
            .await
            .expect("open");
        for violation in violations(client).await {
            eprintln!("axe {scheme} {path}: {violation}");
            if matches!(violation["impact"].as_str(), Some("serious" | "critical")) {
                serious.push(json!({ "page": path, "scheme": scheme, "violation": violation }));
            }
        }
    }
    serious
}

/// Uploads a Markdown file through `browser`'s form.
async fn with_markdown(browser: &Browser, app: &TestApp, dir: &Path) {
    let path = dir.join("README.md");
    std::fs::write(&path, README).expect("write");
    upload_through_the_form(&browser.client, app, &path.display().to_string()).await;
}

/// Uploads a file with a word to search for through `browser`'s form.
async fn with_a_file(browser: &Browser, app: &TestApp, dir: &Path) {
    let path = dir.join("notes.txt");
    let text: String = (1..=40)
        .map(|n| format!("Line {n}: a needle in the haystack,\tafter a tab.\n"))
        .collect();
    std::fs::write(&path, text).expect("write");
    upload_through_the_form(&browser.client, app, &path.display().to_string()).await;
}

async fn axe_finds_no_serious_violation_in_light_or_dark(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");

    let light = browser().await;
    with_a_file(&light, &app, files.path()).await;
    let mut serious = serious_violations(&light.client, &app, "light", &TEXT_PAGES).await;
    with_markdown(&light, &app, files.path()).await;
    serious.extend(serious_violations(&light.client, &app, "light", &MARKDOWN_PAGES).await);
    light.client.clone().close().await.expect("close");

    let dark = dark_browser().await;
    let client = &dark.client;
    assert_eq!(
        client
            .execute(
                "return matchMedia('(prefers-color-scheme: dark)').matches",
                vec![]
            )
            .await
            .expect("script"),
        json!(true),
        "the dark browser prefers dark"
    );
    with_a_file(&dark, &app, files.path()).await;
    serious.extend(serious_violations(client, &app, "dark", &TEXT_PAGES).await);
    let background = client
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        background,
        json!("rgb(19, 19, 22)"),
        "the dark scheme applies"
    );

    // The dark screenshots, desktop and phone.
    client
        .goto(&format!("{}/action", app.address))
        .await
        .expect("open");
    save_screenshot(client, "desktop-action-dark").await;
    client.set_window_size(390, 844).await.expect("resize");
    client.refresh().await.expect("reload");
    save_screenshot(client, "phone-action-dark").await;
    client
        .goto(&format!("{}/", app.address))
        .await
        .expect("open");
    save_screenshot(client, "phone-upload-dark").await;
    // A Markdown file, on the phone, dark.
    with_markdown(&dark, &app, files.path()).await;
    serious.extend(serious_violations(client, &app, "dark", &MARKDOWN_PAGES).await);
    client
        .goto(&format!("{}/action", app.address))
        .await
        .expect("open");
    save_screenshot(client, "phone-markdown-dark").await;
    client.clone().close().await.expect("close");
    app.stop().await;

    assert!(serious.is_empty(), "{}", Value::Array(serious));
}

/// A Rust file to show highlighted.
const RUST_SAMPLE: &str = r#"//! Counts the words of its input.

use std::collections::HashMap;
use std::io::{self, Read};

/// How often each word occurs, most frequent first.
fn count(text: &str) -> Vec<(&str, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_insert(0) += 1;
    }
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    sorted
}

fn main() -> io::Result<()> {
    let mut text = String::new();
    io::stdin().read_to_string(&mut text)?;
    for (word, n) in count(&text).iter().take(10) {
        println!("{n:>6} {word}");
    }
    Ok(())
}
"#;

/// The viewer as docs/viewer.md shows it: a highlighted Rust file, several ranges, a Markdown
/// file rendered; light and dark, desktop and a 360 px phone. axe finds no serious violation
/// on any of the twelve.
async fn the_viewer_in_both_schemes_on_desktop_and_phone(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");
    let rust = files.path().join("words.rs");
    std::fs::write(&rust, RUST_SAMPLE).expect("write");
    let mut serious = Vec::new();
    for scheme in ["light", "dark"] {
        let browser = if scheme == "light" {
            browser().await
        } else {
            dark_browser().await
        };
        let client = &browser.client;
        for (device, width, height) in [("desktop", 1280, 900), ("phone", 360, 740)] {
            client.set_window_size(width, height).await.expect("resize");
            upload_through_the_form(client, &app, &rust.display().to_string()).await;
            for (path, shot) in [
                ("/action#L1", "rust"),
                ("/action?lines=7-9,18-22#L7", "ranges"),
            ] {
                client
                    .goto(&format!("{}{path}", app.address))
                    .await
                    .expect("open");
                serious.extend(serious_violations(client, &app, scheme, &[path]).await);
                save_screenshot(client, &format!("{device}-{shot}-{scheme}")).await;
            }
            with_markdown(&browser, &app, files.path()).await;
            serious.extend(serious_violations(client, &app, scheme, &["/action#rendered"]).await);
            save_screenshot(client, &format!("{device}-markdown-{scheme}")).await;
        }
        client.clone().close().await.expect("close");
    }
    app.stop().await;
    assert!(serious.is_empty(), "{}", Value::Array(serious));
}

tests_on!(on_sqlite: Sqlite needs Browser, Axe;
    axe_finds_no_serious_violation_in_light_or_dark,
    the_viewer_in_both_schemes_on_desktop_and_phone,
);
