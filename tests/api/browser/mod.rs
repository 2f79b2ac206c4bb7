//! The pages in a real browser: headless Chromium driven over WebDriver (chromedriver, started
//! here on a free loopback port) with fantoccini. Screenshots are taken every run; they replace
//! the README's in docs/screenshots/ only when TEXTDROP_SCREENSHOTS=1 asks for it
//! (`TEXTDROP_SCREENSHOTS=1 cargo test --locked browser`), and go to a temp dir otherwise.
//!
//! Needs Debian's `chromium` and `chromium-driver`; the accessibility checks also need axe-core
//! (`npm ci --prefix tests/browser`). Without them these tests are reported ignored, except when
//! TEXTDROP_REQUIRE_BROWSER is set (CI), where they fail.

mod accessibility;
mod viewer;

pub(crate) use accessibility::AXE;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{free_port, spawn_app, wait_for_port, TestApp, TestDb};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// What the browser tests need.
pub(crate) const BINARIES: (&str, &str) = (CHROMIUM, CHROMEDRIVER);

/// chromedriver and one headless Chromium session; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    browser_with(&[]).await
}

/// A browser whose pages prefer a dark colour scheme (`prefers-color-scheme: dark`).
async fn dark_browser() -> Browser {
    browser_with(&[
        "--blink-settings=preferredColorScheme=0",
        "--force-dark-mode",
    ])
    .await
}

/// A browser started with `extra` command-line switches.
async fn browser_with(extra: &[&str]) -> Browser {
    crate::helpers::harness::service(crate::helpers::Need::Browser);
    let port = free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    assert!(
        wait_for_port(port, Duration::from_secs(15)),
        "chromedriver did not start"
    );
    // The WebDriver client's TLS library is built with two crypto providers here (fantoccini's
    // and textdrop's): say which one serves when it asks for the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = tempfile::tempdir().expect("profile dir");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ]
    .iter()
    .chain(extra)
    .map(|arg| (*arg).to_owned())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls roots")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    Browser {
        client,
        driver,
        _profile: profile,
    }
}

