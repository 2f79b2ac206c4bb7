//! Sealed records: a copy of the storage shows no visitor's file or file name; a sealed value
//! moved to another record or changed is no session; records of the binary before sealing still
//! read, and their visitor's next upload is sealed.

use actix_session_stores::test_support::open_stored;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::helpers::{
    cookie_client, metric_value, page_at, page_with_cookie, session_cookie_pair, session_key_in,
    spawn_app, upload_with, TestDb, TEST_SECRET,
};

/// A visitor's upload: its client, its cookie, the session key in it, its file's name and text.
struct Visitor {
    client: reqwest::Client,
    cookie: String,
    key: String,
    name: String,
    text: String,
}

impl Visitor {
    /// The id the visitor's record is stored under.
    fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.as_bytes()))
    }
}

/// Visitor `n` uploads a file of 40 lines of its own, named after it.
async fn upload(address: &str, n: usize) -> Visitor {
    let client = cookie_client();
    let name = format!("ledger-of-visitor-{n}.txt");
    let text: String = (0..40)
        .map(|line| {
            format!(
                "visitor {n} private entry {line}: balance {}\n",
                n * 1000 + line
            )
        })
        .collect();
    let response = upload_with(&client, address, &name, text.clone())
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie_pair(&response).expect("a cookie");
    let key = session_key_in(&cookie, TEST_SECRET).expect("a cookie under the app's key");
    Visitor {
        client,
        cookie,
        key,
        name,
        text,
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

const NO_FILE: &str = "You have not yet uploaded a file";

async fn a_copy_of_the_storage_shows_none_of_the_files(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let mut visitors = Vec::new();
    for n in 0..10 {
        visitors.push(upload(&app.address, n).await);
    }

    let dump = db.dump();

    assert!(holds(&dump, "s1."), "the dump holds the sealed records");
    for visitor in &visitors {
        assert!(!holds(&dump, &visitor.name), "{} shows", visitor.name);
        for line in visitor.text.lines() {
            assert!(!holds(&dump, line), "a line shows: {line}");
        }
    }
    // Each cookie still opens its own file.
    for visitor in &visitors {
        let page = page_at(&visitor.client, &format!("{}/action", app.address)).await;
        assert!(page.contains(&visitor.name), "{page:.300}");
        let last = visitor.text.lines().last().expect("a line");
        assert!(page.contains(last), "{page:.300}");
    }
    app.stop().await;
}

async fn a_sealed_value_moved_to_another_record_or_changed_is_no_session(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let action = format!("{}/action", app.address);
    let a = upload(&app.address, 1).await;
    let b = upload(&app.address, 2).await;
    let corrupt = || metric_value(&app.metrics.render(), "textdrop_corrupt_records_total");
    let before = corrupt().unwrap_or(0.0);

    // A's sealed state and file, copied over B's: B's key does not open them.
    let (a_state, a_file) = db.stored_record(&a.id());
    db.set_stored_record(&b.id(), &a_state, a_file.as_deref());
    let response = reqwest::Client::new()
        .get(&action)
        .header(reqwest::header::COOKIE, &b.cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("body");
    assert!(page.contains(NO_FILE), "{page:.300}");
    assert!(!page.contains(&a.name), "A's file shown to B");

    // One character of A's sealed file changed: A's own key refuses it.
    let (_, file) = db.stored_record(&a.id());
    let mut file = file.expect("a file").into_bytes();
    let middle = file.len() / 2;
    file[middle] = if file[middle] == b'A' { b'B' } else { b'A' };
    let file = String::from_utf8(file).expect("base64 text");
    db.set_stored_record(&a.id(), &a_state, Some(&file));
    let page = page_with_cookie(&action, &a.cookie).await;
    assert!(page.contains(NO_FILE), "{page:.300}");
    assert!(!page.contains("private entry"), "a changed file was shown");

    assert!(
        corrupt().unwrap_or(0.0) >= before + 2.0,
        "both refusals counted: {}",
        app.metrics.render()
    );
    // Nothing else suffered: a third visitor uploads and reads as ever.
    let c = upload(&app.address, 3).await;
    assert!(page_with_cookie(&action, &c.cookie).await.contains(&c.name));
    app.stop().await;
}

async fn a_record_written_before_sealing_reads_and_the_next_upload_is_sealed(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let action = format!("{}/action", app.address);
    // Visitor 70: on Redis, `--rdb` copies every database of the server, and the tests that
    // run beside this one look for visitors 0 to 9.
    let visitor = upload(&app.address, 70).await;
    // The record as the binary before sealing wrote it: the same state and file, as text.
    let (state, file) = db.stored_record(&visitor.id());
    let id = visitor.id();
    let plain_state = open_stored(&visitor.key, &id, false, &state).expect("the state opens");
    let plain_file =
        open_stored(&visitor.key, &id, true, &file.expect("a file")).expect("the file opens");
    assert_eq!(plain_file, visitor.text);
    db.set_stored_record(&id, &plain_state, Some(&plain_file));
    let first_line = visitor.text.lines().next().expect("a line");
    assert!(
        holds(&db.dump(), first_line),
        "a plain record shows in the dump"
    );

    let page = page_at(&visitor.client, &action).await;
    assert!(page.contains(&visitor.name), "{page:.300}");
    assert!(page.contains(first_line), "{page:.300}");

    let again = "the next upload, sealed\n";
    let response = upload_with(&visitor.client, &app.address, "next.txt", again)
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie_pair(&response).expect("a cookie");
    let key = session_key_in(&cookie, TEST_SECRET).expect("a cookie under the app's key");
    let new_id = hex::encode(Sha256::digest(key.as_bytes()));
    let (state, file) = db.stored_record(&new_id);
    assert!(state.starts_with("s1.") && file.as_deref().is_some_and(|f| f.starts_with("s1.")));
    assert!(!holds(&db.dump(), "the next upload, sealed"));
    let page = page_at(&visitor.client, &action).await;
    assert!(page.contains("the next upload, sealed"), "{page:.300}");
    app.stop().await;
}

/// Runs `textdrop ARGS` on `db`; its standard output.
fn textdrop_on(db: &TestDb, args: &[&str]) -> String {
    let output = crate::helpers::textdrop(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn stats_counts_plain_records_and_drop_plain_deletes_only_them(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let action = format!("{}/action", app.address);
    let sealed = upload(&app.address, 1).await;
    let plain = upload(&app.address, 2).await;
    let (state, file) = db.stored_record(&plain.id());
    db.set_stored_record(
        &plain.id(),
        &open_stored(&plain.key, &plain.id(), false, &state).expect("opens"),
        Some(&open_stored(&plain.key, &plain.id(), true, &file.expect("a file")).expect("opens")),
    );

    let stats = textdrop_on(&db, &["stats"]);
    assert!(stats.contains("sealed sessions:  1\n"), "{stats}");
    assert!(stats.contains("plain sessions:   1 "), "{stats}");

    let dropped = textdrop_on(&db, &["sessions", "drop-plain"]);
    assert!(
        dropped.contains("deleted 1 plain session record(s)"),
        "{dropped}"
    );
    let stats = textdrop_on(&db, &["stats"]);
    assert!(stats.contains("sealed sessions:  1\n"), "{stats}");
    assert!(stats.contains("plain sessions:   0 "), "{stats}");
    assert!(page_with_cookie(&action, &plain.cookie)
        .await
        .contains(NO_FILE));
    assert!(page_with_cookie(&action, &sealed.cookie)
        .await
        .contains(&sealed.name));
    app.stop().await;
}

sql_tests!(operator: stats_counts_plain_records_and_drop_plain_deletes_only_them);

page_tests!(
    a_copy_of_the_storage_shows_none_of_the_files,
    a_sealed_value_moved_to_another_record_or_changed_is_no_session,
    a_record_written_before_sealing_reads_and_the_next_upload_is_sealed,
);
