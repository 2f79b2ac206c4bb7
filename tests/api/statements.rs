//! The statements one request runs on SQLite, counted through Diesel's instrumentation (the
//! SQL servers are counted from their own logs by `scripts/count-statements.sh`): a new
//! session is one statement, a read one, an upload the state's read and one transaction that
//! supersedes the old record, deletes the one before it and writes the new one.

use std::sync::Mutex;

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};

use crate::helpers::{cookie_client, spawn_app, upload_with, Backend, TestDb};

/// The name of the database file whose connections are counted: other tests' connections in
/// this process are not.
const COUNTED_FILE: &str = "statements-counted.db";

static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Instruments one connection: records its statements if it opened the counted file.
#[derive(Default)]
struct Counter {
    counted: bool,
}

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.counted = url.contains(COUNTED_FILE);
            }
            InstrumentationEvent::StartQuery { query, .. } if self.counted => {
                let sql = query.to_string();
                let first = sql.split_whitespace().next().unwrap_or_default();
                STATEMENTS
                    .lock()
                    .expect("statements")
                    .push(first.to_ascii_uppercase());
            }
            _ => {}
        }
    }
}

/// The first word of each statement since the last call, apart from a new connection's
/// settings (PRAGMA).
fn taken() -> Vec<String> {
    let mut statements = std::mem::take(&mut *STATEMENTS.lock().expect("statements"));
    statements.retain(|s| s != "PRAGMA");
    statements
}

crate::case!(async sqlite_runs_one_statement_a_read_and_one_transaction_an_upload);
async fn sqlite_runs_one_statement_a_read_and_one_transaction_an_upload() {
    set_default_instrumentation(|| Some(Box::new(Counter::default()))).expect("instrumentation");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join(COUNTED_FILE).display());
    let db = TestDb::existing(Backend::Sqlite, url);
    // The storage's own statements: the read cache off (a read from memory runs none).
    let app = spawn_app(
        &db,
        &[
            ("MAX_STORED_BYTES", "0"),
            ("CLEANUP_INTERVAL_SECS", "0"),
            ("READ_CACHE", "off"),
        ],
    )
    .await;
    let client = cookie_client();
    let _ = taken(); // migrations and settings

    let first = upload_with(&client, &app.address, "a.txt", "one\n").await;
    assert_eq!(first.expect("upload").status(), 303);
    let new_session = taken();
    let read = client
        .get(format!("{}/action", app.address))
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    let reading = taken();
    let second = upload_with(&client, &app.address, "b.txt", "two\n").await;
    assert_eq!(second.expect("upload").status(), 303);
    let upload = taken();
    let third = upload_with(&client, &app.address, "c.txt", "three\n").await;
    assert_eq!(third.expect("upload").status(), 303);
    let next_upload = taken();
    eprintln!(
        "SQLite statements: new session {new_session:?}, read {reading:?}, upload {upload:?}, \
         next upload {next_upload:?}"
    );

    // A new visitor's upload: no session to read, one INSERT.
    assert_eq!(new_session, ["INSERT"]);
    // A read: one SELECT (the expiry is fresh, so nothing is written).
    assert_eq!(reading, ["SELECT"]);
    // An upload with a session: the state's read, then one transaction that supersedes the old
    // record (the UPDATE), reads the record the old one names as its predecessor (none: it was
    // the session's first) and inserts the new one.
    assert_eq!(
        upload,
        ["SELECT", "BEGIN", "UPDATE", "SELECT", "INSERT", "COMMIT"]
    );
    // The next upload also deletes the record the old one had superseded (by primary key).
    assert_eq!(
        next_upload,
        ["SELECT", "BEGIN", "UPDATE", "SELECT", "DELETE", "INSERT", "COMMIT"]
    );
    app.stop().await;
}