/// Where screenshots go when asked for (TEXTDROP_SCREENSHOTS): the README's folder. Otherwise
/// they are taken and checked, not kept (tests never leave files behind).
fn screenshot_dir() -> Option<PathBuf> {
    if !crate::helpers::required("TEXTDROP_SCREENSHOTS") {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    Some(dir)
}

async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    if let Some(dir) = screenshot_dir() {
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// A text file on disk for the file input.
fn text_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path.display().to_string()
}

/// Opens /, chooses `path` in the file input, clicks Upload and waits for the next page: /action,
/// or the form again with its error.
async fn upload_through_the_form(client: &Client, app: &TestApp, path: &str) {
    client
        .goto(&format!("{}/", app.address))
        .await
        .expect("open /");
    client
        .find(Locator::Css("input#textfile"))
        .await
        .expect("the file input")
        .send_keys(path)
        .await
        .expect("choose the file");
    click_and_wait(
        client,
        "form.upload button[type=submit]",
        "dl.meta, #upload-error",
    )
    .await;
}

/// Clicks the element matching `button`, then waits for the next page to show `then`.
async fn click_and_wait(client: &Client, button: &str, then: &str) {
    client
        .find(Locator::Css(button))
        .await
        .unwrap_or_else(|e| panic!("{button}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {button}: {e}"));
    wait_for(client, then).await;
}

/// Waits (at most 10 s) until the page shows an element matching `css`.
async fn wait_for(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"));
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// How the page writes the time a day from now.
fn a_day_from_now(app: &TestApp) -> String {
    (app.clock.clock().now() + chrono::Duration::days(1))
        .format("%Y-%m-%d %H:%M UTC, unless you come back")
        .to_string()
}

async fn a_visitor_uploads_reads_reloads_loses_the_cookie_and_forgets(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[]).await;
    let files = tempfile::tempdir().expect("dir");
    let lines: String = (1..=12)
        .map(|n| {
            format!("Line {n}: the quick brown fox jumps over the lazy dog.   (indented {n})\n")
        })
        .collect();
    let path = text_file(files.path(), "notes.txt", &lines);

    // The form page, then the upload lands on /action with the lines.
    client
        .goto(&format!("{}/", app.address))
        .await
        .expect("open /");
    save_screenshot(client, "desktop-upload").await;
    let before = a_day_from_now(&app);
    upload_through_the_form(client, &app, &path).await;
    let url = client.current_url().await.expect("url");
    assert_eq!(url.path(), "/action");
    let shown = text_of(client, "pre.file").await;
    assert!(shown.contains("Line 1: the quick brown fox"), "{shown}");
    assert!(shown.contains("Line 12:"), "{shown}");
    assert!(text_of(client, "dl.meta").await.contains("notes.txt"));
    // The default lifetime, a day, from the upload: the minute before or after reading.
    let kept_until = text_of(client, "#kept-until").await;
    let after = a_day_from_now(&app);
    assert!(
        kept_until.starts_with(&before) || kept_until.starts_with(&after),
        "{kept_until} is not a day after {before}"
    );
    save_screenshot(client, "desktop-action").await;

    // A phone-sized window: the same pages, no horizontal scroll.
    client.set_window_size(390, 844).await.expect("resize");
    client.refresh().await.expect("reload");
    assert!(
        text_of(client, "pre.file").await.contains("Line 12:"),
        "reload keeps the file"
    );
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        overflow,
        json!(false),
        "no horizontal page scroll on a phone"
    );
    save_screenshot(client, "phone-action").await;
    client
        .goto(&format!("{}/", app.address))
        .await
        .expect("open /");
    save_screenshot(client, "phone-upload").await;
    client.set_window_size(1280, 900).await.expect("resize");

    // Without the cookie, the browser is a new visitor.
    client.delete_cookie("id").await.expect("delete the cookie");
    client
        .goto(&format!("{}/", app.address))
        .await
        .expect("open /");
    assert!(!text_of(client, "main")
        .await
        .contains("your previous upload"));
    client
        .goto(&format!("{}/action", app.address))
        .await
        .expect("open /action");
    assert!(text_of(client, "main")
        .await
        .contains("You have not yet uploaded a file"));

    // A long file is shown a page at a time: follow "Next page" and come back.
    let long: String = (1..=1_200).map(|n| format!("row {n:04}\n")).collect();
    let long = text_file(files.path(), "long.txt", &long);
    upload_through_the_form(client, &app, &long).await;
    assert!(text_of(client, "nav.pages").await.contains("page 1 of 3"));
    click_and_wait(client, "nav.pages a[rel=next]", "a[rel=prev]").await;
    let second = text_of(client, "pre.file").await;
    assert!(
        second.starts_with("row 0501") && second.contains("row 1000"),
        "{second:.40}"
    );
    assert!(!second.contains("row 1001"));
    assert_eq!(
        client.current_url().await.expect("url").query(),
        Some("page=2")
    );

    // Upload again, then "Forget my data now": the rows go and the page says so (each upload
    // rotated the key; the row it came from stays, superseded, for the grace period).
    upload_through_the_form(client, &app, &path).await;
    assert_eq!(
        db.row_count(),
        3,
        "the new upload, the one it superseded, and the abandoned row"
    );
    click_and_wait(client, "form.forget button", ".notice").await;
    assert_eq!(client.current_url().await.expect("url").path(), "/");
    assert!(text_of(client, ".notice")
        .await
        .contains("Your data was deleted"));
    assert_eq!(
        db.row_count(),
        1,
        "forget took the current row and the one it superseded; the abandoned row is left"
    );
    client
        .goto(&format!("{}/action", app.address))
        .await
        .expect("open /action");
    assert!(text_of(client, "main")
        .await
        .contains("You have not yet uploaded a file"));
    client.clone().close().await.expect("close");
    app.stop().await;
}

async fn errors_show_next_to_the_form_and_uploaded_script_never_runs(db: TestDb) {
    let browser = browser().await;
    let client = &browser.client;
    let app = spawn_app(&db, &[("MAX_UPLOAD_BYTES", "400")]).await;
    let files = tempfile::tempdir().expect("dir");

    let big = text_file(files.path(), "big.txt", &"x".repeat(401));
    upload_through_the_form(client, &app, &big).await;
    let error = text_of(client, "form.upload #upload-error").await;
    assert!(
        error.contains("too large") && error.contains("400 bytes"),
        "{error}"
    );
    save_screenshot(client, "desktop-error").await;

    let hostile = "<script>document.title='pwned'</script>\n\
                   <img src=x onerror=\"document.title='pwned too'\">\n";
    let path = text_file(files.path(), "hostile.html", hostile);
    upload_through_the_form(client, &app, &path).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(client.title().await.expect("title"), "Your file · textdrop");
    let injected = client
        .find_all(Locator::Css("pre.file script, pre.file img"))
        .await
        .expect("query");
    assert!(injected.is_empty(), "uploaded markup became DOM nodes");
    assert!(text_of(client, "pre.file")
        .await
        .contains("<script>document.title='pwned'</script>"));
    client.clone().close().await.expect("close");
    app.stop().await;
}

tests_on!(sqlite_only: Sqlite needs Browser;
    a_visitor_uploads_reads_reloads_loses_the_cookie_and_forgets,
    errors_show_next_to_the_form_and_uploaded_script_never_runs,
);
