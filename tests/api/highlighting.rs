//! Source highlighted on the file page, over HTTP: the language from the name, a shebang or a
//! modeline, `?lang=` to choose or switch it off; a file past the budget shown plain with a
//! way to try; a try stopped at the hard limit, its request answered within it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{spawn_app, TestDb};

/// The classes of the highlighter's spans on a page, in order.
fn token_classes(page: &str) -> Vec<&str> {
    page.split("<span class=\"hl-")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(class, _)| class))
        .collect()
}

const RUST: &str = "// A comment\nfn main() {\n    let greeting = \"hello\";\n    println!(\"{greeting} {}\", 42);\n}\n";

async fn source_is_highlighted_by_its_name_a_shebang_or_a_modeline(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    app.upload("main.rs", RUST).await;
    let page = app.get_text("/action").await;
    assert!(page.contains("<dd id=\"language\">Rust</dd>"), "{page}");
    assert!(
        page.contains("<span class=\"hl-keyword\">fn</span>"),
        "{page}"
    );
    assert!(page.contains("<span class=\"hl-string\">&quot;hello&quot;</span>"));
    assert!(page.contains("<span class=\"hl-comment\">&#x2F;&#x2F; A comment</span>"));
    assert!(page.contains("<span class=\"hl-number\">42</span>"));
    // The line's number and link stay outside the tokens.
    assert!(page.contains(
        "<span class=\"line\" id=\"L2\"><a class=\"n\" data-n=\"2\" aria-label=\"Line 2\" \
         href=\"/action?line=2#L2\"></a><span class=\"hl-keyword\">fn</span>"
    ));
    assert!(page.contains("<option selected>Rust</option>"), "the list");
    assert!(page.contains("<option>Python</option>"));

    // ?lang=plain switches it off, and every link keeps it.
    let plain = app.get_text("/action?lang=plain").await;
    assert!(token_classes(&plain).is_empty());
    assert!(!plain.contains("id=\"language\""));
    assert!(
        plain.contains("href=\"/action?line=2&amp;lang=plain#L2\""),
        "{plain}"
    );
    assert!(plain.contains("<option value=\"plain\" selected>"));
    // ?lang= another language; a name no grammar has is a bad address.
    let python = app.get_text("/action?lang=python").await;
    assert!(python.contains("<dd id=\"language\">Python</dd>"));
    let bad = app.get("/action?lang=klingon").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad
        .text()
        .await
        .expect("page")
        .contains("lang takes plain or a language from the list on the page"));
    // A selection on a highlighted page.
    let lit = app.get_text("/action?lines=2-3").await;
    assert!(lit.contains("<span class=\"line hl\" id=\"L3\">"));
    assert!(token_classes(&lit).contains(&"string"));

    app.upload(
        "deploy",
        "#!/bin/sh\nif [ -n \"$1\" ]; then echo 'hi'; fi\n",
    )
    .await;
    let shell = app.get_text("/action").await;
    assert!(shell.contains("<dd id=\"language\">Bourne Again Shell (bash)</dd>"));
    assert!(
        shell.contains("<span class=\"hl-keyword\">if</span>"),
        "{shell}"
    );
    app.upload("setup-script", "x = [1, 2]\n# vim: set ft=python:\n")
        .await;
    let modeline = app.get_text("/action").await;
    assert!(
        modeline.contains("<dd id=\"language\">Python</dd>"),
        "{modeline}"
    );

    app.upload("notes.txt", "fn main() {}\n").await;
    let notes = app.get_text("/action").await;
    assert!(token_classes(&notes).is_empty() && !notes.contains("id=\"language\""));
    app.stop().await;
}

async fn a_file_past_the_budget_is_plain_with_a_way_to_try_anyway(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let big: String = (0..5_001).map(|n| format!("fn f{n}() {{}}\n")).collect();
    app.upload("big.rs", big).await;
    let page = app.get_text("/action").await;
    assert!(token_classes(&page).is_empty(), "plain");
    assert!(
        page.contains(
            "This file is not highlighted: it is past what is highlighted at once (5000 lines, \
             64 KiB, or a line of 2000 characters). <a href=\"/action?lang=Rust\">Highlight it \
             as Rust anyway</a> (it stops after 1.5 s)."
        ),
        "{page:.3000}"
    );
    let tried = app.get_text("/action?lang=Rust").await;
    assert!(tried.contains("<span class=\"hl-keyword\">fn</span>"));
    assert!(tried.contains("href=\"/action?line=3&amp;lang=Rust#L3\""));
    assert!(
        tried.contains("href=\"/action?lang=Rust&amp;page=2\">Next page"),
        "{tried:.3000}"
    );
    let second = app.get_text("/action?lang=Rust&page=2").await;
    // Highlighted pages hold 100 lines (the grammar costs every byte shown).
    assert!(
        second.contains("<span class=\"hl-function\">f150</span>"),
        "{second:.3000}"
    );
    assert!(second.contains("Lines 101 to 200 of 5001, page 2 of 51."));
    let plain = app.get_text("/action?lang=plain&page=2").await;
    assert!(plain.contains("Lines 501 to 1000 of 5001, page 2 of 11."));
    app.stop().await;
}

/// A try past the budget on a file whose last page takes the grammar far longer than the hard
/// limit: the work stops at the limit (the page says so, plain) and the answer comes within
/// it; /healthz answers meanwhile. A line longer than the grammar is given stops it too.
async fn highlighting_stops_at_the_hard_limit(db: TestDb) {
    let app = spawn_app(&db, &[("MAX_UPLOAD_BYTES", "4194304")]).await;
    let lines = 4 * 1024 * 1024 / 30;
    let big: String = (0..lines)
        .map(|n| format!("let x{n:07} = \"{:>16}\"; // c\n", n))
        .collect::<String>();
    let big = &big[..big[..4 * 1024 * 1024].rfind('\n').expect("a line") + 1];
    assert_eq!(
        app.upload("huge.rs", big.to_owned()).await.status(),
        StatusCode::SEE_OTHER
    );
    let first = app.get_text("/action").await;
    let last_page: usize = first
        .split("page 1 of ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.parse().ok())
        .expect("a page count");
    let last = format!("/action?lang=Rust&page={last_page}");
    let asked = Instant::now();
    let (page, health) = futures_util::join!(app.get_text(&last), async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let status = app.get("/healthz").await.status();
        (status, started.elapsed())
    });
    let took = asked.elapsed();
    assert!(
        page.contains("Highlighting stopped after 1.5 s, so this page is shown plain."),
        "{page:.3000}"
    );
    assert!(token_classes(&page).is_empty());
    assert!(took < Duration::from_millis(3_000), "{took:?}");
    assert_eq!(health.0, StatusCode::OK);
    assert!(health.1 < Duration::from_millis(500), "{:?}", health.1);

    let long = format!(
        "fn a() {{}}\nlet s = \"{}\";\nfn b() {{}}\n",
        "x".repeat(6_000)
    );
    app.upload("long.rs", long).await;
    let tried = app.get_text("/action?lang=Rust").await;
    assert!(
        tried.contains(
            "Highlighting stopped at a line longer than 4096 characters, so the rest of this \
             page is shown plain."
        ),
        "{tried:.3000}"
    );
    assert_eq!(token_classes(&tried)[..2], ["keyword", "function"]);
    app.stop().await;
}

tests_on!(sqlite_only: Sqlite;
    source_is_highlighted_by_its_name_a_shebang_or_a_modeline,
    a_file_past_the_budget_is_plain_with_a_way_to_try_anyway,
    highlighting_stops_at_the_hard_limit,
);
